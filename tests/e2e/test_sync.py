"""The main job through the real CLI against the simulator over HTTP (issue 3's must-shows)."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from dpsk_orch.exit_codes import OK, PARTIAL, UNREACHABLE, USAGE
from tests.e2e.conftest import TENANT, Site, make_site


def placed(site: Site) -> Counter:
    """(passphrase, VLAN) pairs in the site-wide pool, counted."""
    return Counter((row["passphrase"], row.get("vlanId")) for row in site.site_wide())


def unit_pairs(site: Site, indexes: range | list[int] | None = None) -> Counter:
    indexes = range(len(site.seeded.unit_pool_ids)) if indexes is None else indexes
    return Counter((row["passphrase"], row.get("vlanId")) for i in indexes for row in site.unit(i)
                   if not row.get("revocationReason"))


def flags(site: Site, *args: str) -> list[dict]:
    return site.cli_json("flags", "list", *args)["flags"]


@pytest.fixture
def big_site(tmp_path: Path):
    yield from make_site(tmp_path, units=200, per_unit=4)


def test_first_sync_places_every_passphrase_once_and_a_second_sync_writes_nothing(big_site: Site) -> None:
    result = big_site.cli("sync", "--all")
    assert result.exit_code == OK, result.stderr

    assert placed(big_site) == unit_pairs(big_site)
    assert sum(placed(big_site).values()) == 800
    writes_after_first = big_site.writes()

    second = big_site.cli("sync", "--all")
    assert second.exit_code == OK, second.stderr
    assert big_site.writes() == writes_after_first
    assert "no changes" in second.stderr


def test_changes_at_the_units_become_create_update_removal_flag_and_revoke(site: Site) -> None:
    assert site.cli("sync", "--all").exit_code == OK
    sim, pools = site.sim, site.seeded.unit_pool_ids
    sim.add_passphrase(TENANT, pools[0], "a-new-resident-passphrase", "newcomer", vlan_id=100)
    moved = site.unit(1)[0]
    sim.update_passphrase(TENANT, pools[1], moved["id"], vlanId=555)
    rekeyed = site.unit(2)[0]
    sim.update_passphrase(TENANT, pools[2], rekeyed["id"], passphrase="a-fresh-passphrase-for-unit-3")
    gone = site.unit(3)[0]
    sim.delete_passphrase(TENANT, pools[3], gone["id"])
    revoked = site.unit(4)[0]
    sim.revoke_passphrase(TENANT, pools[4], revoked["id"])
    before = len(site.site_wide())

    report = site.cli_json("sync", "--all")["orchestrators"][0]

    kinds = Counter(action["action"] for action in report["actions"])
    assert kinds == Counter({"create": 1, "update": 2, "revoke": 1})
    by_string = {row["passphrase"]: row for row in site.site_wide()}
    assert by_string["a-new-resident-passphrase"]["vlanId"] == 100
    assert by_string[moved["passphrase"]]["vlanId"] == 555
    assert "a-fresh-passphrase-for-unit-3" in by_string and rekeyed["passphrase"] not in by_string
    assert by_string[revoked["passphrase"]].get("revocationReason")
    assert gone["passphrase"] in by_string, "a removal is flagged, never deleted by default"
    assert len(site.site_wide()) == before + 1
    removal = [f for f in flags(site) if f["kind"] == "removal"]
    assert len(removal) == 1 and removal[0]["pool"] == site.seeded.unit_pool_names[3]


def test_a_failed_page_of_one_pool_raises_no_removal_and_the_other_pools_still_sync(tmp_path: Path) -> None:
    for site in make_site(tmp_path, units=3, per_unit=5, sim_options={"max_page_size": 2}):
        assert site.cli("sync", "--all").exit_code == OK
        pools = site.seeded.unit_pool_ids
        site.sim.delete_passphrase(TENANT, pools[0], site.unit(0)[0]["id"])
        site.sim.add_passphrase(TENANT, pools[1], "unit-two-newcomer-pass", "newcomer", vlan_id=101)
        site.sim.fail_page(pools[0], page=2)

        result = site.cli("sync", "--all")

        assert result.exit_code == PARTIAL
        assert "Unit101DPSK" in result.stderr and "retries" in result.stderr
        assert [f for f in flags(site) if f["kind"] == "removal"] == []
        assert ("unit-two-newcomer-pass", 101) in placed(site)


def test_a_failed_site_wide_read_changes_nothing(site: Site) -> None:
    site.sim.fail_requests("POST", rf"/dpskServices/{site.seeded.site_wide_pool_id}/passphrases/query", 500,
                           times=None)

    result = site.cli("sync", "--all")

    assert result.exit_code == PARTIAL
    assert site.writes() == 0
    assert flags(site) == []
    assert "next run retries" in result.stderr


def test_two_units_sharing_a_passphrase_get_a_conflict_flag_and_neither_is_placed(tmp_path: Path) -> None:
    for site in make_site(tmp_path, units=4, per_unit=2, with_shared_passphrase=True):
        shared = site.unit(0)[0]["passphrase"]
        assert site.unit(1)[0]["passphrase"] == shared

        assert site.cli("sync", "--all").exit_code == OK

        assert shared not in {row["passphrase"] for row in site.site_wide()}
        conflicts = [f for f in flags(site) if f["kind"] == "conflict"]
        assert len(conflicts) == 1
        assert sum(placed(site).values()) == 4 * 2 - 2


def test_a_run_killed_after_some_creates_is_completed_by_the_next_without_duplicates(tmp_path: Path) -> None:
    for site in make_site(tmp_path, units=30, per_unit=4, sim_options={"latency_s": 0.02}):
        process = site.spawn("sync", "--all")
        deadline = time.monotonic() + 60
        while site.sim.count("POST", r"/passphrases$") < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        sent = site.sim.count("POST", r"/passphrases$")
        assert 20 <= sent < 120, "the kill must land mid-run"

        result = site.cli("sync", "--all")

        assert result.exit_code == OK, result.stderr
        assert placed(site) == unit_pairs(site)
        assert max(placed(site).values()) == 1
        assert site.cli("sync", "--all").exit_code == OK
        assert placed(site) == unit_pairs(site)


def test_two_syncs_at_once_one_exits_75_and_sends_nothing(tmp_path: Path) -> None:
    for site in make_site(tmp_path, units=20, per_unit=4, sim_options={"latency_s": 0.05}):
        first = site.spawn("sync", "--all")
        deadline = time.monotonic() + 30
        while site.sim.count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        requests_before = site.sim.count()

        second = site.cli("sync", "--all")

        assert second.exit_code == UNREACHABLE
        assert "another" in second.stderr.lower() or "lock" in second.stderr.lower()
        first.wait(timeout=120)
        assert first.returncode == OK
        assert site.sim.count("POST", r"/passphrases$") == 80, "only the first run created anything"
        assert requests_before <= site.sim.count()
        assert placed(site) == unit_pairs(site)


def test_dry_run_writes_nothing_and_shows_no_passphrase(site: Site) -> None:
    table = site.cli("sync", "--all", "--dry-run")
    as_json = site.cli("--json", "sync", "--all", "--dry-run")

    assert table.exit_code == OK and as_json.exit_code == OK
    assert site.writes() == 0
    assert site.cli_json("status")["orchestrators"][0]["last_run"] is None
    assert list(site.tmp.glob("state.db*")) == [], "a dry run before the first sync creates no state file"
    plan = json.loads(as_json.stdout)["orchestrators"][0]
    assert len(plan["actions"]) == 18 and {a["action"] for a in plan["actions"]} == {"create"}
    assert {"action", "orchestrator", "pool", "username", "vlan_before", "vlan_after", "fingerprint",
            "reason"} <= set(plan["actions"][0])
    secrets = {row["passphrase"] for i in range(6) for row in site.unit(i)}
    for output in (table.stdout, table.stderr, as_json.stdout, as_json.stderr):
        assert not any(secret in output for secret in secrets)


def test_a_create_whose_answer_was_lost_is_not_sent_twice(site: Site) -> None:
    site.sim.drop_connections("POST", r"/passphrases$", times=1)  # the create lands, its 202 never arrives

    first = site.cli("sync", "--all")

    assert first.exit_code != OK
    assert site.sim.count("POST", r"/passphrases$") == 18, "the lost create was not re-sent"
    assert "next run" in first.stderr
    second = site.cli("sync", "--all")
    assert second.exit_code == OK, second.stderr
    assert placed(site) == unit_pairs(site) and max(placed(site).values()) == 1
    assert site.sim.count("POST", r"/passphrases$") == 18


def test_a_passphrase_revoked_before_its_first_sync_is_placed_only_once_active_again(site: Site) -> None:
    pool = site.seeded.unit_pool_ids[0]
    evicted = site.unit(0)[0]
    site.sim.revoke_passphrase(TENANT, pool, evicted["id"])

    assert site.cli("sync", "--all").exit_code == OK

    assert evicted["passphrase"] not in {row["passphrase"] for row in site.site_wide()}
    site.sim.update_passphrase(TENANT, pool, evicted["id"], revocationReason=None)
    assert site.cli("sync", "--all").exit_code == OK
    assert (evicted["passphrase"], evicted["vlanId"]) in placed(site)


def test_an_adopted_entry_gets_the_template_username_and_its_identity_names_it(site: Site) -> None:
    source = site.unit(0)[0]
    site.sim.add_passphrase(TENANT, site.seeded.site_wide_pool_id, source["passphrase"], "hand-made-copy",
                            vlan_id=source["vlanId"])

    report = site.cli_json("sync", "--all")["orchestrators"][0]
    assert site.cli("sync", "--all").exit_code == OK

    assert "adopt" in {action["action"] for action in report["actions"]}
    [copy] = [row for row in site.site_wide() if row["passphrase"] == source["passphrase"]]
    expected = f"{source['username']} [{site.seeded.unit_pool_names[0]}]"
    assert copy["username"] == expected
    group = site.sim.pool(TENANT, site.seeded.site_wide_pool_id)["identityGroupId"]
    [identity] = [i for i in site.sim.identities(TENANT, group) if i["id"] == copy["identityId"]]
    assert identity["name"] == expected and source["id"] in identity["description"]


def test_an_unknown_pool_is_a_usage_error_before_anything_is_called(site: Site) -> None:
    result = site.cli("sync", "--pool", "Unit999DPSK")

    assert result.exit_code == USAGE
    assert "Unit999DPSK" in result.stderr and site.seeded.unit_pool_names[0] in result.stderr
    assert site.sim.count() == 0


def test_a_pool_restricted_sync_touches_only_that_pool(site: Site) -> None:
    assert site.cli("sync", "--pool", site.seeded.unit_pool_names[1]).exit_code == OK

    assert placed(site) == unit_pairs(site, [1])


def test_a_resident_who_moves_units_with_their_passphrase_keeps_one_copy_on_the_new_vlan(site: Site) -> None:
    assert site.cli("sync", "--all").exit_code == OK
    pools = site.seeded.unit_pool_ids
    mover = site.unit(0)[0]
    site.sim.add_passphrase(TENANT, pools[1], mover["passphrase"], "moved-in", vlan_id=site.unit(1)[0]["vlanId"])
    site.sim.delete_passphrase(TENANT, pools[0], mover["id"])

    result = site.cli("sync", "--all")

    assert result.exit_code == OK, result.stderr
    copies = [row for row in site.site_wide() if row["passphrase"] == mover["passphrase"]]
    assert [row["vlanId"] for row in copies] == [site.unit(1)[0]["vlanId"]]
    assert site.cli_json("flags", "list")["flags"] == []
    before = site.writes()
    assert site.cli("sync", "--all").exit_code == OK and site.writes() == before
