"""Resolving flags: what each action means for each kind of flag, and doing it.

`check_action` and `describe` are pure (the CLI uses them to refuse, confirm and dry-run);
`resolve` does the work against RuckusONE and records it on the flag.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from dpsk_orch.config import Config, OrchestratorConfig
from dpsk_orch.errors import UsageError
from dpsk_orch.exit_codes import OK
from dpsk_orch.fingerprint import short
from dpsk_orch.r1.client import R1Client
from dpsk_orch.r1.errors import R1Error
from dpsk_orch.r1.records import Pool
from dpsk_orch.state import Flag, Mapping, StateStore
from dpsk_orch.sync.apply import delete_identities
from dpsk_orch.sync.discovery import discover
from dpsk_orch.sync.run import SyncOptions, source_pools, sync_orchestrator
from dpsk_orch.sync.snapshot import PoolNotFound, resolve_pool

ACTIONS: dict[str, tuple[str, ...]] = {
    "removal": ("delete", "keep", "retry"),
    "orphan": ("copy-to-source", "ignore", "delete"),
    "conflict": ("keep", "ignore"),
    "missing_vlan": ("retry",),
    "target_missing": ("retry",),
    "pool_gone": ("delete", "keep", "retry"),
}
FLAG_KINDS = tuple(ACTIONS)
CHANGES_RUCKUSONE = frozenset({"delete", "copy-to-source"})  # asks for confirmation


@dataclass(frozen=True)
class Resolution:
    flag: Flag
    action: str
    ok: bool
    message: str


def check_action(flag: Flag, action: str, to_pool: str | None) -> None:
    """UsageError unless `action` applies to this flag as asked."""
    if flag.status != "open":
        raise UsageError(f"flag {flag.id} is already {flag.status} (by {flag.resolution}); "
                         "`dpsk-orch flags list` shows the open ones")
    allowed = ACTIONS.get(flag.kind, ())
    if action not in allowed:
        raise UsageError(f"flag {flag.id} is a {flag.kind} flag: --action must be one of {', '.join(allowed)}")
    if flag.kind == "conflict" and action == "keep" and not to_pool:
        raise UsageError(f"flag {flag.id}: keep needs --to-pool naming the pool whose passphrase wins")
    if to_pool and not (action == "copy-to-source" or (flag.kind == "conflict" and action == "keep")):
        raise UsageError("--to-pool goes only with copy-to-source or keep on a conflict")


def suggested_pool(store: StateStore, flag: Flag) -> str | None:
    """For an orphan: the one source pool whose managed passphrases carry its VLAN, if there is one."""
    if flag.vlan_id is None:
        return None
    pool_ids = {m.source_pool_id for m in store.load_mappings(flag.orchestrator) if m.vlan_id == flag.vlan_id}
    if len(pool_ids) != 1:
        return None
    names = {p.pool_id: p.name for p in store.load_source_pools(flag.orchestrator, include_gone=True)}
    return names.get(pool_ids.pop())


def describe(store: StateStore, flag: Flag, action: str, to_pool: str | None) -> str:
    """What resolving `flag` with `action` will do, in a person's words."""
    vlan = f"VLAN {flag.vlan_id}" if flag.vlan_id is not None else "no VLAN"
    who = f"{flag.username or '?'} ({vlan}, {short(flag.fingerprint)})"
    if flag.kind == "pool_gone":
        count = len(pool_mappings(store, flag))
        return {"delete": f"delete the {count} site-wide passphrase(s) made from pool {flag.pool_name}",
                "keep": f"keep the {count} site-wide passphrase(s) of pool {flag.pool_name}, no longer managed",
                "retry": f"discover again whether pool {flag.pool_name} is back"}[action]
    if action == "delete":
        return f"delete {who} from the site-wide pool, with its identity"
    if action == "keep" and flag.kind == "removal":
        return f"keep {who} in the site-wide pool, no longer managed or flagged"
    if action == "keep":
        return f"keep the passphrase of pool {to_pool} as the winner of conflict {who}; the others stay unsynced"
    if action == "copy-to-source":
        pool = to_pool or suggested_pool(store, flag) or "?"
        return f"copy orphan {who} into source pool {pool}; from then on it is managed like any other"
    if action == "ignore":
        return f"ignore {flag.kind} {who}: not reported again unless it changes"
    return f"sync pool {flag.pool_name} again now and see whether {flag.kind} {who} still holds"


def pool_mappings(store: StateStore, flag: Flag) -> list[Mapping]:
    """The managed, placed mappings of a pool_gone flag's pool."""
    return [m for m in store.load_mappings(flag.orchestrator)
            if m.source_pool_id == flag.pool_id and m.managed and m.target_passphrase_id]


async def resolve(config: Config, orchestrator: OrchestratorConfig, store: StateStore, r1: R1Client, flag: Flag,
                  action: str, to_pool: str | None) -> Resolution:
    """Do `action` for `flag` and record the outcome on it (who, when, what, result)."""
    work = Resolver(config, orchestrator, store, r1, flag)
    try:
        ok, message, status = await work.run(action, to_pool)
    except (R1Error, PoolNotFound, UsageError) as error:
        ok, message, status = False, f"{error}; nothing more was done", None
    recorded = f"{action}:{to_pool}" if to_pool and action != "keep" else action
    if status is not None:
        store.save_flag_resolution(flag.id, status, actor(), recorded, message)
    else:
        store.save_flag_attempt(flag.id, actor(), recorded, ("done: " if ok else "failed: ") + message)
    return Resolution(flag, action, ok, message)


def actor() -> str:
    """The OS user resolving a flag, as recorded with the resolution."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Resolver:
    """One flag's resolution. Each handler returns (ok, message, new status or None to leave it open)."""

    def __init__(self, config: Config, orchestrator: OrchestratorConfig, store: StateStore, r1: R1Client,
                 flag: Flag) -> None:
        self.config = config
        self.orchestrator = orchestrator
        self.store = store
        self.r1 = r1
        self.flag = flag

    async def run(self, action: str, to_pool: str | None) -> tuple[bool, str, str | None]:
        kind = self.flag.kind
        if kind == "pool_gone":
            return await {"delete": self.delete_pool_passphrases, "keep": self.keep_pool_passphrases,
                          "retry": self.rediscover}[action]()
        if action == "delete":
            return await self.delete_one()
        if action == "keep" and kind == "removal":
            self.store.save_mapping_changes(self.flag.mapping_id, managed=False)
            return True, "kept in the site-wide pool, no longer managed", "resolved"
        if action == "keep":
            return await self.keep_winner(to_pool or "")
        if action == "ignore":
            return True, "ignored until it changes", "ignored"
        if action == "copy-to-source":
            return await self.copy_to_source(to_pool)
        return await self.retry()

    # ---- site-wide deletes -------------------------------------------------------------------

    async def delete_one(self) -> tuple[bool, str, str | None]:
        if self.flag.kind == "removal" and await self._source_is_back():
            return False, "the source passphrase is back in its pool; the next sync updates it instead", None
        ok, message = await self._delete_targets([self.flag.target_passphrase_id or ""])
        if ok and self.flag.mapping_id:
            self.store.delete_mappings([self.flag.mapping_id])
        return ok, message, "resolved" if ok else None

    async def delete_pool_passphrases(self) -> tuple[bool, str, str | None]:
        mappings = pool_mappings(self.store, self.flag)
        ok, message = await self._delete_targets([m.target_passphrase_id for m in mappings])
        if ok:
            self.store.delete_mappings([m.id for m in mappings])
        return ok, message, "resolved" if ok else None

    async def _delete_targets(self, target_ids: list[str]) -> tuple[bool, str]:
        """Delete site-wide passphrases and their identities, then read the pool again to verify."""
        target = await self._target_pool()
        rows = {row.id: row for row in await self.r1.fetch_passphrases(target.id, target.name)}
        present = [i for i in target_ids if i in rows]
        if present:
            request_id = await self.r1.delete_passphrases(target.id, present)
            result = (await self.r1.await_activities([request_id]))[request_id]
            if not result.succeeded:
                return False, f"RuckusONE refused the delete: {result.message}"
        failures = await delete_identities(self.r1, [rows[i] for i in present], target.identity_group_id)
        left = {row.id for row in await self.r1.fetch_passphrases(target.id, target.name)} & set(target_ids)
        if left:
            return False, f"{len(left)} passphrase(s) still in the site-wide pool after the delete"
        note = f"; {len(failures)} identity delete(s) failed, remove them in RuckusONE" if failures else ""
        return True, f"deleted {len(present)} site-wide passphrase(s), verified gone{note}"

    async def _source_is_back(self) -> bool:
        rows = await self.r1.fetch_passphrases(self.flag.pool_id or "", self.flag.pool_name or "")
        return any(row.id == self.flag.source_passphrase_id for row in rows)

    # ---- keeping -----------------------------------------------------------------------------

    async def keep_pool_passphrases(self) -> tuple[bool, str, str | None]:
        mappings = pool_mappings(self.store, self.flag)
        self.store.save_many_mapping_changes((m.id, {"managed": False}) for m in mappings)
        return True, f"kept {len(mappings)} site-wide passphrase(s), no longer managed", "resolved"

    async def keep_winner(self, to_pool: str) -> tuple[bool, str, str | None]:
        """A conflict decided by a person: the passphrase of `to_pool` is placed, the others are not."""
        pool = await self._source_pool(to_pool)
        rows = await self.r1.fetch_passphrases(pool.id, pool.name)
        if not any(self.store.fingerprints.of(row.passphrase) == self.flag.fingerprint for row in rows):
            raise UsageError(f"pool {pool.name} holds no passphrase of conflict {self.flag.id}")
        self.store.save_flag_resolution(self.flag.id, "ignored", actor(), f"keep:{pool.id}", f"{pool.name} wins")
        ok, message = await self._sync_pool(pool.id)  # places the winner now
        return ok, message, None

    # ---- copying an orphan -------------------------------------------------------------------

    async def copy_to_source(self, to_pool: str | None) -> tuple[bool, str, str | None]:
        name = to_pool or suggested_pool(self.store, self.flag)
        if not name:
            raise UsageError(f"no single source pool carries VLAN {self.flag.vlan_id}: give --to-pool")
        pool = await self._source_pool(name)
        target = await self._target_pool()
        orphan = next((row for row in await self.r1.fetch_passphrases(target.id, target.name)
                       if row.id == self.flag.target_passphrase_id), None)
        if orphan is None:
            return False, "the orphan is no longer in the site-wide pool", "resolved"
        request_id = await self.r1.create_passphrase(pool.id, orphan.fields())
        result = (await self.r1.await_activities([request_id]))[request_id]
        if not result.succeeded:
            return False, f"RuckusONE refused the copy: {result.message}", None
        ok, message = await self._sync_pool(pool.id)
        return ok, f"copied to {pool.name}; {message}", "resolved" if ok else None

    # ---- retrying ----------------------------------------------------------------------------

    async def retry(self) -> tuple[bool, str, str | None]:
        ok, message = await self._sync_pool(self.flag.pool_id or "")
        still = self.store.load_flag(self.flag.id)
        if still is not None and still.status == "open":
            return ok, f"{message}; the flag still holds: {still.detail}", None
        return ok, f"{message}; the flag no longer holds", None

    async def rediscover(self) -> tuple[bool, str, str | None]:
        found = await discover(self.config, self.orchestrator, self.store, self.r1, dry_run=False)
        if not found.is_complete:
            return False, "discovery incomplete: " + "; ".join(found.errors), None
        if any(pool.id == self.flag.pool_id for pool in found.matched):
            return True, f"pool {self.flag.pool_name} is back on the venue", "resolved"
        return True, f"pool {self.flag.pool_name} is still gone", None

    async def _sync_pool(self, pool_id: str) -> tuple[bool, str]:
        result = await sync_orchestrator(self.orchestrator, self.store, self.r1, SyncOptions(pools=(pool_id,)))
        counts = ", ".join(f"{n} {k}" for k, n in sorted(result.counts().items())) or "nothing to change"
        if result.exit_code != OK:
            return False, f"sync of the pool: {counts}; " + "; ".join(result.errors)
        return True, f"sync of the pool: {counts}"

    # ---- pools -------------------------------------------------------------------------------

    async def _target_pool(self) -> Pool:
        return resolve_pool(self.orchestrator.site_wide_pool, await self.r1.fetch_pools())

    async def _source_pool(self, name_or_id: str) -> Pool:
        pools, _ = source_pools(self.orchestrator, self.store, await self.r1.fetch_pools(), None)
        for pool, _vlan in pools:
            if name_or_id in (pool.name, pool.id):
                return pool
        known = ", ".join(pool.name for pool, _ in pools) or "none"
        raise UsageError(f"{name_or_id} is not a source pool of {self.orchestrator.name} (source pools: {known})")

