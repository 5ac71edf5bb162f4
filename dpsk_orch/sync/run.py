"""One sync of one orchestrator, start to finish: pools, settle, snapshot, plan, apply, record."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dpsk_orch.config import OrchestratorConfig
from dpsk_orch.constants import INTENT_SETTLE_S
from dpsk_orch.errors import UsageError
from dpsk_orch.exit_codes import BLOCKED, OK, PARTIAL, UNREACHABLE, USAGE
from dpsk_orch.r1.client import R1Client
from dpsk_orch.r1.errors import R1Error, R1Unreachable
from dpsk_orch.r1.records import Pool
from dpsk_orch.state import Mapping, StateStore, invocation_id, run_trigger
from dpsk_orch.sync.apply import Applier, ApplyReport, ProgressFn
from dpsk_orch.sync.discovery import DiscoveryResult
from dpsk_orch.sync.plan import CREATE, Decisions, Plan, plan_sync
from dpsk_orch.sync.snapshot import PoolNotFound, Snapshot, fetch_snapshot, resolve_pool

INTENT_MIN_AGE_S = 5.0  # how long RuckusONE may take to show the activity of a call it accepted


@dataclass
class SyncResult:
    """What one orchestrator's sync did, for rendering, metrics and the exit code."""

    orchestrator: str
    dry_run: bool
    exit_code: int = OK
    run_id: int | None = None
    plan: Plan | None = None
    report: ApplyReport | None = None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    requests: int = 0
    throttled: int = 0
    open_flags: dict[str, int] = field(default_factory=dict)
    flag_ids: dict[str, int] = field(default_factory=dict)  # flag key -> id, of the open flags after the run
    discovery: DiscoveryResult | None = None  # the discovery run just before, when enabled

    def counts(self) -> dict[str, int]:
        """Actions done (or, in a dry run, planned) by kind, flags raised, and source pools discovery added
        or judged gone."""
        found = self.discovery
        pools = {"pools_added": len(found.added) if found else 0, "pools_gone": len(found.gone) if found else 0}
        return {**self._action_counts(), **{key: n for key, n in pools.items() if n}}

    def _action_counts(self) -> dict[str, int]:
        if self.plan is None:
            return {}
        if self.report is None:
            return self.plan.counts()
        counts: dict[str, int] = {}
        for outcome in self.report.outcomes:
            key = outcome.action.kind if outcome.ok else f"failed_{outcome.action.kind}"
            counts[key] = counts.get(key, 0) + 1
        for flag in self.plan.flags:
            counts[f"flag_{flag.kind}"] = counts.get(f"flag_{flag.kind}", 0) + 1
        if self.report.identities_renamed:
            counts["identity_renamed"] = self.report.identities_renamed
        return counts


@dataclass(frozen=True)
class SyncOptions:
    dry_run: bool = False
    pools: tuple[str, ...] = ()
    allow_deletes: bool = False


async def sync_orchestrator(orchestrator: OrchestratorConfig, store: StateStore, r1: R1Client,
                            options: SyncOptions, progress: ProgressFn | None = None,
                            discovery: DiscoveryResult | None = None) -> SyncResult:
    """Sync one orchestrator: its configured pools plus the pools `discovery` found just before (those of
    earlier discoveries when it is absent or incomplete; an incomplete one makes the run partial).
    Never raises for RuckusONE trouble: it lands in the result instead."""
    result = SyncResult(orchestrator.name, options.dry_run, discovery=discovery)
    if discovery is not None and not discovery.is_complete:
        result.errors += [f"discovery incomplete ({error}): synced the source pools found before; the next run "
                          "retries" for error in discovery.errors]
    started = time.monotonic()
    requests_before, throttled_before = r1.stats.requests, r1.stats.throttled
    try:
        discovered = discovery.matched if discovery is not None and discovery.is_complete else None
        await _sync(orchestrator, store, r1, options, result, progress, discovered)
    except R1Unreachable as error:
        result.errors.append(f"{error}; nothing more was done, the next run retries")
        result.exit_code = UNREACHABLE
    except R1Error as error:
        result.errors.append(f"{error}; nothing more was done, the next run retries")
        result.exit_code = PARTIAL
    except PoolNotFound as error:
        result.errors.append(f"{error}; check the pool names in the config")
        result.exit_code = PARTIAL
    except UsageError as error:
        result.errors.append(str(error))
        result.exit_code = USAGE
    result.duration_s = time.monotonic() - started
    result.requests = r1.stats.requests - requests_before
    result.throttled = r1.stats.throttled - throttled_before
    if not options.dry_run:
        _record_run(store, result)
    result.flag_ids = {flag.key: flag.id for flag in store.load_flags(orchestrator.name)}
    return result


async def _sync(orchestrator: OrchestratorConfig, store: StateStore, r1: R1Client, options: SyncOptions,
                result: SyncResult, progress: ProgressFn | None,
                discovered: list[Pool] | None) -> None:
    if not options.dry_run:
        result.run_id = store.save_run_start(orchestrator.name, "sync", run_trigger(), invocation_id())
    pools = await r1.fetch_pools()
    target = resolve_pool(orchestrator.site_wide_pool, pools)
    sources, missing = source_pools(orchestrator, store, pools, discovered)
    result.errors.extend(missing)
    scope = resolve_scope(options.pools, [pool for pool, _ in sources])
    mappings = store.load_mappings(orchestrator.name)
    unsettled = await settle_pending_creates(r1, mappings, wait=not options.dry_run)
    snapshot = await fetch_snapshot(r1, target, sources, scope, unsettled)
    result.errors.extend(incomplete_read_errors(snapshot))
    decisions = load_decisions(store, orchestrator.name)
    plan = plan_sync(orchestrator, snapshot, mappings, store.fingerprints.of, decisions, options.allow_deletes)
    result.plan = plan
    result.notes.extend(plan.notes)
    if options.dry_run:
        result.exit_code = _exit_code(result, snapshot.is_complete, unsettled)
        return
    configured = {ref.id or ref.name for ref in orchestrator.source_pools}
    store.save_source_pools(orchestrator.name, [(p.id, p.name, p.identity_group_id) for p, _ in sources
                                                if p.id in configured or p.name in configured], origin="config")
    applier = Applier(r1, store, orchestrator.name, target, {row.id: row for row in snapshot.target.passphrases},
                      progress)
    result.report = await applier.apply(plan)
    result.errors.extend(result.report.errors)
    store.save_flags(orchestrator.name, plan.flags, set(plan.judged_scope))
    result.exit_code = _exit_code(result, snapshot.is_complete, unsettled)


def source_pools(orchestrator: OrchestratorConfig, store: StateStore, pools: list[Pool],
                 discovered: list[Pool] | None) -> tuple[list[tuple[Pool, int | None]], list[str]]:
    """The source pools to read (with their fallback VLAN), and a message for each configured one that is
    missing. Discovered pools are `discovered` when given, else those recorded by earlier discoveries."""
    chosen: dict[str, tuple[Pool, int | None]] = {}
    missing = []
    for ref in orchestrator.source_pools:
        try:
            pool = resolve_pool(ref, pools)
        except PoolNotFound as error:
            missing.append(f"source pool skipped: {error}")
            continue
        chosen[pool.id] = (pool, ref.vlan)
    if discovered is None:
        by_id = {pool.id: pool for pool in pools}
        discovered = [by_id[tracked.pool_id] for tracked in store.load_source_pools(orchestrator.name)
                      if tracked.origin == "discovery" and tracked.pool_id in by_id]
    for pool in discovered:
        chosen.setdefault(pool.id, (pool, None))
    return sorted(chosen.values(), key=lambda item: item[0].name.lower()), missing


def incomplete_read_errors(snapshot: Snapshot) -> list[str]:
    """What a run could not do because a read was incomplete, and that the next run retries."""
    if not snapshot.target.is_complete:
        return [f"site-wide pool {snapshot.target.pool.name} not read completely ({snapshot.target.error}): "
                "nothing was changed or flagged; the next run retries"]
    return [f"pool {read.pool.name} not read completely ({read.error}): nothing was changed or flagged for it; "
            "the next run retries" for read in snapshot.sources if not read.is_complete]


def resolve_scope(names: tuple[str, ...], pools: list[Pool]) -> frozenset[str] | None:
    """Pool ids for `--pool` names or ids; UsageError naming the known pools for an unknown one."""
    if not names:
        return None
    ids = set()
    for name in names:
        matches = [pool.id for pool in pools if name in (pool.name, pool.id)]
        if not matches:
            known = ", ".join(sorted(pool.name for pool in pools)) or "none"
            raise UsageError(f"--pool {name}: not a source pool of this orchestrator (source pools: {known})")
        ids.update(matches)
    return frozenset(ids)


def load_decisions(store: StateStore, orchestrator: str) -> Decisions:
    """Flags people ignored, and conflicts they settled with a winner."""
    closed = [flag for flag in store.load_flags(orchestrator, include_closed=True) if flag.status == "ignored"]
    winners = {flag.fingerprint: flag.resolution.split(":", 1)[1] for flag in closed
               if flag.kind == "conflict" and flag.resolution and flag.resolution.startswith("keep:")}
    return Decisions(frozenset(flag.key for flag in closed if flag.key not in winners), winners)


async def settle_pending_creates(r1: R1Client, mappings: list[Mapping], wait: bool) -> frozenset[int]:
    """Creates a dead run left behind: wait for those that may still land; return those still unsure.

    A create with a known activity is settled once the activity ends. One whose 202 was never
    recorded is settled once RuckusONE shows no activity still running since it was sent.
    """
    pending = [m for m in mappings if m.intent == CREATE and m.target_passphrase_id is None]
    if not pending:
        return frozenset()
    unsettled: set[int] = set()
    known = {m.intent_request_id: m for m in pending if m.intent_request_id}
    if known:
        results = await r1.await_activities(known, deadline_s=60.0 if wait else 0.0)
        unsettled.update(known[request_id].id for request_id, result in results.items()
                         if not result.succeeded and result.message.startswith("no result after"))
    unknown = [m for m in pending if not m.intent_request_id and m.intent_at]
    if unknown:
        oldest = min(_parse_time(m.intent_at) for m in unknown)
        youngest_age_s = min((datetime.now(UTC) - _parse_time(m.intent_at)).total_seconds() for m in unknown)
        if wait and youngest_age_s < INTENT_MIN_AGE_S:
            await asyncio.sleep(INTENT_MIN_AGE_S - youngest_age_s)
        try:
            still_running = await r1.count_open_activities(_iso(oldest - timedelta(seconds=5)))
        except R1Error:
            still_running = None
        for mapping in unknown:
            age_s = (datetime.now(UTC) - _parse_time(mapping.intent_at)).total_seconds()
            if still_running != 0 and age_s < INTENT_SETTLE_S:
                unsettled.add(mapping.id)
    return frozenset(unsettled)


def _exit_code(result: SyncResult, complete: bool, unsettled: frozenset[int]) -> int:
    if result.plan is not None and result.plan.blocked_deletes:
        return BLOCKED
    failed = result.report.failed if result.report else 0
    if not complete or failed or result.errors or unsettled:
        return PARTIAL
    return OK


def _record_run(store: StateStore, result: SyncResult) -> None:
    if result.run_id is None:
        return
    if result.report is not None:
        store.save_run_actions(result.run_id, (
            {"kind": o.action.kind, "pool_name": o.action.pool_name, "username": o.action.username,
             "vlan_before": o.action.vlan_before, "vlan_after": o.action.vlan_after,
             "fingerprint": o.action.fingerprint[:12], "result": "ok" if o.ok else "failed", "message": o.message}
            for o in result.report.outcomes))
    status = {OK: "ok", PARTIAL: "partial", BLOCKED: "blocked"}.get(result.exit_code, "failed")
    store.save_run_end(result.run_id, status, result.exit_code, result.counts(), result.errors,
                       result.requests, result.throttled)
    result.open_flags = _open_flag_counts(store, result.orchestrator)


def _open_flag_counts(store: StateStore, orchestrator: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for flag in store.load_flags(orchestrator):
        counts[flag.kind] = counts.get(flag.kind, 0) + 1
    return counts


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
