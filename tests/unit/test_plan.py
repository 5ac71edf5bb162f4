"""The planner: every rule of DESIGN.md, on hand-made snapshots. No network, no database."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from dpsk_orch.config import DeleteGuard, OrchestratorConfig, PoolRef
from dpsk_orch.r1.records import Passphrase, Pool
from dpsk_orch.state import Mapping
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
    Decisions,
    changed_fields,
    normalise_time,
    plan_sync,
)
from dpsk_orch.sync.snapshot import PoolRead, Snapshot

SITE = Pool("site", "SiteWide", "group-site")
UNIT_A = Pool("pool-a", "Unit101DPSK", "group-a", device_count_limit=3)
UNIT_B = Pool("pool-b", "Unit102DPSK", "group-b")
CONFIG = OrchestratorConfig(name="parkview", controller="r1", site_wide_pool=PoolRef(name="SiteWide"),
                            source_pools=(PoolRef(name="Unit101DPSK"), PoolRef(name="Unit102DPSK")))


def fp(passphrase: str) -> str:
    return hashlib.sha256(passphrase.encode()).hexdigest()


def pp(id_: str, secret: str, username: str = "alice", vlan: int | None = 101, pool: str = "pool-a",
       **extra) -> Passphrase:
    return Passphrase(id=id_, pool_id=pool, passphrase=secret, username=username, vlan_id=vlan, **extra)


def site_copy(id_: str, secret: str, username: str = "alice [Unit101DPSK]", vlan: int | None = 101,
              **extra) -> Passphrase:
    return Passphrase(id=id_, pool_id="site", passphrase=secret, username=username, vlan_id=vlan,
                      number_of_devices=extra.pop("number_of_devices", 3), **extra)


def mapping(id_: int, source_id: str, secret: str, target_id: str | None, vlan: int | None = 101,
            pool: str = "pool-a", **extra) -> Mapping:
    return Mapping(id=id_, orchestrator="parkview", source_pool_id=pool, source_passphrase_id=source_id,
                   source_fingerprint=fp(secret), vlan_id=vlan, target_passphrase_id=target_id,
                   target_username="alice [Unit101DPSK]", **extra)


def snapshot(a: list[Passphrase] | None = None, b: list[Passphrase] | None = None,
             site: list[Passphrase] | None = None, a_error: str | None = None, site_error: str | None = None,
             **extra) -> Snapshot:
    return Snapshot(
        target=PoolRead(SITE, tuple(site or ()), site_error),
        sources=(PoolRead(UNIT_A, tuple(a or ()), a_error), PoolRead(UNIT_B, tuple(b or ()))),
        **extra)


def kinds(plan) -> list[str]:
    return [action.kind for action in plan.actions]


def flag_kinds(plan) -> list[str]:
    return sorted(flag.kind for flag in plan.flags)


def test_new_source_passphrase_is_created_with_its_vlan_and_template_username():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1")]), [], fp)
    [action] = plan.actions
    assert action.kind == CREATE
    assert action.fields.passphrase == "secret-one-1"
    assert action.fields.vlan_id == 101
    assert action.fields.username == "alice [Unit101DPSK]"
    assert action.fields.number_of_devices == 3  # the source pool's default device limit


def test_rerun_after_sync_plans_nothing():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1")], site=[site_copy("t1", "secret-one-1")]),
                     [mapping(1, "s1", "secret-one-1", "t1")], fp)
    assert plan.actions == ()
    assert plan.flags == ()


def test_failed_site_wide_read_plans_and_flags_nothing():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1")], site_error="HTTP 500"),
                     [mapping(1, "gone", "old-secret-1", "t9")], fp)
    assert plan.actions == () and plan.flags == () and plan.judged_scope == frozenset()


def test_failed_page_flags_nothing_in_that_pool():
    mappings = [mapping(1, "s1", "secret-one-1", "t1")]
    plan = plan_sync(CONFIG, snapshot(a=[], a_error="read 0 of 4 rows", b=[pp("b1", "bee-secret-1", vlan=102,
                                                                           pool="pool-b")],
                                      site=[site_copy("t1", "secret-one-1")]), mappings, fp)
    assert "removal" not in flag_kinds(plan)
    assert "pool-a" not in plan.judged_scope
    assert [a.pool_id for a in plan.actions] == ["pool-b"]  # the other pool still syncs


def test_source_passphrase_gone_from_complete_read_raises_removal_flag_and_deletes_nothing():
    plan = plan_sync(CONFIG, snapshot(a=[], site=[site_copy("t1", "secret-one-1")]),
                     [mapping(1, "s1", "secret-one-1", "t1")], fp)
    assert flag_kinds(plan) == ["removal"]
    assert DELETE not in kinds(plan)


def test_vlan_change_is_an_update_showing_before_and_after():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1", vlan=111)],
                                      site=[site_copy("t1", "secret-one-1", vlan=101)]),
                     [mapping(1, "s1", "secret-one-1", "t1")], fp)
    [action] = plan.actions
    assert (action.kind, action.vlan_before, action.vlan_after) == (UPDATE, 101, 111)
    assert "vlan_id" in action.changed


def test_passphrase_change_is_an_update_of_the_same_target():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "new-secret-22")], site=[site_copy("t1", "secret-one-1")]),
                     [mapping(1, "s1", "secret-one-1", "t1")], fp)
    [action] = plan.actions
    assert action.kind == UPDATE and action.target_passphrase_id == "t1"
    assert action.changed == ("passphrase",)


def test_revoked_source_revokes_target_and_unrevoke_follows():
    revoked = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1", is_revoked=True)],
                                         site=[site_copy("t1", "secret-one-1")]),
                        [mapping(1, "s1", "secret-one-1", "t1")], fp)
    assert kinds(revoked) == [REVOKE]
    unrevoked = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1")],
                                           site=[site_copy("t1", "secret-one-1", is_revoked=True)]),
                          [mapping(1, "s1", "secret-one-1", "t1")], fp)
    assert kinds(unrevoked) == [UNREVOKE]


def test_revoked_source_never_placed_is_not_created_active():
    """An evicted resident's revoked passphrase must not appear, active, in the site-wide pool."""
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1", is_revoked=True)]), [], fp)
    assert plan.actions == () and plan.flags == ()


def test_revoked_source_whose_copy_vanished_is_forgotten_not_recreated():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1", is_revoked=True)]),
                     [mapping(1, "s1", "secret-one-1", "t1")], fp)
    assert kinds(plan) == [FORGET] and plan.flags == ()


def test_revoked_source_whose_earlier_create_did_not_land_is_not_sent_again():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1", is_revoked=True)]),
                     [mapping(1, "s1", "secret-one-1", None, intent="create")], fp)
    assert kinds(plan) == [FORGET]


def test_two_units_sharing_a_passphrase_raise_one_conflict_and_place_neither():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "shared-secret")],
                                      b=[pp("b1", "shared-secret", vlan=102, pool="pool-b")]), [], fp)
    assert plan.actions == ()
    assert flag_kinds(plan) == ["conflict"]


def test_conflict_with_a_winner_places_only_the_winner():
    decisions = Decisions(conflict_winners={fp("shared-secret"): "pool-b"})
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "shared-secret")],
                                      b=[pp("b1", "shared-secret", vlan=102, pool="pool-b")]), [], fp, decisions)
    [action] = plan.actions
    assert (action.kind, action.pool_id, action.vlan_after) == (CREATE, "pool-b", 102)


def test_unmanaged_entry_with_same_string_under_other_vlan_is_a_conflict_not_a_guess():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1", vlan=101)],
                                      site=[site_copy("t1", "secret-one-1", vlan=999)]), [], fp)
    assert CREATE not in kinds(plan)
    assert flag_kinds(plan) == ["conflict"]


def test_unmanaged_identical_entry_is_adopted_not_duplicated():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1")], site=[site_copy("t1", "secret-one-1")]),
                     [], fp)
    assert kinds(plan) == [ADOPT]
    assert plan.flags == ()  # adopted, so not an orphan


def test_passphrase_without_vlan_and_without_fallback_is_flagged_not_placed():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1", vlan=None)]), [], fp)
    assert plan.actions == ()
    assert flag_kinds(plan) == ["missing_vlan"]


def test_pool_fallback_vlan_places_a_passphrase_without_one():
    snap = snapshot(a=[pp("s1", "secret-one-1", vlan=None)])
    snap = replace(snap, sources=(replace(snap.sources[0], fallback_vlan=150), snap.sources[1]))
    [action] = plan_sync(CONFIG, snap, [], fp).actions
    assert (action.kind, action.vlan_after) == (CREATE, 150)


def test_unowned_site_wide_entry_is_an_orphan_and_left_alone():
    plan = plan_sync(CONFIG, snapshot(site=[site_copy("t7", "stranger-pass")]), [], fp)
    assert plan.actions == ()
    assert flag_kinds(plan) == ["orphan"]


def test_ignored_orphan_is_not_reported_again_unless_it_changes():
    first = plan_sync(CONFIG, snapshot(site=[site_copy("t7", "stranger-pass")]), [], fp)
    decisions = Decisions(ignored_flag_keys=frozenset({first.flags[0].key}))
    assert plan_sync(CONFIG, snapshot(site=[site_copy("t7", "stranger-pass")]), [], fp, decisions).flags == ()
    changed = plan_sync(CONFIG, snapshot(site=[site_copy("t7", "stranger-pass", vlan=5)]), [], fp, decisions)
    assert flag_kinds(changed) == ["orphan"]


def test_vanished_target_is_flagged_and_recreated():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1")]), [mapping(1, "s1", "secret-one-1", "t1")], fp)
    assert kinds(plan) == [CREATE]
    assert plan.actions[0].mapping_id == 1
    assert flag_kinds(plan) == ["target_missing"]


def test_recreated_source_with_same_string_and_vlan_is_relinked_not_flagged():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s2", "secret-one-1")], site=[site_copy("t1", "secret-one-1")]),
                     [mapping(1, "s1", "secret-one-1", "t1")], fp)
    assert kinds(plan) == [RELINK]
    assert plan.flags == ()


def test_pending_create_of_a_dead_run_is_linked_when_it_landed():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1")], site=[site_copy("t1", "secret-one-1")]),
                     [mapping(1, "s1", "secret-one-1", None, intent="create")], fp)
    assert kinds(plan) == [LINK]


def test_pending_create_that_did_not_land_is_sent_again_unless_it_may_still_land():
    mappings = [mapping(1, "s1", "secret-one-1", None, intent="create")]
    assert kinds(plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1")]), mappings, fp)) == [CREATE]
    unsure = snapshot(a=[pp("s1", "secret-one-1")], unsettled_mapping_ids=frozenset({1}))
    plan = plan_sync(CONFIG, unsure, mappings, fp)
    assert plan.actions == ()
    assert "may still be running" in plan.notes[0]


def test_a_passphrase_moved_to_another_unit_moves_its_copy_to_the_new_vlan():
    """A resident moves from unit 101 to 102 keeping their passphrase: one copy, on the new unit's VLAN."""
    plan = plan_sync(CONFIG, snapshot(a=[], b=[pp("b1", "moving-secret", vlan=102, pool="pool-b")],
                                      site=[site_copy("t1", "moving-secret", vlan=101)]),
                     [mapping(1, "s1", "moving-secret", "t1")], fp)
    assert kinds(plan) == [RELINK, UPDATE]
    assert (plan.actions[1].target_passphrase_id, plan.actions[1].vlan_before, plan.actions[1].vlan_after) == \
        ("t1", 101, 102)
    assert plan.flags == ()


def test_a_string_changed_to_that_of_a_removed_passphrase_takes_over_its_copy():
    plan = plan_sync(CONFIG, snapshot(a=[], b=[pp("b1", "secret-a-one", vlan=102, pool="pool-b")],
                                      site=[site_copy("t1", "secret-a-one", vlan=101),
                                            site_copy("t2", "secret-b-two", vlan=102)]),
                     [mapping(1, "s1", "secret-a-one", "t1"),
                      mapping(2, "b1", "secret-b-two", "t2", vlan=102, pool="pool-b")], fp)
    assert [(a.kind, a.mapping_id, a.target_passphrase_id) for a in plan.actions] == [
        (LINK, 2, "t1"), (UPDATE, 2, "t1"), (FORGET, 1, "t1")]
    assert [(f.kind, f.target_passphrase_id) for f in plan.flags] == [("orphan", "t2")], \
        "the old string has no source now: a person decides"


def test_two_units_swapping_strings_swap_copies_without_a_create():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-b-two")], b=[pp("b1", "secret-a-one", vlan=102,
                                                                           pool="pool-b")],
                                      site=[site_copy("t1", "secret-a-one", vlan=101),
                                            site_copy("t2", "secret-b-two", vlan=102)]),
                     [mapping(1, "s1", "secret-a-one", "t1"),
                      mapping(2, "b1", "secret-b-two", "t2", vlan=102, pool="pool-b")], fp)
    updates = {(a.target_passphrase_id, a.vlan_after) for a in plan.of_kind(UPDATE)}
    assert CREATE not in kinds(plan) and updates == {("t2", 101), ("t1", 102)}
    assert plan.flags == ()


def test_a_copy_whose_old_string_another_unit_now_holds_goes_to_that_unit():
    """Unit 101 changes P to Q while unit 102 adds P: P's copy moves to 102's VLAN, Q is created for 101;
    never Q under 102's VLAN."""
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-q-new")], b=[pp("b1", "secret-p-old", vlan=102,
                                                                          pool="pool-b")],
                                      site=[site_copy("t1", "secret-p-old", vlan=101)]),
                     [mapping(1, "s1", "secret-p-old", "t1")], fp)
    by_kind = {a.kind: a for a in plan.actions}
    assert sorted(kinds(plan)) == sorted([CREATE, ADOPT, UPDATE])
    assert (by_kind[ADOPT].target_passphrase_id, by_kind[UPDATE].vlan_after) == ("t1", 102)
    assert (by_kind[CREATE].fields.passphrase, by_kind[CREATE].vlan_after) == ("secret-q-new", 101)


def test_a_create_that_landed_unseen_is_linked_though_its_source_changed_vlan_since():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1", vlan=105)], site=[site_copy("t1", "secret-one-1")]),
                     [mapping(1, "s1", "secret-one-1", None, intent="create")], fp)
    assert kinds(plan) == [LINK, UPDATE] and plan.actions[1].vlan_after == 105
    assert plan.flags == ()


def test_a_revoked_source_in_a_conflict_still_revokes_its_placed_copy():
    plan = plan_sync(CONFIG, snapshot(a=[pp("s1", "shared-secret", is_revoked=True)],
                                      b=[pp("b1", "shared-secret", vlan=102, pool="pool-b")],
                                      site=[site_copy("t1", "shared-secret")]),
                     [mapping(1, "s1", "shared-secret", "t1")], fp)
    assert [(a.kind, a.target_passphrase_id) for a in plan.actions] == [(REVOKE, "t1")]
    assert flag_kinds(plan) == ["conflict"]


def test_a_string_held_by_the_copy_of_an_unread_pool_waits_instead_of_guessing():
    plan = plan_sync(CONFIG, snapshot(a=[], a_error="HTTP 503", b=[pp("b1", "secret-one-1", vlan=102, pool="pool-b")],
                                      site=[site_copy("t1", "secret-one-1")]),
                     [mapping(1, "s1", "secret-one-1", "t1")], fp)
    assert plan.actions == () and plan.flags == ()
    assert "left for the next run" in plan.notes[0]


def test_kept_mapping_is_never_flagged_or_touched():
    kept = [mapping(1, "s1", "secret-one-1", "t1", managed=False)]
    plan = plan_sync(CONFIG, snapshot(a=[], site=[site_copy("t1", "secret-one-1")]), kept, fp)
    assert plan.actions == () and plan.flags == ()


def test_removal_whose_target_is_also_gone_just_forgets_the_mapping():
    plan = plan_sync(CONFIG, snapshot(), [mapping(1, "s1", "secret-one-1", "t1")], fp)
    assert kinds(plan) == [FORGET]
    assert plan.flags == ()


def delete_config(limit: DeleteGuard) -> OrchestratorConfig:
    return replace(CONFIG, removals="delete", max_deletes=limit)


def removed(count: int) -> tuple[Snapshot, list[Mapping]]:
    site = [site_copy(f"t{i}", f"secret-{i:04d}") for i in range(count)]
    mappings = [mapping(i + 1, f"s{i}", f"secret-{i:04d}", f"t{i}") for i in range(count)]
    return snapshot(site=site), mappings


def test_removals_delete_within_the_guard_deletes_them():
    snap, mappings = removed(3)
    plan = plan_sync(delete_config(DeleteGuard(count=10)), snap, mappings, fp)
    assert kinds(plan) == [DELETE] * 3
    assert plan.flags == ()


def test_removals_over_the_guard_delete_nothing_and_block():
    snap, mappings = removed(30)
    plan = plan_sync(delete_config(DeleteGuard(count=10)), snap, mappings, fp)
    assert DELETE not in kinds(plan)
    assert plan.blocked_deletes == 30
    assert flag_kinds(plan) == ["removal"] * 30
    allowed = plan_sync(delete_config(DeleteGuard(count=10)), snap, mappings, fp, allow_deletes=True)
    assert kinds(allowed) == [DELETE] * 30


def test_no_deletes_when_any_read_was_incomplete():
    snap, mappings = removed(2)
    snap = replace(snap, sources=(snap.sources[0], replace(snap.sources[1], error="HTTP 503")))
    plan = plan_sync(delete_config(DeleteGuard(count=10)), snap, mappings, fp)
    assert DELETE not in kinds(plan)
    assert flag_kinds(plan) == ["removal", "removal"]


def test_pool_scope_touches_and_flags_no_other_pool():
    snap = snapshot(a=[pp("s1", "secret-one-1")], b=[pp("b1", "bee-secret-1", vlan=102, pool="pool-b")],
                    site=[site_copy("t7", "stranger-pass")], scope=frozenset({"pool-b"}))
    plan = plan_sync(CONFIG, snap, [], fp)
    assert [(a.kind, a.pool_id) for a in plan.actions] == [(CREATE, "pool-b")]
    assert plan.flags == ()  # the orphan is not judged in a pool-restricted run
    assert plan.judged_scope == frozenset({"pool-b"})


def test_pool_scope_flags_only_conflicts_that_involve_its_pools():
    outside = snapshot(a=[pp("s1", "shared-secret"), pp("s2", "shared-secret", username="bob")],
                       scope=frozenset({"pool-b"}))
    assert plan_sync(CONFIG, outside, [], fp).flags == ()
    across = snapshot(a=[pp("s1", "shared-secret")], b=[pp("b1", "shared-secret", vlan=102, pool="pool-b")],
                      scope=frozenset({"pool-b"}))
    plan = plan_sync(CONFIG, across, [], fp)
    assert plan.actions == () and flag_kinds(plan) == ["conflict"]


def test_expiry_spellings_of_the_same_moment_are_equal():
    assert normalise_time("2025-08-24T14:15:22Z") == normalise_time("2025-08-24T14:15:22.000+0000")
    assert normalise_time("2025-08-24T14:15:22") == "2025-08-24T14:15:22Z"
    assert normalise_time(None) is None


def test_empty_and_absent_contact_fields_are_the_same():
    desired = plan_sync(CONFIG, snapshot(a=[pp("s1", "secret-one-1")]), [], fp).actions[0].fields
    target = site_copy("t1", "secret-one-1", email="")
    assert changed_fields(desired, target) == ()


secrets_strategy = st.lists(st.text(alphabet="abcdefgh", min_size=8, max_size=10), min_size=0, max_size=12)


@settings(max_examples=60, deadline=None)
@given(a_secrets=secrets_strategy, b_secrets=secrets_strategy)
def test_every_placeable_source_is_created_exactly_once_and_nothing_else(a_secrets, b_secrets):
    a = [pp(f"a{i}", s) for i, s in enumerate(a_secrets)]
    b = [pp(f"b{i}", s, vlan=102, pool="pool-b") for i, s in enumerate(b_secrets)]
    plan = plan_sync(CONFIG, snapshot(a=a, b=b), [], fp)
    counts: dict[str, int] = {}
    for secret in a_secrets + b_secrets:
        counts[secret] = counts.get(secret, 0) + 1
    created = sorted(action.fields.passphrase for action in plan.actions)
    assert all(action.kind == CREATE for action in plan.actions)
    assert created == sorted(secret for secret, n in counts.items() if n == 1)
    assert len([f for f in plan.flags if f.kind == "conflict"]) == sum(1 for n in counts.values() if n > 1)
