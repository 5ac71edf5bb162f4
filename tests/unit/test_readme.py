"""The README never lies: its CLI reference is the real --help, its two quick-start commands are the ones CI
runs, and every `dpsk-orch` command (and option) it mentions exists."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path
from types import ModuleType

import pytest
import typer

from dpsk_orch.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"
GLOBAL_OPTIONS_WITH_VALUE = {"-c", "--config", "--db"}
INVOCATION = re.compile(r"(?:^|&&|\|\||;|\||\()\s*(?:\$ |sudo )?dpsk-orch(?![\w.@/*-])(.*?)(?=&&|\|\||;|\||$)")
SHELL_SEPARATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>&1", ")", "#"}


def load_cli_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text()


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def quick_start_commands(text: str) -> list[str]:
    """The shell blocks of the Quick start section, each one line."""
    blocks = re.findall(r"^```sh\n(.*?)^```", section(text, "Quick start"), re.MULTILINE | re.DOTALL)
    return [block.strip() for block in blocks]


# ---- (a) the CLI reference is the current --help -------------------------------------------------

def test_cli_reference_is_the_current_help(readme: str) -> None:
    module = load_cli_reference()
    assert module.replace_reference(readme, module.reference()) == readme, (
        "README.md's CLI reference is out of date: run `python scripts/cli_reference.py --write`")


def test_cli_reference_covers_every_command() -> None:
    module = load_cli_reference()
    generated = module.reference()
    for path in module.command_paths(app):
        assert f"### `{' '.join(('dpsk-orch', *path))}`" in generated
    assert {"sync", "flags", "resolve"} <= {name for path in module.command_paths(app) for name in path}


def test_cli_reference_is_the_same_at_any_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_cli_reference()
    monkeypatch.setenv("COLUMNS", "40")
    narrow = module.reference()
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert module.reference() == narrow
    assert "\x1b[" not in narrow


def test_check_fails_on_a_stale_reference(tmp_path: Path, readme: str) -> None:
    module = load_cli_reference()
    stale = tmp_path / "README.md"
    stale.write_text(readme.replace("Usage: dpsk-orch sync", "Usage: dpsk-orch synk", 1))
    assert module.main(["--check", "--readme", str(stale)]) == 1
    assert module.main(["--write", "--readme", str(stale)]) == 0
    assert stale.read_text() == readme
    assert module.main(["--check", "--readme", str(stale)]) == 0


def test_replace_reference_needs_the_markers() -> None:
    module = load_cli_reference()
    with pytest.raises(ValueError):
        module.replace_reference("# no markers\n", "x")


# ---- (b) the two commands ----------------------------------------------------------------------

def test_quick_start_has_the_two_one_line_commands(readme: str) -> None:
    commands = quick_start_commands(readme)
    assert len(commands) == 2, commands
    demo, tests = commands
    assert "\n" not in demo and "\n" not in tests
    assert demo.startswith("python3 -m venv ") and "pip install -e ." in demo and demo.endswith("dpsk-orch demo")
    assert "pip install -e '.[test]'" in tests and "pytest" in tests
    assert "-p no:" not in tests
    assert readme.index("## Quick start") < readme.index("## Install")


def test_ci_runs_the_readme_test_command_verbatim(readme: str) -> None:
    test_command = quick_start_commands(readme)[1]
    run_lines = [line.strip() for line in CI_RUN.read_text().splitlines() if not line.lstrip().startswith("#")]
    assert any(line.startswith(test_command) for line in run_lines), ".ci/run must run the README's test command"
    assert CI_RUN.stat().st_mode & 0o111, ".ci/run must be executable"


# ---- (c) every dpsk-orch command the README mentions exists ------------------------------------

def code_spans(text: str) -> list[str]:
    """Fenced blocks and inline code, without the generated CLI reference."""
    text = re.sub(r"<!-- cli-reference:start -->.*<!-- cli-reference:end -->", "", text, flags=re.DOTALL)
    fenced = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    outside = re.sub(r"^```[a-z]*\n.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return fenced + re.findall(r"`([^`\n]+)`", outside)


def invocations(text: str) -> list[list[str]]:
    """The words after each `dpsk-orch` that starts a command in code: at the start of a line or after a shell
    separator (not dpsk-orch-sync.service, /etc/dpsk-orch/, or "another dpsk-orch run" in a message)."""
    found = []
    for span in code_spans(text):
        for line in span.splitlines():
            for match in INVOCATION.finditer(line):
                found.append(split_words(match.group(1)))
    return found


def split_words(rest: str) -> list[str]:
    try:
        words = shlex.split(rest, comments=True)
    except ValueError:
        words = rest.split()
    for index, word in enumerate(words):
        if word in SHELL_SEPARATORS or word.startswith(("#", "`")):
            return words[:index]
    return words


def resolve(words: list[str]) -> tuple[object, list[str], list[str]] | None:
    """The command that `words` name (skipping global options), the path to it, and the words after it.
    None when no command is named (e.g. `dpsk-orch --version`)."""
    command = typer.main.get_command(app)
    path: list[str] = []
    index = 0
    while index < len(words):
        word = words[index].rstrip(":,.)")
        subcommands = getattr(command, "commands", None)
        if not subcommands:
            break
        if word.startswith("-"):
            index += 2 if word in GLOBAL_OPTIONS_WITH_VALUE and not path else 1
            continue
        assert word in subcommands, f"`dpsk-orch {' '.join(words)}`: no command {' '.join([*path, word])}"
        command, path, index = subcommands[word], [*path, word], index + 1
    return (command, path, words[index:]) if path else None


def option_names(command: object) -> set[str]:
    names = {"--help"}
    for param in getattr(command, "params", []):
        names.update(getattr(param, "opts", []))
        names.update(getattr(param, "secondary_opts", []))
    return names


def test_readme_mentions_commands_at_all(readme: str) -> None:
    named = {" ".join(found[1]) for words in invocations(readme) if (found := resolve(words))}
    assert {"demo", "simulator", "config validate", "sync", "flags list", "flags show", "flags resolve",
            "status", "history"} <= named


def test_every_command_and_option_the_readme_mentions_exists(readme: str) -> None:
    for words in invocations(readme):
        found = resolve(words)
        if found is None:
            continue
        command, path, rest = found
        if getattr(command, "commands", None):
            continue  # a group named on its own (`dpsk-orch flags`)
        known = option_names(command)
        for word in rest:
            if word.startswith("--") or re.fullmatch(r"-[a-zA-Z]", word):
                option = word.split("=", 1)[0]
                assert option in known, f"`dpsk-orch {' '.join(words)}`: {' '.join(path)} has no option {option}"


def test_the_checker_catches_a_command_that_does_not_exist() -> None:
    with pytest.raises(AssertionError):
        resolve(["-c", "x.yaml", "flags", "fix", "1"])
    with pytest.raises(AssertionError):
        resolve(["synchronise"])
    assert resolve(["--version"]) is None
