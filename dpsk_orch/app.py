"""The commands' work as plain functions: choose orchestrators, open state under the lock, run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import httpx

from dpsk_orch.config import Config, OrchestratorConfig
from dpsk_orch.errors import UsageError
from dpsk_orch.exit_codes import BLOCKED, OK, PARTIAL, UNREACHABLE, USAGE
from dpsk_orch.flags import Resolution, resolve
from dpsk_orch.r1.client import ClientSettings, R1Client
from dpsk_orch.state import IN_MEMORY, Flag, StateStore, invocation_id, run_trigger
from dpsk_orch.sync.discovery import DiscoveryResult, discover
from dpsk_orch.sync.run import SyncOptions, SyncResult, sync_orchestrator

T = TypeVar("T")


def select_orchestrators(config: Config, names: list[str], select_all: bool) -> list[OrchestratorConfig]:
    """NAMEs from the config, every enabled one with --all, or the only one; UsageError otherwise."""
    known = ", ".join(sorted(config.orchestrators))
    if names and select_all:
        raise UsageError("give orchestrator names or --all, not both")
    if select_all:
        return [o for o in config.orchestrators.values() if o.enabled]
    if names:
        unknown = [name for name in names if name not in config.orchestrators]
        if unknown:
            raise UsageError(f"unknown orchestrator {', '.join(unknown)} (known: {known})")
        return [config.orchestrators[name] for name in names]
    if len(config.orchestrators) != 1:
        raise UsageError(f"the config holds several orchestrators ({known}): name one or pass --all")
    return list(config.orchestrators.values())


def client_settings(config: Config, orchestrator: OrchestratorConfig) -> ClientSettings:
    controller = config.controller_for(orchestrator)
    return ClientSettings(
        api_url=controller.api_url, tenant_id=controller.tenant_id, client_id=controller.client_id,
        client_secret=controller.client_secret, delegated_tenant_id=orchestrator.tenant_id,
        max_requests_per_minute=controller.max_requests_per_minute, concurrency=controller.concurrency)


def open_store(db_path: Path, read_only: bool = False) -> StateStore:
    """The state file. Read-only (a dry run, a report) opens an existing one so it cannot change it, and
    stands in an empty store in memory for a missing one, so that it creates no file either."""
    if read_only and not db_path.exists():
        return StateStore(IN_MEMORY)
    return StateStore(db_path, read_only=read_only)


def check_pool_names(store: StateStore, orchestrators: list[OrchestratorConfig], names: tuple[str, ...]) -> None:
    """UsageError, before anything is called, for a `--pool` that is not a source pool of each orchestrator
    as the config and earlier discoveries know them (by name or id)."""
    for orchestrator in orchestrators:
        tracked = store.load_source_pools(orchestrator.name)
        known = {ref.name or ref.id for ref in orchestrator.source_pools} | {pool.name for pool in tracked}
        unknown = [name for name in names if name not in known | {pool.pool_id for pool in tracked}]
        if unknown:
            raise UsageError(f"--pool {', '.join(unknown)}: not a source pool of {orchestrator.name} (source pools: "
                             f"{', '.join(sorted(known)) or 'none yet'}; a pool discovery has not found yet needs "
                             "`dpsk-orch discover` first)")


def run_sync(config: Config, orchestrators: list[OrchestratorConfig], store: StateStore, options: SyncOptions,
             progress: Callable[[str, str, int, int], None] | None = None,
             transport: httpx.AsyncBaseTransport | None = None) -> list[SyncResult]:
    """Sync each orchestrator in turn (discovering first where enabled), one client per controller+tenant."""
    return asyncio.run(_with_clients(config, orchestrators, transport, lambda orchestrator, r1: _sync_one(
        config, orchestrator, store, r1, options, progress)))


def run_discovery(config: Config, orchestrators: list[OrchestratorConfig], store: StateStore, dry_run: bool,
                  transport: httpx.AsyncBaseTransport | None = None) -> list[DiscoveryResult]:
    """Discover the source pools of each orchestrator that has a venue."""
    for orchestrator in orchestrators:
        if not orchestrator.venue_id:
            raise UsageError(f"orchestrator {orchestrator.name} has no venue_id: nothing to discover")
    return asyncio.run(_with_clients(config, orchestrators, transport, lambda orchestrator, r1: discover(
        config, orchestrator, store, r1, dry_run)))


async def _sync_one(config: Config, orchestrator: OrchestratorConfig, store: StateStore, r1: R1Client,
                    options: SyncOptions, progress: Callable[[str, str, int, int], None] | None) -> SyncResult:
    discovery = await discover(config, orchestrator, store, r1, options.dry_run) \
        if orchestrator.discovery.enabled else None

    def report(phase: str, done: int, total: int) -> None:
        if progress:
            progress(orchestrator.name, phase, done, total)

    return await sync_orchestrator(orchestrator, store, r1, options, report, discovery)


async def _with_clients(config: Config, orchestrators: list[OrchestratorConfig],
                        transport: httpx.AsyncBaseTransport | None,
                        work: Callable[[OrchestratorConfig, R1Client], Awaitable[T]]) -> list[T]:
    """Run `work` for each orchestrator in turn, sharing one client per controller and tenant."""
    results = []
    async with AsyncExitStack() as stack:
        clients: dict[ClientSettings, R1Client] = {}
        for orchestrator in orchestrators:
            settings = client_settings(config, orchestrator)
            if settings not in clients:
                clients[settings] = await stack.enter_async_context(R1Client(settings, transport))
            results.append(await work(orchestrator, clients[settings]))
    return results


def select_flags(store: StateStore, flag_ids: list[int], kind: str | None, orchestrator: str | None) -> list[Flag]:
    """The open flags to resolve: by id, or every open flag of a kind of one orchestrator."""
    if flag_ids and kind:
        raise UsageError("give flag ids or --kind, not both")
    if kind:
        if not orchestrator:
            raise UsageError("--kind needs the orchestrator: --orchestrator NAME")
        flags = store.load_flags(orchestrator, kind)
        if not flags:
            raise UsageError(f"no open {kind} flags for {orchestrator}")
        return flags
    if not flag_ids:
        raise UsageError("name the flags to resolve (see `dpsk-orch flags list`) or use --kind")
    flags = []
    for flag_id in flag_ids:
        flag = store.load_flag(flag_id)
        if flag is None or (orchestrator and flag.orchestrator != orchestrator):
            scope = orchestrator or (flags[0].orchestrator if flags else None)
            open_ids = ", ".join(str(f.id) for f in store.load_flags(scope)) or "none"
            raise UsageError(f"no flag {flag_id}" + (f" for {scope}" if scope else "") + f"; open flags: {open_ids}")
        flags.append(flag)
    return flags


def run_resolve(config: Config, store: StateStore, flags: list[Flag], action: str, to_pool: str | None,
                transport: httpx.AsyncBaseTransport | None = None) -> list[Resolution]:
    """Resolve each flag in turn, grouped by orchestrator; each group is recorded as a `resolve` run."""
    by_orchestrator: dict[str, list[Flag]] = {}
    for flag in flags:
        by_orchestrator.setdefault(flag.orchestrator, []).append(flag)
    unknown = [name for name in by_orchestrator if name not in config.orchestrators]
    if unknown:
        raise UsageError(f"flags of {', '.join(unknown)}, which is no longer in the config")
    orchestrators = [config.orchestrators[name] for name in by_orchestrator]

    async def resolve_all(orchestrator: OrchestratorConfig, r1: R1Client) -> list[Resolution]:
        run_id = store.save_run_start(orchestrator.name, "resolve", run_trigger(), invocation_id())
        requests_before, throttled_before = r1.stats.requests, r1.stats.throttled
        done = [await resolve(config, orchestrator, store, r1, flag, action, to_pool)
                for flag in by_orchestrator[orchestrator.name]]
        failed = [r for r in done if not r.ok]
        store.save_run_end(run_id, "partial" if failed else "ok", PARTIAL if failed else OK,
                           {action: len(done) - len(failed), **({"failed": len(failed)} if failed else {})},
                           [f"flag {r.flag.id}: {r.message}" for r in failed],
                           r1.stats.requests - requests_before, r1.stats.throttled - throttled_before)
        return done

    return [r for group in asyncio.run(_with_clients(config, orchestrators, transport, resolve_all)) for r in group]


EXIT_CODE_SEVERITY = (USAGE, BLOCKED, PARTIAL, UNREACHABLE)


def overall_exit_code(codes: list[int]) -> int:
    """One exit code for several orchestrators: the one that most needs a person."""
    for code in EXIT_CODE_SEVERITY:
        if code in codes:
            return code
    return OK


def status_rows(store: StateStore, names: list[str]) -> list[dict[str, Any]]:
    """Per orchestrator: its last run, open flags by kind, mapping counts, tracked source pools."""
    rows = []
    for name in names:
        runs = store.load_runs(name, limit=1)
        open_flags: dict[str, int] = {}
        for flag in store.load_flags(name):
            open_flags[flag.kind] = open_flags.get(flag.kind, 0) + 1
        rows.append({"orchestrator": name, "last_run": runs[0] if runs else None, "open_flags": open_flags,
                     "mappings": store.count_mappings(name), "source_pools": len(store.load_source_pools(name))})
    return rows

