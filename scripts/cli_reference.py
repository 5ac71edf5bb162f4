#!/usr/bin/env python3
"""Generate the README's CLI reference from the real `--help` of every command and subcommand.

    python scripts/cli_reference.py            print the reference
    python scripts/cli_reference.py --write    put it into README.md between the cli-reference markers
    python scripts/cli_reference.py --check    exit 1 when README.md's reference is not the current one

The help is rendered the same way everywhere (no colour, a dumb terminal, a fixed width), so the
reference only changes when a command does. tests/unit/test_readme.py runs the --check.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from dpsk_orch.cli import app

PROG = "dpsk-orch"
README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- cli-reference:start -->"
END = "<!-- cli-reference:end -->"
HELP_ENV = {"COLUMNS": "100", "LINES": "40", "NO_COLOR": "1", "TERM": "dumb"}


def command_paths(typer_app: typer.Typer) -> list[tuple[str, ...]]:
    """Every command path, the root first, each group before its subcommands, in the order --help lists them."""
    root = typer.main.get_command(typer_app)
    paths: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        paths.append(path)
        subcommands = getattr(command, "commands", None) or {}
        for name, subcommand in subcommands.items():
            if not getattr(subcommand, "hidden", False):
                walk(subcommand, (*path, name))

    walk(root, ())
    return paths


def help_text(path: tuple[str, ...]) -> str:
    """`dpsk-orch PATH --help` exactly as the CLI prints it, trailing spaces removed."""
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("DPSK_ORCH_")}
    result = CliRunner().invoke(app, [*path, "--help"], prog_name=PROG, env={**env, **HELP_ENV})
    if result.exit_code != 0:
        raise RuntimeError(f"{PROG} {' '.join(path)} --help exited {result.exit_code}: {result.output}")
    return "\n".join(line.rstrip() for line in result.stdout.strip("\n").splitlines())


def reference() -> str:
    """The Markdown between the markers: one heading and one text block per command."""
    sections = []
    for path in command_paths(app):
        title = " ".join((PROG, *path))
        sections.append(f"### `{title}`\n\n```text\n{help_text(path)}\n```\n")
    return "\n".join(sections)


def replace_reference(readme: str, generated: str) -> str:
    """`readme` with everything between the markers replaced by `generated`; ValueError without the markers."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {START} ... {END} section")
    return f"{readme[:start + len(START)]}\n\n{generated}\n{readme[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="Write the reference into the README.")
    mode.add_argument("--check", action="store_true", help="Exit 1 if the README's reference is out of date.")
    parser.add_argument("--readme", type=Path, default=README, help="The README to read or write.")
    args = parser.parse_args(argv)
    generated = reference()
    if not (args.write or args.check):
        sys.stdout.write(generated)
        return 0
    current = args.readme.read_text()
    wanted = replace_reference(current, generated)
    if args.check:
        if current != wanted:
            sys.stderr.write(f"{args.readme}: the CLI reference is out of date; run: python scripts/cli_reference.py "
                             "--write\n")
            return 1
        return 0
    if current != wanted:
        args.readme.write_text(wanted)
        sys.stdout.write(f"{args.readme}: CLI reference updated\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
