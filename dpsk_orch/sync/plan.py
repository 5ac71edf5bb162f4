"""The sync decision: a pure function of (snapshot, mappings, config) to actions and flags.

Nothing here talks to RuckusONE or the state file. The rules of DESIGN.md live here:
absence is judged only from complete reads; the right VLAN or nothing; only what we own is touched.
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
        self.claimed = {m.target_passphrase_id for m in self.mappings if m.target_passphrase_id}
        self.by_source = {m.source_passphrase_id: m for m in self.mappings}
        self.reads = {read.pool.id: read for read in snapshot.sources}
        self.rows = [SourceRow(read, row, fingerprint(row.passphrase))
                     for read in snapshot.sources if read.is_complete for row in read.passphrases]
        self.actions: list[Action] = []
        self.flags: list[FlagSpec] = []
        self.notes: list[str] = []
        self.blocked_deletes = 0

    def plan(self) -> Plan:
        placeable = self._flag_conflicting_sources()
        absent = self._absent_mappings()
        relinkable: dict[tuple[str, int | None], list[StoredMapping]] = defaultdict(list)
        for mapping in absent:
            relinkable[(mapping.source_fingerprint, mapping.vlan_id)].append(mapping)
        for source in placeable:
            if self.snapshot.in_scope(source.read.pool.id):
                self._plan_source(source, relinkable)
        relinked = {action.mapping_id for action in self.actions if action.kind == RELINK}
        self._plan_removals([m for m in absent if m.id not in relinked])
        if self.snapshot.scope is None:
            self._flag_orphans()
        return Plan(self.config.name, tuple(self.actions), tuple(self._unignored(self.flags)),
                    self._judged_scope(), tuple(self.notes), self.blocked_deletes)

    # ---- sources -----------------------------------------------------------------------------

    def _flag_conflicting_sources(self) -> list[SourceRow]:
        """Rows whose passphrase string appears once among all sources; conflicts become flags."""
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
            first = sources[0]
            pools = ", ".join(f"{s.read.pool.name} (VLAN {s.vlan})" for s in sources)
            self._flag("conflict", f"conflict:{fingerprint}", first, fingerprint,
                       f"the same passphrase is in {len(sources)} source passphrases: {pools}; none is placed")
        return placeable

    def _absent_mappings(self) -> list[StoredMapping]:
        """Managed mappings whose source passphrase is missing from a complete read of its pool."""
        present = {source.row.id for source in self.rows}
        absent = []
        for mapping in self.mappings:
            read = self.reads.get(mapping.source_pool_id)
            if (mapping.managed and read is not None and read.is_complete
                    and mapping.source_passphrase_id not in present):
                absent.append(mapping)
        return absent

    def _plan_source(self, source: SourceRow,
                     relinkable: dict[tuple[str, int | None], list[StoredMapping]]) -> None:
        mapping = self.by_source.get(source.row.id)
        if mapping is not None and not mapping.managed:
            return  # a person chose to keep it unmanaged
        vlan = source.vlan
        if vlan is None:
            self._flag("missing_vlan", f"missing_vlan:{source.row.id}", source, source.fingerprint,
                       f"no VLAN on the passphrase and no fallback `vlan:` for pool {source.read.pool.name}")
            return
        desired = self._desired(source, vlan)
        if mapping is None:
            candidates = relinkable.get((source.fingerprint, vlan))
            if candidates:
                mapping = candidates.pop(0)
                self._act(RELINK, source, desired, "source passphrase re-created with the same string and VLAN",
                          mapping=mapping, vlan_before=mapping.vlan_id)
            else:
                self._plan_unmapped(source, desired)
                return
        if mapping.target_passphrase_id is None:
            self._plan_pending_create(source, desired, mapping)
            return
        target = self.targets.get(mapping.target_passphrase_id)
        if target is None and source.row.is_revoked:
            self._act_on_mapping(FORGET, mapping, "site-wide copy gone and its source is revoked: nothing to restore")
            return
        if target is None:
            self._flag("target_missing", f"target_missing:{source.row.id}", source, source.fingerprint,
                       "the site-wide passphrase made from this source is gone; it is created again")
            self._act(CREATE, source, desired, "site-wide copy disappeared", mapping=mapping)
            return
        self._plan_changes(source, desired, target, mapping)

    def _plan_unmapped(self, source: SourceRow, desired: PassphraseFields) -> None:
        """A source passphrase dpsk-orch never placed: adopt an identical entry, else create."""
        same_string = [t for t_id, t in self.targets.items()
                       if t_id not in self.claimed and self.target_fingerprints[t_id] == source.fingerprint]
        same_vlan = [t for t in same_string if t.vlan_id == desired.vlan_id]
        if same_vlan:
            target = same_vlan[0]
            self.claimed.add(target.id)
            self._act(ADOPT, source, desired, "an unmanaged site-wide entry has the same string and VLAN",
                      target=target)
            self._plan_changes(source, desired, target, None)
        elif same_string:
            self.claimed.update(t.id for t in same_string)  # reported as this conflict, not as orphans
            vlans = ", ".join(str(t.vlan_id) for t in same_string)
            self._flag("conflict", f"conflict:{source.fingerprint}", source, source.fingerprint,
                       f"an unmanaged site-wide entry has this passphrase under VLAN {vlans}, the source under "
                       f"VLAN {desired.vlan_id}; nothing is placed")
        elif not source.row.is_revoked:  # a revoked passphrase is placed only once it is active again
            self._act(CREATE, source, desired, "new source passphrase")

    def _plan_pending_create(self, source: SourceRow, desired: PassphraseFields, mapping: StoredMapping) -> None:
        """A create recorded by an earlier run: link what landed, wait for what may land, redo the rest."""
        landed = [t for t_id, t in self.targets.items() if t_id not in self.claimed
                  and self.target_fingerprints[t_id] == source.fingerprint and t.vlan_id == desired.vlan_id]
        if landed:
            self.claimed.add(landed[0].id)
            self._act(LINK, source, desired, "create of an earlier run found in the site-wide pool",
                      mapping=mapping, target=landed[0])
            self._plan_changes(source, desired, landed[0], mapping)
        elif mapping.id in self.snapshot.unsettled_mapping_ids:
            self.notes.append(f"{desired.username}: an earlier create may still be running in RuckusONE; "
                              "left for the next run")
        elif source.row.is_revoked:
            self._act_on_mapping(FORGET, mapping, "earlier create did not land and the source is now revoked")
        else:
            self._act(CREATE, source, desired, "earlier create did not land", mapping=mapping)

    def _plan_changes(self, source: SourceRow, desired: PassphraseFields, target: Passphrase,
                      mapping: StoredMapping | None) -> None:
        changed = changed_fields(desired, target)
        if changed:
            self._act(UPDATE, source, desired, "source changed: " + ", ".join(changed), mapping=mapping,
                      target=target, vlan_before=target.vlan_id, changed=changed)
        if source.row.is_revoked != target.is_revoked:
            kind = REVOKE if source.row.is_revoked else UNREVOKE
            self._act(kind, source, desired, f"source passphrase {kind}d", mapping=mapping, target=target)

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
            if mapping.target_passphrase_id is None or mapping.target_passphrase_id not in self.targets:
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
            if target_id in self.claimed:
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

