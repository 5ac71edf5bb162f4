"""Carry out a plan: intent first, then the write, its activity, the read-back and the mapping.

Order: state-only actions, creates, updates, revokes (all sent concurrently), one wait for all
their activities, one re-read of the site-wide pool to learn new ids, identity renames, and
deletes last. Every state change is one transaction. A failure is recorded and the run goes on;
whatever did not finish is left as an intent or a difference that the next run picks up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from dpsk_orch.fingerprint import short
from dpsk_orch.r1.client import R1Client
from dpsk_orch.r1.errors import R1Error
from dpsk_orch.r1.records import ActivityResult, Passphrase, Pool
from dpsk_orch.state import Mapping, StateStore, utc_now
from dpsk_orch.sync.plan import (
    ADOPT,
    CREATE,
    DELETE,
    FORGET,
    LINK,
    RELINK,
    REVOKE,
    UNREVOKE,
    UPDATE,
    Action,
    Plan,
)

logger = logging.getLogger(__name__)

REVOCATION_REASON = "Revoked in its unit pool (dpsk-orch)"
WRITING, NAMING = "writing", "naming identities"  # the phases a progress bar shows

# progress(phase, steps just done, steps in the phase): called as each write is answered.
ProgressFn = Callable[[str, int, int], None]
IDENTITY_DESCRIPTION = "dpsk-orch copy of {pool_name} passphrase {passphrase_id}"


@dataclass(frozen=True)
class Outcome:
    """What became of one action."""

    action: Action
    ok: bool
    message: str = ""


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    identities_renamed: int = 0

    @property
    def failed(self) -> int:
        return sum(1 for outcome in self.outcomes if not outcome.ok)

    def record(self, action: Action, ok: bool, message: str = "") -> None:
        self.outcomes.append(Outcome(action, ok, message))
        if not ok:
            self.errors.append(f"{action.kind} {action.username} {short(action.fingerprint)}: {message}; "
                               "not done, the next run retries")


def redact(text: str, secret: str | None) -> str:
    """`text` with a known secret blanked out, as a last guard on server messages."""
    return text.replace(secret, "<withheld>") if secret else text


class Applier:
    """Applies one orchestrator's plan against RuckusONE and the state file."""

    def __init__(self, r1: R1Client, store: StateStore, orchestrator: str, target_pool: Pool,
                 targets: dict[str, Passphrase], progress: ProgressFn | None = None) -> None:
        self.r1 = r1
        self.store = store
        self.orchestrator = orchestrator
        self.target_pool = target_pool
        self.targets = targets
        self.progress = progress or (lambda _phase, _done, _total: None)
        self.report = ApplyReport()
        self._writes = 0  # the plan's writes: the length of the WRITING phase

    def _written(self, count: int = 1) -> None:
        self.progress(WRITING, count, self._writes)

    async def apply(self, plan: Plan) -> ApplyReport:
        self._writes = plan.writes
        with self.store.transaction():  # who owns which site-wide passphrase: one change, in plan order
            for action in plan.of_kind(RELINK, ADOPT, LINK, FORGET):
                self._apply_state_only(action)
        creates = self._record_create_intents(plan.of_kind(CREATE))
        logger.info("sending %d creates, %d updates, %d revokes, %d unrevokes", len(creates),
                    len(plan.of_kind(UPDATE)), len(plan.of_kind(REVOKE)), len(plan.of_kind(UNREVOKE)))
        sent = await asyncio.gather(
            *(self._send_create(action, mapping_id) for action, mapping_id in creates),
            *(self._send_update(action) for action in plan.of_kind(UPDATE)),
            self._send_revocations(plan.of_kind(REVOKE), REVOCATION_REASON),
            self._send_revocations(plan.of_kind(UNREVOKE), None),
        )
        pending = [item for group in sent for item in (group if isinstance(group, list) else [group]) if item]
        if pending:
            logger.info("waiting for the activities of %d accepted writes", len(pending))
        results = await self.r1.await_activities(request_id for request_id, _ in pending) if pending else {}
        created = self._finish_writes(pending, results)
        if created:
            await self._learn_new_ids(created)
        await self._rename_identities()
        await self._delete(plan.of_kind(DELETE))
        return self.report

    # ---- state only --------------------------------------------------------------------------

    def _apply_state_only(self, action: Action) -> None:
        if action.kind == RELINK:  # the identity is named again: its description names the source
            self.store.save_mapping_changes(
                action.mapping_id, source_passphrase_id=action.source_passphrase_id, source_pool_id=action.pool_id,
                source_fingerprint=action.fingerprint, vlan_id=action.vlan_after, target_username=action.username,
                identity_name=None)
        elif action.kind == ADOPT:
            target = self.targets[action.target_passphrase_id]
            self.store.save_target_owner(self.orchestrator, target.id, None)
            self.store.save_new_mapping(
                self.orchestrator, source_pool_id=action.pool_id, source_passphrase_id=action.source_passphrase_id,
                source_fingerprint=action.fingerprint, vlan_id=action.vlan_after, target_username=action.username,
                target_passphrase_id=target.id, identity_id=target.identity_id)
        elif action.kind == LINK:
            target = self.targets[action.target_passphrase_id]
            self.store.save_target_owner(self.orchestrator, target.id, action.mapping_id)
            self.store.save_mapping_changes(
                action.mapping_id, target_passphrase_id=target.id, identity_id=target.identity_id, identity_name=None,
                source_fingerprint=action.fingerprint, vlan_id=action.vlan_after, target_username=action.username,
                intent=None, intent_request_id=None, intent_at=None)
        elif action.kind == FORGET:
            self.store.delete_mappings([action.mapping_id])
        self.report.record(action, True)

    # ---- writes ------------------------------------------------------------------------------

    def _record_create_intents(self, actions: list[Action]) -> list[tuple[Action, int]]:
        """Intent before write: every create gets its mapping (target unknown) in one transaction."""
        with self.store.transaction():
            pairs = []
            for action in actions:
                if action.mapping_id is None:
                    mapping_id = self.store.save_new_mapping(
                        self.orchestrator, source_pool_id=action.pool_id,
                        source_passphrase_id=action.source_passphrase_id, source_fingerprint=action.fingerprint,
                        vlan_id=action.vlan_after, target_username=action.username, target_passphrase_id=None,
                        intent=CREATE)
                else:  # what is sent is recorded: the next run finds what landed by it
                    mapping_id = action.mapping_id
                    self.store.save_mapping_changes(
                        mapping_id, target_passphrase_id=None, identity_id=None, identity_name=None,
                        source_fingerprint=action.fingerprint, vlan_id=action.vlan_after,
                        target_username=action.username, intent=CREATE, intent_request_id=None, intent_at=utc_now())
                pairs.append((action, mapping_id))
        return pairs

    async def _send_create(self, action: Action, mapping_id: int) -> tuple[str, tuple] | None:
        try:
            request_id = await self.r1.create_passphrase(self.target_pool.id, action.fields)
        except R1Error as error:
            self.report.record(action, False, redact(str(error), action.fields.passphrase))
            return None
        finally:
            self._written()
        self.store.save_mapping_changes(mapping_id, intent_request_id=request_id)
        return request_id, (CREATE, action, mapping_id)

    async def _send_update(self, action: Action) -> tuple[str, tuple] | None:
        changes = {name: getattr(action.fields, name) for name in action.changed}
        if action.mapping_id is not None:
            self.store.save_mapping_changes(action.mapping_id, intent=UPDATE, intent_at=utc_now())
        try:
            request_id = await self.r1.update_passphrase(self.target_pool.id, action.target_passphrase_id, changes)
        except R1Error as error:
            self.report.record(action, False, redact(str(error), action.fields.passphrase))
            return None
        finally:
            self._written()
        return request_id, (UPDATE, action, action.mapping_id)

    async def _send_revocations(self, actions: list[Action], reason: str | None) -> list[tuple[str, tuple]]:
        if not actions:
            return []
        ids = [action.target_passphrase_id for action in actions]
        try:
            request_id = await self.r1.set_revoked(self.target_pool.id, ids, reason)
        except R1Error as error:
            for action in actions:
                self.report.record(action, False, str(error))
            return []
        finally:
            self._written(len(actions))
        return [(request_id, (action.kind, action, action.mapping_id)) for action in actions]

    def _finish_writes(self, pending: list[tuple[str, tuple]],
                       results: dict[str, ActivityResult]) -> list[tuple[Action, int]]:
        """Record each write's activity result; return the creates that succeeded."""
        created: list[tuple[Action, int]] = []
        for request_id, (kind, action, mapping_id) in pending:
            result = results[request_id]
            message = redact(result.message, action.fields.passphrase if action.fields else None)
            timed_out = not result.succeeded and message.startswith("no result after")
            if kind == CREATE:
                if result.succeeded:
                    created.append((action, mapping_id))
                elif not timed_out:  # RuckusONE says it was not created: the next run creates again
                    self.store.save_mapping_changes(mapping_id, intent=None, intent_request_id=None)
                if not result.succeeded:
                    self.report.record(action, False, message)
                continue
            if result.succeeded:
                self._save_applied(action, mapping_id)
                self.report.record(action, True)
            else:
                if mapping_id is not None:
                    self.store.save_mapping_changes(mapping_id, intent=None, intent_at=None)
                self.report.record(action, False, message)
        return created

    def _save_applied(self, action: Action, mapping_id: int | None) -> None:
        if mapping_id is None:
            return
        changes: dict = {"intent": None, "intent_at": None}
        if action.kind == UPDATE:
            changes.update(source_fingerprint=action.fingerprint, vlan_id=action.vlan_after,
                           target_username=action.username)
        self.store.save_mapping_changes(mapping_id, **changes)

    async def _learn_new_ids(self, created: list[tuple[Action, int]]) -> None:
        """One re-read of the site-wide pool; each new row is found by its fingerprint and VLAN."""
        try:
            rows = await self.r1.fetch_passphrases(self.target_pool.id, self.target_pool.name)
        except R1Error as error:
            for action, _ in created:
                self.report.record(action, False, f"created, but its id is not known yet ({error})")
            return
        owned = {m.target_passphrase_id for m in self.store.load_mappings(self.orchestrator)}
        fingerprint = self.store.fingerprints.of
        by_key: dict[tuple[str, int | None], list[Passphrase]] = {}
        for row in rows:
            if row.id not in owned:
                by_key.setdefault((fingerprint(row.passphrase), row.vlan_id), []).append(row)
        for action, mapping_id in created:
            matches = by_key.get((action.fingerprint, action.vlan_after), [])
            if len(matches) != 1:
                found = "not visible yet" if not matches else f"found {len(matches)} copies"
                self.report.record(action, False, f"created, but {found} in the site-wide pool")
                continue
            row = matches[0]
            logger.debug("created %s: site-wide passphrase %s", action.username, row.id)
            self.targets[row.id] = row
            self.store.save_mapping_changes(
                mapping_id, target_passphrase_id=row.id, identity_id=row.identity_id,
                target_username=action.username, intent=None, intent_request_id=None, intent_at=None)
            self.report.record(action, True)

    async def _rename_identities(self) -> None:
        """Name each site-wide identity after its passphrase and its source: the ownership marker."""
        todo = [m for m in self.store.load_mappings(self.orchestrator)
                if m.managed and m.target_passphrase_id and m.identity_id and m.identity_name != m.target_username]
        if not todo:
            return
        pool_names = {pool.pool_id: pool.name
                      for pool in self.store.load_source_pools(self.orchestrator, include_gone=True)}
        answers = await asyncio.gather(*(self._rename_identity(m, pool_names, len(todo)) for m in todo))
        waiting = {request_id: mapping for request_id, mapping in answers if request_id}
        results = await self.r1.await_activities(waiting) if waiting else {}
        renamed = [mapping for request_id, mapping in answers if mapping is not None
                   and (request_id is None or results[request_id].succeeded)]
        self.store.save_many_mapping_changes((m.id, {"identity_name": m.target_username}) for m in renamed)
        self.report.identities_renamed = len(renamed)
        logger.info("named %d of %d site-wide identities after their source", len(renamed), len(todo))
        failed = len(todo) - len(renamed)
        if failed:
            self.report.errors.append(f"{failed} identity rename(s) failed; not fatal, the next run retries")

    async def _rename_identity(self, mapping: Mapping, pool_names: dict[str, str],
                               total: int) -> tuple[str | None, Mapping | None]:
        group_id = self._identity_group(mapping)
        pool_name = pool_names.get(mapping.source_pool_id, mapping.source_pool_id)
        description = IDENTITY_DESCRIPTION.format(pool_name=pool_name,
                                                  passphrase_id=mapping.source_passphrase_id)
        try:
            request_id = await self.r1.update_identity(group_id, mapping.identity_id, mapping.target_username,
                                                       mapping.target_username, description)
        except R1Error:
            return None, None
        finally:
            self.progress(NAMING, 1, total)
        return request_id, mapping

    def _identity_group(self, mapping: Mapping) -> str:
        row = self.targets.get(mapping.target_passphrase_id or "")
        return (row.identity_group_id if row and row.identity_group_id else None) or \
            self.target_pool.identity_group_id or ""

    # ---- deletes -----------------------------------------------------------------------------

    async def _delete(self, actions: list[Action]) -> None:
        """Deletes last: intent, one bulk delete, its identities, then the mappings."""
        if not actions:
            return
        self.store.save_intent([a.mapping_id for a in actions], DELETE)
        ids = [a.target_passphrase_id for a in actions]
        logger.info("deleting %d site-wide passphrases whose source is gone", len(ids))
        try:
            request_id = await self.r1.delete_passphrases(self.target_pool.id, ids)
            result = (await self.r1.await_activities([request_id]))[request_id]
        except R1Error as error:
            result = ActivityResult("", False, str(error))
        self._written(len(actions))
        if not result.succeeded:
            self.store.save_intent([a.mapping_id for a in actions], None)
            for action in actions:
                self.report.record(action, False, result.message)
            return
        failures = await delete_identities(self.r1, [self.targets[i] for i in ids if i in self.targets],
                                           self.target_pool.identity_group_id)
        self.report.errors.extend(f"identity of a deleted passphrase not deleted: {f}" for f in failures)
        self.store.delete_mappings([a.mapping_id for a in actions])
        for action in actions:
            self.report.record(action, True)


async def delete_identities(r1: R1Client, rows: list[Passphrase], fallback_group_id: str | None) -> list[str]:
    """Delete the identities of deleted site-wide passphrases; returns a message for each failure."""
    async def send(row: Passphrase) -> str | None:
        group_id = row.identity_group_id or fallback_group_id
        if not row.identity_id or not group_id:
            return None
        try:
            return await r1.delete_identity(group_id, row.identity_id)
        except R1Error as error:
            if error.status == 404:
                return None  # already gone with its passphrase
            failures.append(str(error))
            return None

    failures: list[str] = []
    request_ids = [request_id for request_id in await asyncio.gather(*(send(row) for row in rows)) if request_id]
    results = await r1.await_activities(request_ids) if request_ids else {}
    failures.extend(result.message for result in results.values() if not result.succeeded)
    return failures
