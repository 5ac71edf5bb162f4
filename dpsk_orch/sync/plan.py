"""The sync decision: a pure function of (snapshot, mappings, config) to actions and flags.

Nothing here talks to RuckusONE or the state file. The rules of DESIGN.md live here:
absence is judged only from complete reads; the right VLAN or nothing; only what we own is touched.
And one more: the site-wide pool holds a passphrase string once, so a string's copy is the row that
holds it, and follows the string from source to source (a resident who moves, two units that swap).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dpsk_orch.config import OrchestratorConfig, render_username
from dpsk_orch.r1.records import Passphrase, PassphraseFields
from dpsk_orch.state import FlagSpec
from dpsk_orch.state import Mapping as StoredMapping
from dpsk_orch.sync.snapshot import PoolRead, Snapshot

# Action kinds, in the order apply carries them out.
RELINK, ADOPT, LINK, CREATE, UPDATE, REVOKE, UNREVOKE, FORGET, DELETE = (
    "relink", "adopt", "link", "create", "update", "revoke", "unrevoke", "forget", "delete")
WRITE_KINDS = frozenset({CREATE, UPDATE, REVOKE, UNREVOKE, DELETE})

ORPHAN_SCOPE = ""  # the judged-scope entry for flags that belong to no source pool


@dataclass(frozen=True)
class Action:
    """One thing to do. `fields` holds the desired site-wide values (with the secret): never shown."""

    kind: str
    pool_id: str
    pool_name: str
    username: str
    fingerprint: str
    reason: str
    vlan_before: int | None = None
    vlan_after: int | None = None
    source_passphrase_id: str | None = None
    target_passphrase_id: str | None = None
    mapping_id: int | None = None
    changed: tuple[str, ...] = ()
    fields: PassphraseFields | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Plan:
    orchestrator: str
    actions: tuple[Action, ...] = ()
    flags: tuple[FlagSpec, ...] = ()
    judged_scope: frozenset[str] = frozenset()  # pool ids (and ORPHAN_SCOPE) whose flags were judged
    notes: tuple[str, ...] = ()
    blocked_deletes: int = 0  # removals held back by the max_deletes guard

    def of_kind(self, *kinds: str) -> list[Action]:
        return [action for action in self.actions if action.kind in kinds]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for action in self.actions:
            counts[action.kind] += 1
        for flag in self.flags:
            counts[f"flag_{flag.kind}"] += 1
        return dict(counts)

    @property
    def writes(self) -> int:
        return sum(1 for action in self.actions if action.kind in WRITE_KINDS)


@dataclass(frozen=True)
class Decisions:
    """What people decided with `flags resolve` that the planner must respect."""

    ignored_flag_keys: frozenset[str] = frozenset()
    conflict_winners: Mapping[str, str] = field(default_factory=dict)  # fingerprint -> winning pool id


@dataclass(frozen=True)
class SourceRow:
    read: PoolRead
    row: Passphrase = field(repr=False)
    fingerprint: str

    @property
    def vlan(self) -> int | None:
        return self.row.vlan_id or self.read.fallback_vlan


def plan_sync(config: OrchestratorConfig, snapshot: Snapshot, mappings: Sequence[StoredMapping],
              fingerprint: Callable[[str], str], decisions: Decisions = Decisions(),
              allow_deletes: bool = False) -> Plan:
    """Decide every action and flag for one orchestrator. See the module docstring for the rules."""
    if not snapshot.target.is_complete:
        return Plan(config.name)  # nothing can be judged without the site-wide pool
    return _Planner(config, snapshot, mappings, fingerprint, decisions, allow_deletes).plan()


class _Planner:
    """The working state of one plan_sync call (kept in one object so each step stays short)."""

    def __init__(self, config: OrchestratorConfig, snapshot: Snapshot, mappings: Sequence[StoredMapping],
                 fingerprint: Callable[[str], str], decisions: Decisions, allow_deletes: bool) -> None:
        self.config = config
        self.snapshot = snapshot
        self.mappings = list(mappings)
        self.decisions = decisions
        self.allow_deletes = allow_deletes
        self.targets = {row.id: row for row in snapshot.target.passphrases}
        self.target_fingerprints = {row.id: fingerprint(row.passphrase) for row in self.targets.values()}
        self.holding: dict[str, list[Passphrase]] = defaultdict(list)  # fingerprint -> site-wide rows with it
        for row in self.targets.values():
            self.holding[self.target_fingerprints[row.id]].append(row)
        self.by_source = {m.source_passphrase_id: m for m in self.mappings}
        self.reads = {read.pool.id: read for read in snapshot.sources}
        self.rows = [SourceRow(read, row, fingerprint(row.passphrase))
                     for read in snapshot.sources if read.is_complete for row in read.passphrases]
        self.source_fingerprints = {source.row.id: source.fingerprint for source in self.rows}
        # Who owns which site-wide row, as this plan goes: a row can pass to the source that now holds its
        # string. `freed` rows were ours and lost their owner; `detached` mappings lost their row.
        self.owner = {m.target_passphrase_id: m for m in self.mappings if m.target_passphrase_id}
        self.freed: set[str] = set()
        self.adopted: set[str] = set()  # rows given to mappings this run makes
        self.detached: set[int] = set()
        self.relinked: set[int] = set()
        self.absent_ids: set[int] = set()
        self.reported: set[str] = set()  # unmanaged rows named by a conflict flag (so not also orphans)
        self.wanted: set[str] = set()  # fingerprints of the source passphrases this plan places
        self.actions: list[Action] = []
        self.flags: list[FlagSpec] = []
        self.notes: list[str] = []
        self.blocked_deletes = 0

    def plan(self) -> Plan:
        placeable = self._flag_conflicting_sources()
        absent = self._absent_mappings()
        self.absent_ids = {m.id for m in absent}
        placed = [source for source in placeable if self.snapshot.in_scope(source.read.pool.id)]
        self.wanted = {source.fingerprint for source in placed if source.vlan is not None}
        for source in placed:
            self._plan_source(source)
        self._plan_removals([m for m in absent if m.id not in self.relinked])
        if self.snapshot.scope is None:
            self._flag_orphans()
        return Plan(self.config.name, tuple(self.actions), tuple(self._unignored(self.flags)),
                    self._judged_scope(), tuple(self.notes), self.blocked_deletes)

    # ---- sources -----------------------------------------------------------------------------

    def _flag_conflicting_sources(self) -> list[SourceRow]:
        """Rows whose passphrase string appears once among all sources; conflicts become flags.

        A copy placed before the conflict arose stays as it is, except that a revocation at its
        source still reaches it: taking access away is never a guess."""
        by_fingerprint: dict[str, list[SourceRow]] = defaultdict(list)
        for source in self.rows:
            by_fingerprint[source.fingerprint].append(source)
        placeable: list[SourceRow] = []
        for fingerprint, sources in by_fingerprint.items():
            if len(sources) == 1:
                placeable.extend(sources)
                continue
            winner = self.decisions.conflict_winners.get(fingerprint)
            winners = [s for s in sources if s.read.pool.id == winner]
            if len(winners) == 1:  # a person chose this one (`flags resolve --action keep`)
                placeable.append(winners[0])
                continue
            if not any(self.snapshot.in_scope(s.read.pool.id) for s in sources):
                continue  # --pool: not a conflict of the pools this run acts on
            for source in sources:
                self._revoke_placed_copy(source)
            first = sources[0]
            pools = ", ".join(f"{s.read.pool.name} (VLAN {s.vlan})" for s in sources)
            self._flag("conflict", f"conflict:{fingerprint}", first, fingerprint,
                       f"the same passphrase is in {len(sources)} source passphrases: {pools}; none is placed")
        return placeable

    def _absent_mappings(self) -> list[StoredMapping]:
        """Managed mappings whose source passphrase is missing from a complete read of its pool."""
        absent = []
        for mapping in self.mappings:
            read = self.reads.get(mapping.source_pool_id)
            if (mapping.managed and read is not None and read.is_complete
                    and mapping.source_passphrase_id not in self.source_fingerprints):
                absent.append(mapping)
        return absent

    def _plan_source(self, source: SourceRow) -> None:
        """Where one placeable source passphrase's copy is, and what it needs."""
        mapping = self.by_source.get(source.row.id)
        if mapping is not None and not mapping.managed:
            return  # a person chose to keep it unmanaged
        vlan = source.vlan
        if vlan is None:
            self._flag("missing_vlan", f"missing_vlan:{source.row.id}", source, source.fingerprint,
                       f"no VLAN on the passphrase and no fallback `vlan:` for pool {source.read.pool.name}")
            return
        desired = self._desired(source, vlan)
        pending = mapping is not None and mapping.target_passphrase_id is None and mapping.id not in self.detached
        if pending and self._plan_pending_create(source, desired, mapping):
            return
        current = self._copy_of(mapping)
        if current is not None and self.target_fingerprints[current.id] == source.fingerprint:
            self._plan_changes(source, desired, current, mapping)
            return
        if current is not None and self.target_fingerprints[current.id] in self.wanted:
            self._release(current)  # the source has a new string, and another source has its old one: theirs
            current = None
        vanished = (mapping is not None and mapping.target_passphrase_id is not None
                    and mapping.target_passphrase_id not in self.targets)
        if vanished and source.row.is_revoked:
            self._act_on_mapping(FORGET, mapping, "site-wide copy gone and its source is revoked: nothing to restore")
            return
        if vanished:
            self._flag("target_missing", f"target_missing:{source.row.id}", source, source.fingerprint,
                       "the site-wide passphrase made from this source is gone; it is created again")
        holders = [row for row in self.holding[source.fingerprint] if row is not current]
        if holders:
            self._plan_string_in_use(source, desired, mapping, current, holders)
        elif current is not None:
            self._plan_changes(source, desired, current, mapping)  # a new string: the copy changes with it
        elif not source.row.is_revoked:  # a revoked passphrase is placed only once it is active again
            self._act(CREATE, source, desired, self._create_reason(mapping, vanished), mapping=mapping)

    def _create_reason(self, mapping: StoredMapping | None, vanished: bool) -> str:
        if vanished:
            return "site-wide copy disappeared"
        if mapping is None:
            return "new source passphrase"
        if mapping.id in self.detached:
            return "source changed to a new string; its old copy went to the passphrase that holds the old one now"
        return "earlier create did not land"

    def _plan_pending_create(self, source: SourceRow, desired: PassphraseFields, mapping: StoredMapping) -> bool:
        """A create an earlier run recorded: link what landed (matched by what was sent, which the source may
        have changed since), or wait for what may still land. False: it did not land; place it afresh."""
        landed = [row for row in self.holding[mapping.source_fingerprint]
                  if self._is_unmanaged(row) and row.vlan_id == mapping.vlan_id]
        if landed:
            self._give(landed[0], mapping)
            self._act(LINK, source, desired, "create of an earlier run found in the site-wide pool",
                      mapping=mapping, target=landed[0])
            self._plan_changes(source, desired, landed[0], mapping)
            return True
        if mapping.id in self.snapshot.unsettled_mapping_ids:
            self.notes.append(f"{desired.username}: an earlier create may still be running in RuckusONE; "
                              "left for the next run")
            return True
        if source.row.is_revoked:
            self._act_on_mapping(FORGET, mapping, "earlier create did not land and the source is now revoked")
            return True
        return False

    def _plan_string_in_use(self, source: SourceRow, desired: PassphraseFields, mapping: StoredMapping | None,
                            current: Passphrase | None, holders: list[Passphrase]) -> None:
        """The source's string is in the site-wide pool in another row already. The pool holds a string once,
        so that row is the source's copy to be: take it over when it was ours and has lost its own source
        (deleted, or changed to another string), adopt an identical unmanaged entry, and otherwise wait
        or flag. A create here would fail, or make a second entry for one passphrase."""
        takeable = sorted((row for row in holders if self._is_takeable(row)),
                          key=lambda row: row.vlan_id != desired.vlan_id)
        if takeable:
            self._take_over(source, desired, mapping, current, takeable[0])
            return
        unmanaged = [row for row in holders if self._is_unmanaged(row)]
        identical = [row for row in unmanaged if row.vlan_id == desired.vlan_id]
        if identical and current is None:
            self._give(identical[0], mapping)
            if mapping is None:
                self._act(ADOPT, source, desired, "an unmanaged site-wide entry has the same string and VLAN",
                          target=identical[0])
            else:
                self._act(LINK, source, desired, "an unmanaged site-wide entry has the same string and VLAN",
                          mapping=mapping, target=identical[0])
            self._plan_changes(source, desired, identical[0], mapping)
        elif unmanaged:
            self.reported.update(row.id for row in unmanaged)
            vlans = ", ".join(str(row.vlan_id) for row in unmanaged)
            self._flag("conflict", f"conflict:{source.fingerprint}", source, source.fingerprint,
                       f"an unmanaged site-wide entry has this passphrase under VLAN {vlans}, the source under "
                       f"VLAN {desired.vlan_id}; nothing is placed")
        else:
            self._plan_held_by_unknown_copy(source, desired, holders[0])

    def _plan_held_by_unknown_copy(self, source: SourceRow, desired: PassphraseFields, row: Passphrase) -> None:
        """The string is in a copy dpsk-orch made for another source it cannot judge this run."""
        owner = self.owner[row.id]
        read = self.reads.get(owner.source_pool_id)
        if read is not None and not (read.is_complete and self.snapshot.in_scope(read.pool.id)):
            self.notes.append(f"{desired.username}: its passphrase is the copy of a passphrase of pool "
                              f"{read.pool.name}, which this run did not judge; left for the next run")
            return
        why = "kept unmanaged by a person" if not owner.managed else "whose pool is no longer read"
        self._flag("conflict", f"conflict:{source.fingerprint}", source, source.fingerprint,
                   f"the site-wide pool already holds this passphrase (VLAN {row.vlan_id}) as the copy of another "
                   f"source passphrase, {why}; nothing is placed")

    def _take_over(self, source: SourceRow, desired: PassphraseFields, mapping: StoredMapping | None,
                   current: Passphrase | None, row: Passphrase) -> None:
        """Make `row` the source's copy: its passphrase moved here (the old mapping follows it), or the source
        changed to the string of a copy that lost its own source (that copy changes hands)."""
        previous = self.owner.get(row.id)
        if mapping is None and previous is not None and previous.id in self.absent_ids:
            self.relinked.add(previous.id)
            self._act(RELINK, source, desired, "the same passphrase, re-created or moved here from "
                      f"{self._pool_name(previous.source_pool_id)}", mapping=previous, vlan_before=row.vlan_id)
            self._plan_changes(source, desired, row, previous)
            return
        if current is not None:
            self._release(current)  # its old string has no source now: reported as an orphan
        self._give(row, mapping)
        if mapping is None:
            self._act(ADOPT, source, desired, "takes over the site-wide copy whose source no longer holds this "
                      "string", target=row)
        else:
            self._act(LINK, source, desired, "takes over the site-wide copy whose source no longer holds this "
                      "string", mapping=mapping, target=row)
        self._plan_changes(source, desired, row, mapping)

    def _revoke_placed_copy(self, source: SourceRow) -> None:
        """Revoke the copy of a revoked source that cannot be placed (a conflict), if it has one."""
        copy = self._copy_of(self.by_source.get(source.row.id))
        if copy is None or not source.row.is_revoked or copy.is_revoked:
            return
        mapping = self.by_source[source.row.id]
        self.actions.append(Action(
            kind=REVOKE, pool_id=source.read.pool.id, pool_name=source.read.pool.name, username=copy.username,
            fingerprint=source.fingerprint, reason="source passphrase revoked (its string is in a conflict)",
            vlan_after=copy.vlan_id, source_passphrase_id=source.row.id, target_passphrase_id=copy.id,
            mapping_id=mapping.id))

    def _plan_changes(self, source: SourceRow, desired: PassphraseFields, target: Passphrase,
                      mapping: StoredMapping | None) -> None:
        changed = changed_fields(desired, target)
        if changed:
            self._act(UPDATE, source, desired, "source changed: " + ", ".join(changed), mapping=mapping,
                      target=target, vlan_before=target.vlan_id, changed=changed)
        if source.row.is_revoked != target.is_revoked:
            kind = REVOKE if source.row.is_revoked else UNREVOKE
            self._act(kind, source, desired, f"source passphrase {kind}d", mapping=mapping, target=target)

    # ---- who owns which site-wide row ----------------------------------------------------------

    def _copy_of(self, mapping: StoredMapping | None) -> Passphrase | None:
        """The site-wide row the mapping owns at this point of the plan."""
        row = self.targets.get(mapping.target_passphrase_id or "") if mapping else None
        return row if row is not None and self.owner.get(row.id) is mapping else None

    def _is_unmanaged(self, row: Passphrase) -> bool:
        """Never made or owned by dpsk-orch."""
        return row.id not in self.owner and row.id not in self.freed and row.id not in self.adopted

    def _is_takeable(self, row: Passphrase) -> bool:
        """A copy dpsk-orch owns whose own source no longer holds its string: it may pass to the source that
        does. Only a complete read of the owner's pool, in this run's scope, tells."""
        if row.id in self.freed:
            return True
        owner = self.owner.get(row.id)
        if owner is None or not owner.managed or not self.snapshot.in_scope(owner.source_pool_id):
            return False
        read = self.reads.get(owner.source_pool_id)
        if read is None or not read.is_complete:
            return False
        return self.source_fingerprints.get(owner.source_passphrase_id) != self.target_fingerprints[row.id]

    def _give(self, row: Passphrase, mapping: StoredMapping | None) -> None:
        """`row` belongs to `mapping` (None: a mapping this run makes) from now on; its previous owner loses it."""
        previous = self.owner.pop(row.id, None)
        if previous is not None and previous is not mapping:
            self.detached.add(previous.id)
        self.freed.discard(row.id)
        if mapping is None:
            self.adopted.add(row.id)
        else:
            self.owner[row.id] = mapping

    def _release(self, row: Passphrase) -> None:
        """`row` is no longer its owner's copy: free for the source that holds its string, else an orphan."""
        previous = self.owner.pop(row.id, None)
        if previous is not None:
            self.detached.add(previous.id)
        self.freed.add(row.id)

    def _pool_name(self, pool_id: str) -> str:
        read = self.reads.get(pool_id)
        return read.pool.name if read else pool_id

    def _desired(self, source: SourceRow, vlan: int) -> PassphraseFields:
        row, pool = source.row, source.read.pool
        return PassphraseFields(
            passphrase=row.passphrase,
            username=render_username(self.config.username_template, row.username, pool.name, vlan),
            vlan_id=vlan,
            number_of_devices=row.number_of_devices or pool.device_count_limit,
            expiration_date=row.expiration_date,
            email=row.email,
            phone_number=row.phone_number,
            mac=row.mac,
        )

    # ---- removals and orphans ----------------------------------------------------------------

    def _plan_removals(self, absent: list[StoredMapping]) -> None:
        """Removed sources: delete within the guard under `removals: delete`, else flag for a person."""
        absent = [m for m in absent if self.snapshot.in_scope(m.source_pool_id)]
        removals = []
        for mapping in absent:
            if mapping.id in self.detached:
                self._act_on_mapping(FORGET, mapping, "source gone; its copy went to the passphrase that holds its "
                                                      "string now")
            elif mapping.target_passphrase_id is None or mapping.target_passphrase_id not in self.targets:
                self._act_on_mapping(FORGET, mapping, "source and site-wide copy are both gone")
            else:
                removals.append(mapping)
        if not removals:
            return
        if self.config.removals == "delete":
            managed = sum(1 for m in self.mappings if m.managed and m.target_passphrase_id)
            limit = self.config.max_deletes.limit(managed)
            if not self.snapshot.is_complete:
                self.notes.append("deletes skipped: not every pool was read completely")
            elif len(removals) > limit and not self.allow_deletes:
                self.blocked_deletes = len(removals)
                self.notes.append(f"{len(removals)} deletes exceed max_deletes {self.config.max_deletes} "
                                  f"(= {limit} of {managed} managed): none deleted; rerun with --allow-deletes")
            else:
                for mapping in removals:
                    self._act_on_mapping(DELETE, mapping, "source passphrase removed (removals: delete)")
                return
        for mapping in removals:
            read = self.reads[mapping.source_pool_id]
            target = self.targets[mapping.target_passphrase_id]
            self.flags.append(FlagSpec(
                kind="removal", key=f"removal:{mapping.source_passphrase_id}", pool_id=read.pool.id,
                pool_name=read.pool.name, username=target.username, vlan_id=target.vlan_id,
                fingerprint=mapping.source_fingerprint, source_passphrase_id=mapping.source_passphrase_id,
                target_passphrase_id=mapping.target_passphrase_id, mapping_id=mapping.id,
                detail="the source passphrase is gone from a complete read of its pool; the site-wide copy stays"))

    def _flag_orphans(self) -> None:
        for target_id, target in self.targets.items():
            if target_id in self.owner or target_id in self.adopted or target_id in self.reported:
                continue
            fingerprint = self.target_fingerprints[target_id]
            self.flags.append(FlagSpec(
                kind="orphan", key=f"orphan:{target_id}:{fingerprint[:16]}:{target.vlan_id}",
                pool_id=ORPHAN_SCOPE, pool_name=self.snapshot.target.pool.name, username=target.username,
                vlan_id=target.vlan_id, fingerprint=fingerprint, target_passphrase_id=target_id,
                detail="in the site-wide pool but made by no source passphrase dpsk-orch knows"))

    # ---- building blocks ---------------------------------------------------------------------

    def _act(self, kind: str, source: SourceRow, desired: PassphraseFields, reason: str, *,
             mapping: StoredMapping | None = None, target: Passphrase | None = None,
             vlan_before: int | None = None, changed: tuple[str, ...] = ()) -> None:
        self.actions.append(Action(
            kind=kind, pool_id=source.read.pool.id, pool_name=source.read.pool.name, username=desired.username,
            fingerprint=source.fingerprint, reason=reason, vlan_before=vlan_before, vlan_after=desired.vlan_id,
            source_passphrase_id=source.row.id,
            target_passphrase_id=target.id if target else (mapping.target_passphrase_id if mapping else None),
            mapping_id=mapping.id if mapping else None, changed=changed, fields=desired))

    def _act_on_mapping(self, kind: str, mapping: StoredMapping, reason: str) -> None:
        read = self.reads[mapping.source_pool_id]
        self.actions.append(Action(
            kind=kind, pool_id=read.pool.id, pool_name=read.pool.name, username=mapping.target_username,
            fingerprint=mapping.source_fingerprint, reason=reason, vlan_before=mapping.vlan_id,
            source_passphrase_id=mapping.source_passphrase_id, target_passphrase_id=mapping.target_passphrase_id,
            mapping_id=mapping.id))

    def _flag(self, kind: str, key: str, source: SourceRow, fingerprint: str, detail: str) -> None:
        mapping = self.by_source.get(source.row.id)
        self.flags.append(FlagSpec(
            kind=kind, key=key, pool_id=source.read.pool.id, pool_name=source.read.pool.name,
            username=source.row.username, vlan_id=source.vlan, fingerprint=fingerprint,
            source_passphrase_id=source.row.id,
            target_passphrase_id=mapping.target_passphrase_id if mapping else None,
            mapping_id=mapping.id if mapping else None, detail=detail))

    def _unignored(self, flags: list[FlagSpec]) -> list[FlagSpec]:
        unique = {flag.key: flag for flag in flags}  # a conflict seen from several rows is one flag
        return [flag for flag in unique.values() if flag.key not in self.decisions.ignored_flag_keys]

    def _judged_scope(self) -> frozenset[str]:
        judged = {read.pool.id for read in self.snapshot.sources
                  if read.is_complete and self.snapshot.in_scope(read.pool.id)}
        if self.snapshot.scope is None:
            judged.add(ORPHAN_SCOPE)
        return frozenset(judged)


def changed_fields(desired: PassphraseFields, target: Passphrase) -> tuple[str, ...]:
    """The names of the fields whose site-wide value differs from the desired one."""
    changed = []
    if desired.passphrase != target.passphrase:
        changed.append("passphrase")
    if desired.vlan_id != target.vlan_id:
        changed.append("vlan_id")
    if desired.username != target.username:
        changed.append("username")
    if (desired.email or None) != (target.email or None):
        changed.append("email")
    if (desired.phone_number or None) != (target.phone_number or None):
        changed.append("phone_number")
    if desired.number_of_devices is not None and desired.number_of_devices != target.number_of_devices:
        changed.append("number_of_devices")
    if normalise_time(desired.expiration_date) != normalise_time(target.expiration_date):
        changed.append("expiration_date")
    return tuple(changed)


def normalise_time(value: str | None) -> str | None:
    """One spelling for RuckusONE's many date-time forms (API.md §1.5), to the second, in UTC."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if len(text) == 10:
        text += "T00:00:00"
    if text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

