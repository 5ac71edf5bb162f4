"""Everything the tool shows: rich tables for people, stable JSON for scripts, one-line summaries
for the journal. Nothing here ever receives a passphrase: actions carry fingerprints only.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from dpsk_orch.config import Config, ConfigError
from dpsk_orch.fingerprint import short
from dpsk_orch.flags import Resolution
from dpsk_orch.log import is_interactive
from dpsk_orch.state import Flag, invocation_id
from dpsk_orch.sync.discovery import DiscoveryResult
from dpsk_orch.sync.plan import Action
from dpsk_orch.sync.run import SyncResult

SUGGESTIONS = {
    "removal": "delete it (dpsk-orch flags resolve ID --action delete) if the resident left; keep it with "
               "--action keep; or --action retry to read the source again",
    "orphan": "copy it to its unit pool (--action copy-to-source), ignore it, or delete it",
    "conflict": "keep one source (--action keep --to-pool POOL) or ignore; fix the duplicate at the units",
    "missing_vlan": "set a VLAN on the source passphrase or a `vlan:` fallback for its pool, then --action retry",
    "target_missing": "nothing to do: the next sync re-creates it (--action retry to clear the flag)",
    "pool_gone": "delete its site-wide passphrases, keep them unmanaged, or --action retry",
}
TABLE_ROW_LIMIT = 25  # a terminal table longer than this is cut; --json always has every row
NAMES_SHOWN = 8  # pool names listed in one line before "and N more"
PIPE_WIDTH = 1000  # tables written to a pipe or file take the width they need instead of 80 columns


class Renderer:
    """Writes results to stdout (tables or JSON) and errors and summary lines to stderr."""

    def __init__(self, as_json: bool, color: bool, quiet: bool = False) -> None:
        self.as_json = as_json
        self.quiet = quiet
        width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH  # None: the terminal's
        self.console = Console(no_color=not color, highlight=False, soft_wrap=not sys.stdout.isatty(), width=width)
        self.syslog_prefixes = not is_interactive()  # journald and pipes: `<3>` on errors, `<6>` on summaries

    @contextmanager
    def progress(self) -> Iterator[Callable[[str, str, int, int], None] | None]:
        """A progress bar per orchestrator and phase on stderr for a person at a terminal; nothing otherwise.
        It yields advance(orchestrator, phase, steps done, steps in the phase)."""
        if self.as_json or self.quiet or not sys.stderr.isatty():
            yield None
            return
        console = Console(stderr=True, no_color=self.console.no_color)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            tasks: dict[tuple[str, str], TaskID] = {}

            def advance(name: str, phase: str, done: int, total: int) -> None:
                if (name, phase) not in tasks:
                    tasks[name, phase] = bar.add_task(f"{name}: {phase}", total=total)
                bar.update(tasks[name, phase], advance=done)

            yield advance

    def emit_json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")

    def line(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def error(self, text: str) -> None:
        """An error for the person (stderr); under --json also `{"error": ...}` on stdout for the script."""
        self._stderr_line("<3>", f"error: {text}")
        if self.as_json:
            self.emit_json({"error": text})

    def _stderr_line(self, priority: str, text: str) -> None:
        sys.stderr.write(f"{priority if self.syslog_prefixes else ''}{text}\n")

    # ---- config ------------------------------------------------------------------------------

    def config_ok(self, config: Config) -> None:
        if self.as_json:
            self.emit_json({"valid": True, "path": str(config.path), "problems": [],
                            "orchestrators": sorted(config.orchestrators), "controllers": sorted(config.controllers)})
            return
        self.line(f"[green]ok[/green] {config.path}: {len(config.controllers)} controller(s), "
                  f"{len(config.orchestrators)} orchestrator(s): {', '.join(sorted(config.orchestrators))}")

    def config_error(self, error: ConfigError, path: str | None) -> None:
        if self.as_json:
            self.emit_json({"valid": False, "path": path, "problems": [
                {"file": p.file, "line": p.line, "key": p.key, "message": p.message} for p in error.problems]})
            return
        for problem in error.problems:
            self._stderr_line("<3>", str(problem))
        self._stderr_line("<3>", f"{len(error.problems)} problem(s); nothing was called")

    # ---- sync --------------------------------------------------------------------------------

    def sync_results(self, results: list[SyncResult]) -> None:
        if self.as_json:
            self.emit_json({"orchestrators": [sync_result_json(result) for result in results]})
        else:
            for result in results:
                self._sync_result_table(result)
        for result in results:
            self._summary_line(result)

    def _sync_result_table(self, result: SyncResult) -> None:
        if self.quiet:
            return
        title = f"{result.orchestrator}: " + ("plan (dry run, nothing changed)" if result.dry_run else "sync")
        rows = action_rows(result)
        if rows:
            cells = [{"action": action.kind, "pool": action.pool_name, "username": action.username,
                      "vlan": vlan_text(action), "fingerprint": short(action.fingerprint), "reason": action.reason,
                      "result": outcome} for action, outcome in rows[:TABLE_ROW_LIMIT]]
            left_out = {"result"} if result.dry_run else set()  # every row of a dry run is only planned
            self.console.print(dict_table(title, cells, left_out, no_wrap=("action", "vlan", "fingerprint")))
            if len(rows) > TABLE_ROW_LIMIT:
                self.line(f"... and {len(rows) - TABLE_ROW_LIMIT} more ({count_text(rows)}); --json lists every one")
        elif result.plan is not None:
            self.line(f"{title}: nothing to change")
        found = result.discovery
        if found is not None and found.added:
            self.line(f"source pools added by discovery: {name_list(found.added)}")
        if found is not None and found.gone:
            self.line(f"[yellow]source pools gone[/yellow]: {name_list(found.gone)} (a pool_gone flag each; "
                      "their site-wide passphrases stay until a person decides)")
        if result.plan is not None and result.plan.flags:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(flag_counts(result.plan.flags).items()))
            self.line(f"flags raised: {kinds} (see: dpsk-orch flags list)")
        for note in result.notes:
            self.line(f"[yellow]note[/yellow] {note}")
        for error in result.errors:
            self.error(f"{result.orchestrator}: {error}")

    def _summary_line(self, result: SyncResult) -> None:
        """The one line per orchestrator that ends every run, for the journal and for people."""
        if self.quiet and result.exit_code == 0:
            return
        counts = " ".join(f"{k}={v}" for k, v in sorted(result.counts().items())) or "no changes"
        parts = [f"orchestrator={result.orchestrator}"]
        if result.run_id is not None:
            parts.append(f"run={result.run_id}")
        invocation = invocation_id()
        if invocation:
            parts.append(f"invocation={invocation}")
        parts += [("dry_run " if result.dry_run else "") + counts, f"requests={result.requests}",
                  f"duration={result.duration_s:.1f}s", f"exit={result.exit_code}"]
        self._stderr_line("<6>" if result.exit_code == 0 else "<4>", f"dpsk-orch sync: {' '.join(parts)}")

    # ---- discovery ---------------------------------------------------------------------------

    def discovery_results(self, results: list[DiscoveryResult]) -> None:
        if self.as_json:
            self.emit_json({"orchestrators": [discovery_json(result) for result in results]})
            return
        for result in results:
            verb = "would add" if result.dry_run else "added"
            self.line(f"{result.orchestrator}: {result.networks_scanned} network(s) scanned, "
                      f"{result.pools_seen} pool(s) on the venue, {len(result.matched)} source pool(s)"
                      + (" (dry run, nothing recorded)" if result.dry_run else ""))
            if result.added:
                self.line(f"  {verb}: {name_list(result.added)}")
            if result.gone:
                self.line(f"  gone: {name_list(result.gone)} (a pool_gone flag each; their site-wide passphrases "
                          "stay)")
            for error in result.errors:
                self.error(f"{result.orchestrator}: {error}; nothing judged gone this run")

    # ---- flags -------------------------------------------------------------------------------

    def flags(self, flags: list[Flag]) -> None:
        if self.as_json:
            self.emit_json({"flags": [flag_json(flag) for flag in flags]})
            return
        if not flags:
            self.line("no open flags")
            return
        orchestrators = {flag.orchestrator for flag in flags}
        rows = [{"id": str(flag.id), "kind": flag.kind, "orchestrator": flag.orchestrator, "pool": flag.pool_name or "",
                 "username": flag.username or "", "vlan": "" if flag.vlan_id is None else str(flag.vlan_id),
                 "fingerprint": short(flag.fingerprint), "status": flag.status,
                 "last seen (UTC)": table_time(flag.last_seen)} for flag in flags]
        left_out = {"orchestrator"} if len(orchestrators) == 1 else set()  # said in the title instead
        if all(flag.status == "open" for flag in flags):
            left_out.add("status")
        title = f"flags of {orchestrators.pop()}" if len(orchestrators) == 1 else "flags"
        self.console.print(dict_table(title, rows, left_out, no_wrap=("kind", "last seen (UTC)")))

    def flag_detail(self, flag: Flag, events: list[dict[str, Any]], suggested_pool: str | None) -> None:
        suggestion = SUGGESTIONS.get(flag.kind, "")
        if suggested_pool and flag.kind == "orphan":
            suggestion += f"; its VLAN is that of pool {suggested_pool}"
        if self.as_json:
            self.emit_json({**flag_json(flag), "suggested_action": suggestion, "suggested_pool": suggested_pool,
                            "history": events})
            return
        table = Table(show_header=False, title=f"flag {flag.id}", title_justify="left")
        for key, value in flag_json(flag).items():
            table.add_row(key, "" if value is None else str(value))
        table.add_row("suggested action", suggestion)
        self.console.print(table)
        for event in events:
            extra = " ".join(str(event[k]) for k in ("action", "result") if event.get(k))
            self.line(f"  {event['at']} {event['event']} by {event['actor']} {extra}".rstrip())

    def resolution_plan(self, plans: list[tuple[Flag, str]], dry_run: bool) -> None:
        """What a resolve is about to do (or, with --dry-run, would do)."""
        if self.as_json and dry_run:
            self.emit_json({"dry_run": True, "resolutions": [
                {"flag": flag.id, "kind": flag.kind, "orchestrator": flag.orchestrator, "would": text}
                for flag, text in plans]})
        elif not self.as_json:
            verb = "would" if dry_run else "will"
            for flag, text in plans:
                self.line(f"flag {flag.id} ({flag.kind}, {flag.orchestrator}): {verb} {text}")

    def resolutions(self, resolutions: list[Resolution]) -> None:
        if self.as_json:
            self.emit_json({"dry_run": False, "resolutions": [
                {"flag": r.flag.id, "kind": r.flag.kind, "orchestrator": r.flag.orchestrator, "action": r.action,
                 "ok": r.ok, "message": r.message} for r in resolutions]})
            return
        for r in resolutions:
            mark = "[green]done[/green]" if r.ok else "[red]failed[/red]"
            self.line(f"flag {r.flag.id} {mark}: {r.message}")

    # ---- status and history ------------------------------------------------------------------

    def status(self, rows: list[dict[str, Any]]) -> None:
        if self.as_json:
            self.emit_json({"orchestrators": rows})
            return
        for row in rows:  # one key/value table per orchestrator: readable at any terminal width
            table = Table(title=f"status of {row['orchestrator']}", title_justify="left", show_header=False)
            last = row.get("last_run")
            if last is None:
                table.add_row("last run", "never")
            else:
                table.add_row("last run", f"{table_time(last['started_at'])} UTC: {last['command']} {last['status']} "
                                          f"(exit {last.get('exit_code')}), {last.get('requests', 0)} requests")
                table.add_row("its counts", spaced(last.get("counts") or {}))
            table.add_row("open flags", spaced(row["open_flags"]))
            table.add_row("mappings", spaced(row["mappings"]))
            table.add_row("source pools", str(row["source_pools"]))
            self.console.print(table)

    def history(self, runs: list[dict[str, Any]]) -> None:
        if self.as_json:
            self.emit_json({"runs": runs})
            return
        if not runs:
            self.line("no runs yet")
            return
        orchestrators = {run["orchestrator"] for run in runs}
        rows = [{"run": str(run["id"]), "orchestrator": run["orchestrator"], "command": run["command"],
                 "started (UTC)": table_time(run["started_at"]), "took": duration_text(run),
                 "status": run["status"] if run.get("exit_code") in (None, 0) else f"{run['status']} "
                                                                                   f"({run['exit_code']})",
                 "requests": str(run.get("requests", "")), "counts": compact(run.get("counts") or {})}
                for run in runs]
        single = len(orchestrators) == 1
        title = f"history of {orchestrators.pop()}" if single else "history"
        self.console.print(dict_table(title, rows, {"orchestrator"} if single else set(),
                                      no_wrap=("started (UTC)", "counts")))
        for run in runs:  # errors under the table: they are sentences, too long for a column
            for error in run.get("errors") or []:
                self.line(f"run {run['id']}: {error}")


def action_rows(result: SyncResult) -> list[tuple[Action, str]]:
    """Each planned action with what became of it ("planned" in a dry run)."""
    if result.plan is None:
        return []
    outcomes = {id(o.action): o for o in result.report.outcomes} if result.report else {}
    rows = []
    for action in result.plan.actions:
        outcome = outcomes.get(id(action))
        if result.dry_run:
            text = "planned"
        elif outcome is None:
            text = "not done"
        else:
            text = "ok" if outcome.ok else f"failed: {outcome.message}"
        rows.append((action, text))
    return rows


def sync_result_json(result: SyncResult) -> dict[str, Any]:
    plan = result.plan
    actions = [{**action_json(action, result.orchestrator), "result": text} for action, text in action_rows(result)]
    return {
        "orchestrator": result.orchestrator, "dry_run": result.dry_run, "run_id": result.run_id,
        "exit_code": result.exit_code, "counts": result.counts(), "actions": actions,
        "flags": [{"id": result.flag_ids.get(f.key), "kind": f.kind, "pool": f.pool_name, "username": f.username,
                   "vlan": f.vlan_id, "fingerprint": short(f.fingerprint), "detail": f.detail}
                  for f in (plan.flags if plan else ())],
        "discovery": discovery_json(result.discovery) if result.discovery else None,
        "notes": result.notes, "errors": result.errors, "requests": result.requests,
        "throttled": result.throttled, "duration_s": round(result.duration_s, 3),
    }


def discovery_json(result: DiscoveryResult) -> dict[str, Any]:
    return {"orchestrator": result.orchestrator, "dry_run": result.dry_run, "run_id": result.run_id,
            "networks_scanned": result.networks_scanned, "pools_seen": result.pools_seen,
            "source_pools": [{"id": pool.id, "name": pool.name} for pool in result.matched],
            "added": result.added, "gone": result.gone, "errors": result.errors}


def action_json(action: Action, orchestrator: str) -> dict[str, Any]:
    return {"action": action.kind, "orchestrator": orchestrator, "pool": action.pool_name,
            "username": action.username, "vlan_before": action.vlan_before, "vlan_after": action.vlan_after,
            "fingerprint": short(action.fingerprint), "reason": action.reason}


def flag_json(flag: Flag) -> dict[str, Any]:
    return {"id": flag.id, "kind": flag.kind, "orchestrator": flag.orchestrator, "status": flag.status,
            "pool": flag.pool_name, "pool_id": flag.pool_id or None, "username": flag.username,
            "vlan": flag.vlan_id, "fingerprint": short(flag.fingerprint), "detail": flag.detail,
            "first_seen": flag.first_seen, "last_seen": flag.last_seen, "resolved_at": flag.resolved_at,
            "resolution": flag.resolution}


def flag_counts(flags: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for flag in flags:
        counts[flag.kind] = counts.get(flag.kind, 0) + 1
    return counts


def vlan_text(action: Action) -> str:
    if action.vlan_before is not None and action.vlan_before != action.vlan_after:
        return f"{action.vlan_before} -> {action.vlan_after}"
    return "" if action.vlan_after is None else str(action.vlan_after)


def dict_table(title: str, rows: list[dict[str, str]], left_out: set[str], no_wrap: tuple[str, ...]) -> Table:
    """A table of `rows` (dicts with the same keys, in column order) without the `left_out` columns."""
    table = Table(title=title, title_justify="left")
    columns = [key for key in (rows[0] if rows else {}) if key not in left_out]
    for column in columns:
        table.add_column(column, no_wrap=column in no_wrap)
    for row in rows:
        table.add_row(*(row[column] for column in columns))
    return table


def spaced(counts: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in sorted(counts.items()) if value) or "-"


def compact(counts: dict[str, Any]) -> str:
    """Counts for a table cell, one `key=value` a line, so that a narrow column never cuts one."""
    return "\n".join(f"{key}={value}" for key, value in sorted(counts.items()) if value) or "-"


def duration_text(run: dict[str, Any]) -> str:
    if not run.get("ended_at"):
        return ""
    started = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00"))
    ended = datetime.fromisoformat(run["ended_at"].replace("Z", "+00:00"))
    return f"{(ended - started).total_seconds():.0f}s"


def name_list(names: list[str], limit: int = NAMES_SHOWN) -> str:
    """`A, B, C and 17 more`: a list of pool names that stays one readable line (--json has them all)."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def table_time(iso: str) -> str:
    """`2026-12-03T21:42:23Z` as `2026-12-03 21:42`: short enough for a table column (UTC)."""
    return iso[:16].replace("T", " ")


def count_text(rows: list[tuple[Action, str]]) -> str:
    """"77 create, 2 update": the actions of `rows` counted by kind."""
    counts: dict[str, int] = {}
    for action, _ in rows:
        counts[action.kind] = counts.get(action.kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
