"""The command line. Each command parses, calls plain functions, and hands the result to `render`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from dpsk_orch import __version__
from dpsk_orch import app as work
from dpsk_orch.config import Config, ConfigError, find_config_path, load_config, resolve_state_db
from dpsk_orch.errors import UsageError
from dpsk_orch.exit_codes import PARTIAL, UNREACHABLE, USAGE
from dpsk_orch.flags import ACTIONS, CHANGES_RUCKUSONE, FLAG_KINDS, check_action, describe, suggested_pool
from dpsk_orch.lock import LockHeld, exclusive_run_lock
from dpsk_orch.log import colour_wanted, setup_logging
from dpsk_orch.metrics import write_metrics
from dpsk_orch.render import Renderer
from dpsk_orch.state import StateError, StateStore
from dpsk_orch.sync.run import SyncOptions

app = typer.Typer(
    no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Keep a RuckusONE site-wide DPSK pool in step with the per-unit DPSK pools of a property.")
config_app = typer.Typer(no_args_is_help=True, help="Check the config file.")
flags_app = typer.Typer(no_args_is_help=True, help="Review what sync left for a person to decide.")
app.add_typer(config_app, name="config")
app.add_typer(flags_app, name="flags")

JsonOption = Annotated[bool, typer.Option("--json", help="Machine output on stdout (logs stay on stderr).")]
NamesArgument = Annotated[list[str] | None, typer.Argument(metavar="NAME", help="Orchestrators from the config.",
                                                            show_default=False)]
NameArgument = Annotated[str | None, typer.Argument(metavar="NAME", help="Only this orchestrator.", show_default=False)]
AllOption = Annotated[bool, typer.Option("--all", help="Every enabled orchestrator.")]


@dataclass
class Globals:
    config: Path | None
    db: Path | None
    json: bool
    verbose: int
    quiet: bool
    no_color: bool

    def renderer(self, local_json: bool = False) -> Renderer:
        return Renderer(self.json or local_json, colour_wanted(self.no_color), self.quiet)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dpsk-orch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", "-c", metavar="PATH", envvar="DPSK_ORCH_CONFIG",
                                                help="Config file (default: ./orchestrators.yaml, then XDG, "
                                                     "then /etc/dpsk-orch).")] = None,
    db: Annotated[Path | None, typer.Option("--db", metavar="PATH", envvar="DPSK_ORCH_DB", help="State file.")] = None,
    json_output: Annotated[bool, typer.Option("--json", envvar="DPSK_ORCH_JSON",
                                              help="Machine output on stdout.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail (repeatable).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", envvar="DPSK_ORCH_QUIET", help="Errors only.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", envvar="DPSK_ORCH_NO_COLOR", help="No colour.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Keep a RuckusONE site-wide DPSK pool in step with the per-unit DPSK pools of a property."""
    setup_logging(verbose, quiet, no_color)
    ctx.obj = Globals(config, db, json_output, verbose, quiet, no_color)


# ---- config ----------------------------------------------------------------------------------

@config_app.command("validate")
def config_validate(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Check the config file and the secrets it points to; calls nothing. Exit 0 or 2."""
    g: Globals = ctx.obj
    renderer = g.renderer(json_output)
    config = _load_config(g, renderer)
    renderer.config_ok(config)


# ---- sync ------------------------------------------------------------------------------------

@app.command()
def sync(
    ctx: typer.Context,
    names: NamesArgument = None,
    select_all: AllOption = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", envvar="DPSK_ORCH_DRY_RUN",
                                          help="Print the plan; change nothing anywhere.")] = False,
    pools: Annotated[list[str] | None, typer.Option("--pool", metavar="POOL",
                                                    help="Only these source pools (repeatable).")] = None,
    allow_deletes: Annotated[bool, typer.Option("--allow-deletes",
                                                help="Let deletes past the max_deletes guard.")] = False,
    metrics_file: Annotated[Path | None, typer.Option(
        "--metrics-file", metavar="PATH", envvar="DPSK_ORCH_METRICS_FILE",
        help="Write Prometheus textfile metrics here.")] = None,
    json_output: JsonOption = False,
) -> None:
    """The main job: a full one-way sync of each orchestrator's source pools into its site-wide pool."""
    g: Globals = ctx.obj
    renderer = g.renderer(json_output)
    config = _load_config(g, renderer)
    orchestrators = _select(config, names or [], select_all, renderer)
    options = SyncOptions(dry_run=dry_run, pools=tuple(pools or ()), allow_deletes=allow_deletes)
    db_path = resolve_state_db(config, g.db, os.environ)
    with _state(db_path, renderer, exclusive=not dry_run, read_only=dry_run) as store:
        with _exit_on_usage_error(renderer):
            work.check_pool_names(store, orchestrators, options.pools)
        with renderer.progress() as progress:
            results = work.run_sync(config, orchestrators, store, options, progress)
        if metrics_file is not None and not dry_run:
            write_metrics(metrics_file, results, store)
    renderer.sync_results(results)
    raise typer.Exit(work.overall_exit_code([result.exit_code for result in results]))


@app.command()
def discover(
    ctx: typer.Context,
    names: NamesArgument = None,
    select_all: AllOption = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be added and dropped; record "
                                                             "nothing.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Find source pools on the venue's networks by the include/exclude globs and record them."""
    g: Globals = ctx.obj
    renderer = g.renderer(json_output)
    config = _load_config(g, renderer)
    orchestrators = _select(config, names or [], select_all, renderer)
    db_path = resolve_state_db(config, g.db, os.environ)
    with _state(db_path, renderer, exclusive=not dry_run, read_only=dry_run) as store, \
            _exit_on_usage_error(renderer):
        results = work.run_discovery(config, orchestrators, store, dry_run)
    renderer.discovery_results(results)
    raise typer.Exit(work.overall_exit_code([0 if r.is_complete else 1 for r in results]))


# ---- flags -----------------------------------------------------------------------------------

@flags_app.command("list")
def flags_list(
    ctx: typer.Context,
    name: NameArgument = None,
    kind: Annotated[str | None, typer.Option(
        "--kind", metavar="KIND", help="removal, orphan, conflict, missing_vlan, target_missing or pool_gone.")] = None,
    include_closed: Annotated[bool, typer.Option("--all", help="Include resolved and ignored flags.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Open flags (with --all, every flag)."""
    g: Globals = ctx.obj
    renderer = g.renderer(json_output)
    config = _load_config(g, renderer)
    _check_kind(kind, renderer)
    if name:
        _select(config, [name], False, renderer)
    with _state(resolve_state_db(config, g.db, os.environ), renderer, read_only=True) as store:
        renderer.flags(store.load_flags(name, kind, include_closed))


@flags_app.command("show")
def flags_show(
    ctx: typer.Context,
    flag_id: Annotated[int, typer.Argument(metavar="FLAG", help="A flag id from `flags list`.")],
    json_output: JsonOption = False,
) -> None:
    """One flag in full, its history, and the suggested action."""
    g: Globals = ctx.obj
    renderer = g.renderer(json_output)
    config = _load_config(g, renderer)
    with _state(resolve_state_db(config, g.db, os.environ), renderer, read_only=True) as store:
        flag = store.load_flag(flag_id)
        if flag is None:
            open_ids = ", ".join(str(f.id) for f in store.load_flags()) or "none"
            renderer.error(f"no flag {flag_id}; open flags: {open_ids}")
            raise typer.Exit(USAGE)
        renderer.flag_detail(flag, store.load_flag_events(flag_id), suggested_pool(store, flag))


@flags_app.command("resolve")
def flags_resolve(
    ctx: typer.Context,
    flag_ids: Annotated[list[int] | None, typer.Argument(metavar="FLAG", help="Flag ids from `flags list`.",
                                                         show_default=False)] = None,
    action: Annotated[str, typer.Option(
        "--action", metavar="ACTION",
        help="delete, keep, ignore, copy-to-source or retry (which apply depends on the flag's kind).")] = "",
    to_pool: Annotated[str | None, typer.Option(
        "--to-pool", metavar="POOL",
        help="copy-to-source: the pool to copy into; keep on a conflict: the winning pool.")] = None,
    kind: Annotated[str | None, typer.Option(
        "--kind", metavar="KIND", help="Every open flag of this kind (with --orchestrator).")] = None,
    orchestrator: Annotated[str | None, typer.Option(
        "--orchestrator", "-o", metavar="NAME", help="The flags' orchestrator.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking (needed without a terminal).")
                   ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Act on flags: delete, keep, ignore, copy-to-source or retry. Every resolution is recorded."""
    g: Globals = ctx.obj
    renderer = g.renderer(json_output)
    config = _load_config(g, renderer)
    if not action:
        renderer.error("--action is required: " + "; ".join(f"{k}: {', '.join(a)}" for k, a in ACTIONS.items()))
        raise typer.Exit(USAGE)
    _check_kind(kind, renderer)
    if orchestrator:
        _select(config, [orchestrator], False, renderer)
    with _state(resolve_state_db(config, g.db, os.environ), renderer, exclusive=not dry_run,
                read_only=dry_run) as store:
        with _exit_on_usage_error(renderer):
            chosen = work.select_flags(store, flag_ids or [], kind, orchestrator)
            for flag in chosen:
                check_action(flag, action, to_pool)
        plans = [(flag, describe(store, flag, action, to_pool)) for flag in chosen]
        renderer.resolution_plan(plans, dry_run)
        if dry_run:
            raise typer.Exit(0)
        if action in CHANGES_RUCKUSONE and not yes:
            if not sys.stdin.isatty():
                renderer.error(f"--action {action} changes RuckusONE and there is no terminal to confirm it: "
                               "pass --yes; nothing was done")
                raise typer.Exit(USAGE)
            if not typer.confirm(f"{action} {len(chosen)} flag(s) as above?", err=True):
                renderer.error("nothing was done")
                raise typer.Exit(USAGE)
        with _exit_on_usage_error(renderer):
            resolutions = work.run_resolve(config, store, chosen, action, to_pool)
    renderer.resolutions(resolutions)
    raise typer.Exit(0 if all(r.ok for r in resolutions) else PARTIAL)


# ---- status and history ----------------------------------------------------------------------

@app.command()
def status(
    ctx: typer.Context,
    name: NameArgument = None,
    json_output: JsonOption = False,
) -> None:
    """Per orchestrator: last run, its counts, open flags, mappings."""
    g: Globals = ctx.obj
    renderer = g.renderer(json_output)
    config = _load_config(g, renderer)
    names = _select(config, [name] if name else [], not name, renderer)
    with _state(resolve_state_db(config, g.db, os.environ), renderer, read_only=True) as store:
        renderer.status(work.status_rows(store, [o.name for o in names]))


@app.command()
def history(
    ctx: typer.Context,
    name: NameArgument = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", min=1, help="How many runs.")] = 20,
    json_output: JsonOption = False,
) -> None:
    """Past runs with their counts and errors."""
    g: Globals = ctx.obj
    renderer = g.renderer(json_output)
    config = _load_config(g, renderer)
    if name:
        _select(config, [name], False, renderer)
    with _state(resolve_state_db(config, g.db, os.environ), renderer, read_only=True) as store:
        renderer.history(store.load_runs(name, limit))


# ---- simulator and demo ----------------------------------------------------------------------

@app.command()
def demo(ctx: typer.Context) -> None:
    """Run discover, a dry-run, a sync, a change and a second sync against the built-in simulator."""
    from dpsk_orch.demo import run_demo

    g: Globals = ctx.obj
    raise typer.Exit(run_demo(g.renderer()))


@app.command()
def simulator(
    port: Annotated[int, typer.Option("--port", metavar="N",
                                      help="TCP port on 127.0.0.1 (0 picks a free one).")] = 8765,
    units: Annotated[int, typer.Option("--units", metavar="N", min=1, help="Unit pools to seed.")] = 20,
    per_unit: Annotated[int, typer.Option("--per-unit", metavar="N", min=0, help="Passphrases per unit pool.")] = 4,
    latency_ms: Annotated[int, typer.Option("--latency-ms", metavar="MS", min=0, help="Added to every request.")] = 0,
    rate_limit: Annotated[int | None, typer.Option("--rate-limit", metavar="N",
                                                   help="Requests a minute before 429.")] = None,
    write_config: Annotated[Path | None, typer.Option(
        "--write-config", metavar="DIR", help="Write a config for the simulated property into this directory.")] = None,
) -> None:
    """Serve the built-in RuckusONE simulator over HTTP on 127.0.0.1."""
    from dpsk_orch.simulator import run_simulator_command

    run_simulator_command(port=port, units=units, per_unit=per_unit, latency_ms=latency_ms,
                          rate_limit_per_minute=rate_limit, write_config=write_config, print_fn=typer.echo)


# ---- shared steps ----------------------------------------------------------------------------

def _load_config(g: Globals, renderer: Renderer) -> Config:
    path = None
    try:
        path = find_config_path(g.config, os.environ)
        return load_config(path, os.environ)
    except ConfigError as error:
        renderer.config_error(error, str(path) if path else None)
        raise typer.Exit(USAGE) from None


def _select(config: Config, names: list[str], select_all: bool, renderer: Renderer) -> list:
    with _exit_on_usage_error(renderer):
        return work.select_orchestrators(config, names, select_all)


@contextmanager
def _exit_on_usage_error(renderer: Renderer) -> Iterator[None]:
    """A UsageError inside becomes its message on stderr and exit code 2."""
    try:
        yield
    except UsageError as error:
        renderer.error(str(error))
        raise typer.Exit(USAGE) from None


def _check_kind(kind: str | None, renderer: Renderer) -> None:
    if kind is not None and kind not in FLAG_KINDS:
        renderer.error(f"--kind {kind}: not a kind of flag (kinds: {', '.join(FLAG_KINDS)})")
        raise typer.Exit(USAGE)


@contextmanager
def _state(db_path: Path, renderer: Renderer, exclusive: bool = False, read_only: bool = False
           ) -> Iterator[StateStore]:
    """The state file, under the run lock when `exclusive`; exit 75 when another run holds it."""
    try:
        with exclusive_run_lock(db_path) if exclusive else _no_lock():
            store = work.open_store(db_path, read_only=read_only)
            try:
                yield store
            finally:
                store.close()
    except LockHeld as error:
        renderer.error(f"{error}; nothing was done (the timer retries)")
        raise typer.Exit(UNREACHABLE) from None
    except StateError as error:
        renderer.error(str(error))
        raise typer.Exit(USAGE) from None


@contextmanager
def _no_lock() -> Iterator[None]:
    yield

