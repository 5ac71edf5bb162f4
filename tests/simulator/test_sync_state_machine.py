"""Random edits at the units and random RuckusONE faults, with real syncs in between (vdirsyncer style).

A hypothesis `RuleBasedStateMachine` drives a small property (3-4 unit pools, a few passphrases each, pages
of 2-3 rows) on the in-process simulator and runs `dpsk_orch.app.run_sync` for real. After every step it
checks what a user cares about: no passphrase under a VLAN its source never had, no duplicate strings, nothing
deleted from the site-wide pool under `removals: flag`; and, after faults clear and a clean sync or two, that
the site-wide pool is an exact replica and a further sync writes nothing.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import dpsk_orch.r1.client as r1_client
import dpsk_orch.sync.run as sync_run
from dpsk_orch.app import run_sync
from dpsk_orch.config import load_config
from dpsk_orch.exit_codes import OK
from dpsk_orch.r1.client import R1Client
from dpsk_orch.simulator import Simulator, SimulatorTransport
from dpsk_orch.simulator.faults import ActivityFailRule
from dpsk_orch.state import StateStore
from dpsk_orch.sync.plan import WRITE_KINDS
from dpsk_orch.sync.run import SyncOptions, SyncResult

TENANT = "tenant-sm"
CLIENT_ID = "sm-client"
CLIENT_SECRET = "sm-client-secret"
ORCHESTRATOR = "parkview"
SITE_WIDE = "SiteWideDPSK"
VLAN_BASE = 100
ORPHAN = "lobby-kiosk-orphan-pass"  # in the site-wide pool from the start; no source ever has it
FAULTS = ("fail_page", "short_page", "reject_create", "drop_create", "fail_create_activity", "drop_update",
          "fail_update_activity", "stuck")


def unit_name(index: int) -> str:
    return f"Unit{101 + index}DPSK"


@pytest.fixture
def fast_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Activity polling, the activity deadline, the rate-limit burst and the intent wait, cut to test size."""
    monkeypatch.setattr(r1_client, "ACTIVITY_FIRST_POLL_S", 0.001)
    monkeypatch.setattr(r1_client, "ACTIVITY_POLL_CAP_S", 0.005)
    monkeypatch.setattr(r1_client, "RATE_LIMIT_BURST", 10_000)
    monkeypatch.setattr(R1Client.await_activities, "__defaults__", (0.1,))  # deadline_s: a stuck write times out
    monkeypatch.setattr(sync_run, "INTENT_MIN_AGE_S", 0.0)


class Property:
    """A simulator with a site-wide pool and unit pools, a config file listing them, and a state file."""

    def __init__(self, units: int, page_size: int) -> None:
        self.sim = Simulator(activity_delay_s=0.0, max_page_size=page_size)
        self.sim.add_tenant(TENANT, CLIENT_ID, CLIENT_SECRET)
        self.site_id = self.sim.add_pool(TENANT, SITE_WIDE)
        self.unit_ids = [self.sim.add_pool(TENANT, unit_name(i)) for i in range(units)]
        self.tmp = Path(tempfile.mkdtemp(prefix="dpsk-orch-sm-"))
        secret = self.tmp / "r1.secret"
        secret.write_text(CLIENT_SECRET)
        secret.chmod(0o600)
        config = {"version": 1,
                  "controllers": {"sim": {"api_url": "http://r1.simulator", "tenant_id": TENANT,
                                          "client_id": CLIENT_ID, "client_secret_file": str(secret),
                                          "max_requests_per_minute": 2000, "concurrency": 8}},
                  "orchestrators": {ORCHESTRATOR: {"controller": "sim", "site_wide_pool": SITE_WIDE,
                                                   "source_pools": [unit_name(i) for i in range(units)]}}}
        path = self.tmp / "orchestrators.yaml"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        self.config = load_config(path)
        self.store = StateStore(self.tmp / "state.db")

    def close(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def sync(self) -> SyncResult:
        [result] = run_sync(self.config, list(self.config.orchestrators.values()), self.store, SyncOptions(),
                            transport=SimulatorTransport(self.sim))
        return result

    def site_rows(self) -> list[dict]:
        return self.sim.passphrases(TENANT, self.site_id)

    def unit_rows(self, unit: int) -> list[dict]:
        return self.sim.passphrases(TENANT, self.unit_ids[unit])

    def source_rows(self) -> list[tuple[int, dict]]:
        return [(unit, row) for unit in range(len(self.unit_ids)) for row in self.unit_rows(unit)]

    def add(self, unit: int, passphrase: str, vlan: int | None, username: str = "resident") -> str:
        return self.sim.add_passphrase(TENANT, self.unit_ids[unit], passphrase, username, vlan_id=vlan)

    def update(self, unit: int, passphrase_id: str, **fields: Any) -> None:
        self.sim.update_passphrase(TENANT, self.unit_ids[unit], passphrase_id, **fields)

    def delete(self, unit: int, passphrase_id: str) -> None:
        self.sim.delete_passphrase(TENANT, self.unit_ids[unit], passphrase_id)

    def revoke(self, unit: int, passphrase_id: str) -> None:
        self.sim.revoke_passphrase(TENANT, self.unit_ids[unit], passphrase_id)

    def writes(self) -> int:
        return self.sim.count(writes_only=True)

    # ---- faults -----------------------------------------------------------------------------

    def inject(self, fault: str, pool: int, page: int) -> None:
        """One fault for the next sync. `pool` indexes the unit pools; from len(unit pools) on, the site-wide pool."""
        pool_id = self.site_id if pool >= len(self.unit_ids) else self.unit_ids[pool]
        creates = rf"^/dpskServices/{self.site_id}/passphrases$"
        updates = rf"^/dpskServices/{self.site_id}/passphrases/[^/]+$"
        if fault == "fail_page":
            self.sim.fail_page(pool_id, page, times=1)
        elif fault == "short_page":
            self.sim.short_page(pool_id, page, times=1)
        elif fault == "reject_create":
            self.sim.fail_requests("POST", creates, 500, times=1)
        elif fault == "drop_create":
            self.sim.drop_connections("POST", creates, times=1)
        elif fault == "fail_create_activity":
            self.sim.faults.failing_activities.append(
                ActivityFailRule(times=1, method="POST", path_regex=creates, message="simulated failure"))
        elif fault == "drop_update":
            self.sim.drop_connections("PATCH", updates, times=1)
        elif fault == "fail_update_activity":
            self.sim.faults.failing_activities.append(
                ActivityFailRule(times=1, method="PATCH", path_regex=updates, message="simulated failure"))
        elif fault == "stuck":
            self.sim.stuck_activities(True)
        else:  # pragma: no cover
            raise AssertionError(fault)

    def fault_fired(self) -> bool:
        """Whether a counted fault injected with `inject` was used up by the sync."""
        faults = self.sim.faults
        return any(rule.times == 0 for rule in (*faults.pages, *faults.failing, *faults.dropping,
                                                 *faults.failing_activities))

    def passphrase_writes(self) -> int:
        """Creates, updates, revocations and deletes sent to any pool (identity renames are not counted)."""
        return self.sim.count(path_regex=r"/passphrases", writes_only=True)


def site_strings(rows: list[dict]) -> Counter:
    return Counter(row["passphrase"] for row in rows)


def flagged_conflict_strings(prop: Property) -> set[str]:
    """Source strings with an open conflict flag: a person's to decide, so not judged as a replica."""
    conflicts = {flag.fingerprint for flag in prop.store.load_flags(ORCHESTRATOR, "conflict")}
    return {row["passphrase"] for _, row in prop.source_rows()
            if prop.store.fingerprints.of(row["passphrase"]) in conflicts}


def unaccounted_site_rows(prop: Property) -> list[str]:
    """Site-wide rows that are neither the copy of an existing source passphrase nor named by an open flag:
    what would stay in the pool without anyone being told."""
    source_ids = {row["id"] for _, row in prop.source_rows()}
    live = {m.target_passphrase_id for m in prop.store.load_mappings(ORCHESTRATOR)
            if m.target_passphrase_id and m.source_passphrase_id in source_ids}
    flags = prop.store.load_flags(ORCHESTRATOR)
    flagged_ids = {flag.target_passphrase_id for flag in flags if flag.target_passphrase_id}
    flagged_fingerprints = {flag.fingerprint for flag in flags if flag.kind == "conflict"}
    return [f"{row['username']} (VLAN {row.get('vlanId')})" for row in prop.site_rows()
            if row["id"] not in live | flagged_ids
            and prop.store.fingerprints.of(row["passphrase"]) not in flagged_fingerprints]


def expected_replica_problems(prop: Property, exempt: set[str] = frozenset()) -> list[str]:
    """What keeps the site-wide pool from being the replica a clean sync must leave (empty when it is).

    Judged: each source string held by exactly one source passphrase that carries a VLAN. An active one is
    in the site-wide pool exactly once, active, with that VLAN; a revoked one is revoked there or absent.
    """
    sources = prop.source_rows()
    counts = Counter(row["passphrase"] for _, row in sources)
    by_string: dict[str, list[dict]] = defaultdict(list)
    for row in prop.site_rows():
        by_string[row["passphrase"]].append(row)
    problems = []
    for unit, row in sources:
        string, vlan = row["passphrase"], row.get("vlanId")
        if counts[string] != 1 or vlan is None or string in exempt:
            continue
        copies = by_string.get(string, [])
        label = f"{unit_name(unit)} {row['username']} (VLAN {vlan})"
        if row.get("revocationReason"):
            if any(not copy.get("revocationReason") for copy in copies):
                problems.append(f"{label}: revoked at the unit, active in the site-wide pool")
            continue
        if len(copies) != 1:
            problems.append(f"{label}: {len(copies)} copies in the site-wide pool")
        elif copies[0].get("vlanId") != vlan:
            problems.append(f"{label}: site-wide copy under VLAN {copies[0].get('vlanId')}")
        elif copies[0].get("revocationReason"):
            problems.append(f"{label}: active at the unit, revoked in the site-wide pool")
    return problems


class SyncMachine(RuleBasedStateMachine):
    """See the module docstring. Source state is read back from the simulator; the model keeps only history."""

    def __init__(self) -> None:
        super().__init__()
        self.prop: Property | None = None
        self.counter = 0
        self.seen_site_ids: set[str] = set()
        self.legit_pairs: set[tuple[str, int]] = set()  # (string, VLAN) some sync saw on a unique source
        self.source_strings: set[str] = set()  # every string any source ever held
        self.foreign_ids: set[str] = set()  # site-wide rows a person made, not dpsk-orch

    # ---- set-up -----------------------------------------------------------------------------

    @initialize(units=st.integers(3, 4), page_size=st.integers(2, 3),
                per_unit=st.lists(st.integers(0, 3), min_size=4, max_size=4))
    def set_up(self, units: int, page_size: int, per_unit: list[int]) -> None:
        self.prop = Property(units, page_size)
        for unit in range(units):
            for _ in range(per_unit[unit]):
                self.prop.add(unit, self.fresh(), VLAN_BASE + unit, f"resident{self.counter}")
        self.foreign_ids.add(self.prop.sim.add_passphrase(TENANT, self.prop.site_id, ORPHAN, "lobby-kiosk",
                                                          vlan_id=VLAN_BASE - 1))
        self.note_sources()

    def teardown(self) -> None:
        """Every example ends with a convergence check, unless it already failed (or hypothesis stopped it)."""
        if self.prop is None:
            return
        try:
            if sys.exc_info()[0] is None:
                self.converge()
        finally:
            self.prop.close()

    def fresh(self) -> str:
        self.counter += 1
        return f"pass-{self.counter:03d}-resident"

    def note_sources(self) -> None:
        self.source_strings.update(row["passphrase"] for _, row in self.prop.source_rows())

    def pick(self, unit: int, index: int) -> tuple[int, dict] | None:
        rows = self.prop.unit_rows(unit % len(self.prop.unit_ids))
        return (unit % len(self.prop.unit_ids), rows[index % len(rows)]) if rows else None

    def other_unit_string(self, unit: int, index: int) -> str | None:
        """A string another unit holds and this one does not (a pool refuses its own duplicates)."""
        own = {row["passphrase"] for row in self.prop.unit_rows(unit)}
        others = sorted({row["passphrase"] for u, row in self.prop.source_rows() if u != unit} - own)
        return others[index % len(others)] if others else None

    def has_sources(self) -> bool:
        return bool(self.prop.source_rows())

    # ---- edits at the units -----------------------------------------------------------------

    @rule(unit=st.integers(0, 3), vlan=st.sampled_from(["own", "own", "own", "none", "other"]),
          reuse=st.booleans(), index=st.integers(0, 20))
    def add_passphrase(self, unit: int, vlan: str, reuse: bool, index: int) -> None:
        unit %= len(self.prop.unit_ids)
        string = (self.other_unit_string(unit, index) if reuse else None) or self.fresh()
        vlan_id = {"own": VLAN_BASE + unit, "none": None, "other": VLAN_BASE + (unit + 1) % 4}[vlan]
        self.prop.add(unit, string, vlan_id, f"resident{self.counter}-{index}")
        self.note_sources()

    @precondition(has_sources)
    @rule(unit=st.integers(0, 3), index=st.integers(0, 20))
    def delete_passphrase(self, unit: int, index: int) -> None:
        picked = self.pick(unit, index)
        if picked:
            self.prop.delete(picked[0], picked[1]["id"])

    @precondition(has_sources)
    @rule(unit=st.integers(0, 3), index=st.integers(0, 20), vlan=st.sampled_from([100, 101, 102, 103, None]))
    def change_vlan(self, unit: int, index: int, vlan: int | None) -> None:
        picked = self.pick(unit, index)
        if picked:
            self.prop.update(picked[0], picked[1]["id"], vlanId=vlan)

    @precondition(has_sources)
    @rule(unit=st.integers(0, 3), index=st.integers(0, 20), reuse=st.booleans())
    def change_string(self, unit: int, index: int, reuse: bool) -> None:
        picked = self.pick(unit, index)
        if picked:
            string = (self.other_unit_string(picked[0], index) if reuse else None) or self.fresh()
            self.prop.update(picked[0], picked[1]["id"], passphrase=string)
            self.note_sources()

    @precondition(has_sources)
    @rule(unit=st.integers(0, 3), index=st.integers(0, 20))
    def revoke(self, unit: int, index: int) -> None:
        picked = self.pick(unit, index)
        if picked:
            self.prop.revoke(picked[0], picked[1]["id"])

    @precondition(has_sources)
    @rule(index=st.integers(0, 20))
    def unrevoke(self, index: int) -> None:
        revoked = [(unit, row) for unit, row in self.prop.source_rows() if row.get("revocationReason")]
        if revoked:
            unit, row = revoked[index % len(revoked)]
            self.prop.update(unit, row["id"], revocationReason=None)

    @precondition(has_sources)
    @rule(unit=st.integers(0, 3), index=st.integers(0, 20), elsewhere=st.booleans())
    def recreate(self, unit: int, index: int, elsewhere: bool) -> None:
        """Delete a passphrase and make it again with the same string: in its own unit with its VLAN, or in
        the next unit with that unit's VLAN (a resident who moved)."""
        picked = self.pick(unit, index)
        if not picked:
            return
        unit, row = picked
        self.prop.delete(unit, row["id"])
        target = (unit + 1) % len(self.prop.unit_ids) if elsewhere else unit
        if row["passphrase"] in {other["passphrase"] for other in self.prop.unit_rows(target)}:
            return
        vlan = VLAN_BASE + target if elsewhere else row.get("vlanId")
        self.prop.add(target, row["passphrase"], vlan, row["username"])

    @precondition(has_sources)
    @rule(index=st.integers(0, 20), same_vlan=st.booleans())
    def add_by_hand_to_site_wide(self, index: int, same_vlan: bool) -> None:
        """A person adds a unit's passphrase to the site-wide pool by hand (same VLAN or not)."""
        sources = self.prop.source_rows()
        unit, row = sources[index % len(sources)]
        if row["passphrase"] in site_strings(self.prop.site_rows()):
            return  # the pool refuses its own duplicates
        vlan = row.get("vlanId") if same_vlan else VLAN_BASE - 1
        self.foreign_ids.add(self.prop.sim.add_passphrase(TENANT, self.prop.site_id, row["passphrase"],
                                                          "added by hand", vlan_id=vlan))

    # ---- syncs ------------------------------------------------------------------------------

    def run_one_sync(self, unread_unit: int | None = None) -> SyncResult:
        """One real sync; first notes the (string, VLAN) pairs it may legitimately place.

        A string is judged unique among the pools the sync can read: with `unread_unit`'s read failing,
        a conflict with that unit is invisible to this run (as one that arises right after it would be)."""
        for skipped in {None, unread_unit}:
            sources = [(unit, row) for unit, row in self.prop.source_rows() if unit != skipped]
            counts = Counter(row["passphrase"] for _, row in sources)
            self.legit_pairs.update((row["passphrase"], row["vlanId"]) for _, row in sources
                                    if counts[row["passphrase"]] == 1 and row.get("vlanId") is not None)
        return self.prop.sync()

    @rule()
    def sync(self) -> None:
        self.sync_with_fault(None, 0, 1)

    @rule(fault=st.sampled_from(FAULTS), pool=st.integers(0, 4), page=st.integers(1, 3))
    def sync_with_fault(self, fault: str | None, pool: int, page: int) -> None:
        if fault:
            self.prop.inject(fault, pool, page)
        unread = pool if fault in ("fail_page", "short_page") and pool < len(self.prop.unit_ids) else None
        writes = self.prop.passphrase_writes()
        try:
            result = self.run_one_sync(unread)
            # A fault that hit must show in the exit code (a short page may be recovered from by re-paging).
            hit = (fault == "stuck" and self.prop.passphrase_writes() > writes) or \
                (fault not in (None, "stuck", "short_page") and self.prop.fault_fired())
            assert not hit or result.exit_code != OK, f"{fault} hit, yet the run reported success"
        finally:
            self.prop.sim.clear_faults()

    @rule()
    def converge(self) -> None:
        """Leftovers settle, faults clear; two clean syncs make the replica; a third writes nothing."""
        self.prop.sim.settle()
        self.prop.sim.clear_faults()
        self.run_one_sync()
        self.run_one_sync()
        self.check_always()
        problems = expected_replica_problems(self.prop, exempt=flagged_conflict_strings(self.prop))
        assert not problems, problems
        writes = self.prop.writes()
        result = self.run_one_sync()
        assert not [action for action in result.plan.actions if action.kind in WRITE_KINDS], \
            f"a sync after convergence planned writes: {result.counts()}"
        assert self.prop.writes() == writes, f"a sync after convergence wrote: {result.counts()}"
        assert result.exit_code == OK, result.errors
        unaccounted = unaccounted_site_rows(self.prop)
        assert not unaccounted, f"site-wide passphrases neither a live copy nor named by an open flag: {unaccounted}"

    # ---- invariants -------------------------------------------------------------------------

    @invariant()
    def check_always(self) -> None:
        if self.prop is None:
            return
        rows = self.prop.site_rows()
        duplicates = [string for string, count in site_strings(rows).items() if count > 1]
        assert not duplicates, f"duplicate strings in the site-wide pool: {duplicates}"
        ids = {row["id"] for row in rows}
        assert self.seen_site_ids <= ids, "a site-wide passphrase was deleted under `removals: flag`"
        self.seen_site_ids |= ids
        source_ids = {row["id"] for _, row in self.prop.source_rows()}
        false_removals = [flag.username for flag in self.prop.store.load_flags(ORCHESTRATOR, "removal")
                          if flag.source_passphrase_id in source_ids]
        assert not false_removals, f"removal flags for source passphrases that still exist: {false_removals}"
        guessed = [(row["passphrase"], row.get("vlanId")) for row in rows
                   if row["passphrase"] in self.source_strings and row["id"] not in self.foreign_ids
                   and (row["passphrase"], row.get("vlanId")) not in self.legit_pairs]
        assert not guessed, f"placed under a VLAN no unique source ever had: {guessed}"


@pytest.mark.usefixtures("fast_client")
def test_sync_state_machine() -> None:
    run_state_machine_as_test(SyncMachine, settings=settings(
        max_examples=150, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


@pytest.fixture
def prop(fast_client: None) -> Iterator[Property]:
    prop = Property(units=3, page_size=2)
    yield prop
    prop.close()


def site_pairs(prop: Property) -> list[tuple[str, int | None, bool]]:
    return sorted((row["passphrase"], row.get("vlanId"), bool(row.get("revocationReason")))
                  for row in prop.site_rows())


def assert_settled_replica(prop: Property, string: str, vlan: int) -> None:
    """Two clean syncs: `string` is in the site-wide pool once, active, under `vlan`; a third sync writes nothing."""
    prop.sync()
    prop.sync()
    assert [(s, v) for s, v, _ in site_pairs(prop) if s == string] == [(string, vlan)]
    writes = prop.writes()
    result = prop.sync()
    assert prop.writes() == writes, f"every run re-sends: {result.counts()} {result.errors}"
    assert result.exit_code == OK, result.errors


def test_a_clean_first_sync_places_every_unit_passphrase_and_a_second_writes_nothing(prop: Property) -> None:
    for unit in range(3):
        for number in range(3):
            prop.add(unit, f"unit{unit}-resident{number}-pass", VLAN_BASE + unit)
    assert prop.sync().exit_code == OK
    assert expected_replica_problems(prop) == []
    writes = prop.writes()
    assert prop.sync().exit_code == OK
    assert prop.writes() == writes


@pytest.mark.parametrize("how", ["resident moved to another unit", "string changed to a removed one"])
def test_a_string_held_by_a_copy_whose_source_lost_it_passes_to_its_new_source(prop: Property, how: str) -> None:
    """Found by the state machine: the create (or string update) was refused by RuckusONE every run, and the
    string stayed under the removed source's VLAN."""
    if how == "resident moved to another unit":
        # Unit 101 has the passphrase; the resident moves: unit 102 gets the same string, unit 101 drops it.
        old = prop.add(0, "moving-resident-pass", 100)
        assert prop.sync().exit_code == OK
        prop.add(1, "moving-resident-pass", 101)
        prop.delete(0, old)
        string, vlan = "moving-resident-pass", 101
    else:
        # Unit 102 changes a passphrase to the string unit 101 just removed (whose copy stays, flagged).
        old = prop.add(0, "first-resident-pass", 100)
        other = prop.add(1, "second-resident-pass", 101)
        assert prop.sync().exit_code == OK
        prop.delete(0, old)
        prop.update(1, other, passphrase="first-resident-pass")
        string, vlan = "first-resident-pass", 101
    assert_settled_replica(prop, string, vlan)


@pytest.mark.parametrize("fault", ["drop_create", "stuck"])
@pytest.mark.parametrize("change", ["vlan", "string"])
def test_a_create_that_landed_unseen_is_linked_after_its_source_changed(prop: Property, fault: str,
                                                                          change: str) -> None:
    """Found by the state machine: the landed copy was matched only by the source's new VLAN or string, so it
    was called an orphan and the create was re-sent every run."""
    source = prop.add(0, "resident-pass-one", 100)
    prop.inject(fault, 0, 1)
    assert prop.sync().exit_code != OK  # the create landed, but the run could not see that it did
    prop.sim.clear_faults()
    prop.sim.settle()
    assert site_pairs(prop) == [("resident-pass-one", 100, False)]
    if change == "vlan":
        prop.update(0, source, vlanId=101)
        assert_settled_replica(prop, "resident-pass-one", 101)
    else:
        prop.update(0, source, passphrase="resident-pass-two")
        assert_settled_replica(prop, "resident-pass-two", 100)
        assert "resident-pass-one" not in {s for s, _, _ in site_pairs(prop)}
