"""Flags and their resolution, and guarded automatic deletes, through the CLI (issue 5's must-shows)."""

from __future__ import annotations

import getpass
from pathlib import Path

from dpsk_orch.exit_codes import BLOCKED, OK, USAGE
from tests.e2e.conftest import TENANT, Site, make_site


def open_flags(site: Site, kind: str | None = None) -> list[dict]:
    args = ("--kind", kind) if kind else ()
    return site.cli_json("flags", "list", *args)["flags"]


def remove_at_units(site: Site, count: int) -> list[str]:
    """Delete `count` source passphrases, spread over the units; returns their strings."""
    removed = []
    for n in range(count):
        unit = n % len(site.seeded.unit_pool_ids)
        row = site.unit(unit)[0]
        site.sim.delete_passphrase(TENANT, site.seeded.unit_pool_ids[unit], row["id"])
        removed.append(row["passphrase"])
    return removed


def site_wide_strings(site: Site) -> set[str]:
    return {row["passphrase"] for row in site.site_wide()}


def test_delete_on_a_removal_flag_removes_exactly_that_passphrase(site: Site) -> None:
    assert site.cli("sync", "--all").exit_code == OK
    [gone] = remove_at_units(site, 1)
    assert site.cli("sync", "--all").exit_code == OK
    [flag] = open_flags(site, "removal")
    before = site_wide_strings(site)

    result = site.cli("flags", "resolve", str(flag["id"]), "--action", "delete", "--yes")

    assert result.exit_code == OK, result.stderr
    assert site_wide_strings(site) == before - {gone}
    assert open_flags(site) == []
    detail = site.cli_json("flags", "show", str(flag["id"]))
    resolved = [e for e in detail["history"] if e["event"] == "resolved"]
    assert resolved and resolved[0]["actor"] == getpass.getuser() and resolved[0]["action"] == "delete"
    assert any(run["command"] == "resolve" for run in site.cli_json("history")["runs"])
    assert site.cli("sync", "--all").exit_code == OK
    assert open_flags(site) == [] and site_wide_strings(site) == before - {gone}


def test_flags_in_the_sync_json_carry_the_ids_that_resolve_takes(site: Site) -> None:
    assert site.cli("sync", "--all").exit_code == OK
    remove_at_units(site, 1)

    [flag] = site.cli_json("sync", "--all")["orchestrators"][0]["flags"]

    assert flag["kind"] == "removal"
    assert site.cli_json("flags", "show", str(flag["id"]))["kind"] == "removal"


def test_keep_is_never_flagged_again(site: Site) -> None:
    assert site.cli("sync", "--all").exit_code == OK
    [gone] = remove_at_units(site, 1)
    site.cli("sync", "--all")
    [flag] = open_flags(site, "removal")

    assert site.cli("flags", "resolve", str(flag["id"]), "--action", "keep").exit_code == OK

    for _ in range(3):
        assert site.cli("sync", "--all").exit_code == OK
        assert open_flags(site) == []
    assert gone in site_wide_strings(site)


def test_an_orphan_copied_to_the_suggested_pool_is_managed_and_the_next_sync_writes_nothing(tmp_path: Path) -> None:
    for site in make_site(tmp_path, units=4, per_unit=2):
        orphan_vlan = 102  # the VLAN of the third unit
        site.sim.add_passphrase(TENANT, site.seeded.site_wide_pool_id, "orphan-with-unit-vlan", "visitor",
                                vlan_id=orphan_vlan)
        assert site.cli("sync", "--all").exit_code == OK
        [flag] = open_flags(site, "orphan")
        shown = site.cli_json("flags", "show", str(flag["id"]))
        assert shown["suggested_pool"] == site.seeded.unit_pool_names[2]

        result = site.cli("flags", "resolve", str(flag["id"]), "--action", "copy-to-source", "--yes")

        assert result.exit_code == OK, result.stdout + result.stderr
        copied = [row for row in site.unit(2) if row["passphrase"] == "orphan-with-unit-vlan"]
        assert len(copied) == 1 and copied[0]["vlanId"] == orphan_vlan
        assert open_flags(site) == []
        writes = site.writes()
        assert site.cli("sync", "--all").exit_code == OK
        assert site.writes() == writes
        assert sorted(r["passphrase"] for r in site.site_wide()).count("orphan-with-unit-vlan") == 1


def test_removals_delete_under_the_guard_deletes_them(tmp_path: Path) -> None:
    for site in make_site(tmp_path, units=10, per_unit=3):
        site.rewrite_config(removals="delete", max_deletes=10)
        assert site.cli("sync", "--all").exit_code == OK
        removed = remove_at_units(site, 3)

        result = site.cli("sync", "--all")

        assert result.exit_code == OK, result.stderr
        assert site_wide_strings(site).isdisjoint(removed)
        assert len(site.site_wide()) == 27
        assert open_flags(site) == []


def test_removals_over_the_guard_delete_nothing_exit_3_until_allowed(tmp_path: Path) -> None:
    for site in make_site(tmp_path, units=30, per_unit=3):
        site.rewrite_config(removals="delete", max_deletes=10)
        assert site.cli("sync", "--all").exit_code == OK
        removed = remove_at_units(site, 30)

        blocked = site.cli("sync", "--all")

        assert blocked.exit_code == BLOCKED
        assert "--allow-deletes" in blocked.stdout + blocked.stderr
        assert set(removed) <= site_wide_strings(site)
        assert len(open_flags(site, "removal")) == 30
        assert site.cli("sync", "--all").exit_code == BLOCKED, "still blocked on the next timer run"

        allowed = site.cli("sync", "--all", "--allow-deletes")

        assert allowed.exit_code == OK, allowed.stderr
        assert site_wide_strings(site).isdisjoint(removed)
        assert len(site.site_wide()) == 60
        assert open_flags(site) == []


def test_a_destructive_resolve_without_a_terminal_or_yes_exits_2_and_changes_nothing(site: Site) -> None:
    assert site.cli("sync", "--all").exit_code == OK
    remove_at_units(site, 1)
    site.cli("sync", "--all")
    [flag] = open_flags(site, "removal")
    before, writes = site_wide_strings(site), site.writes()

    result = site.cli("flags", "resolve", str(flag["id"]), "--action", "delete")

    assert result.exit_code == USAGE
    assert "--yes" in result.stderr
    assert site_wide_strings(site) == before and site.writes() == writes
    assert [f["id"] for f in open_flags(site)] == [flag["id"]]


def test_dry_run_resolve_says_what_it_would_do_and_does_nothing(site: Site) -> None:
    assert site.cli("sync", "--all").exit_code == OK
    remove_at_units(site, 1)
    site.cli("sync", "--all")
    [flag] = open_flags(site, "removal")
    writes = site.writes()

    result = site.cli("flags", "resolve", str(flag["id"]), "--action", "delete", "--dry-run")

    assert result.exit_code == OK
    assert "would delete" in result.stdout
    assert site.writes() == writes and len(open_flags(site)) == 1


def test_an_unknown_flag_id_lists_the_open_ones(site: Site) -> None:
    assert site.cli("sync", "--all").exit_code == OK
    remove_at_units(site, 2)
    site.cli("sync", "--all")
    ids = sorted(f["id"] for f in open_flags(site))

    result = site.cli("flags", "resolve", "999", "--action", "keep")

    assert result.exit_code == USAGE
    assert f"open flags: {', '.join(map(str, ids))}" in result.stderr


def test_a_wrong_action_for_the_kind_names_the_right_ones(site: Site) -> None:
    assert site.cli("sync", "--all").exit_code == OK
    remove_at_units(site, 1)
    site.cli("sync", "--all")
    [flag] = open_flags(site)

    result = site.cli("flags", "resolve", str(flag["id"]), "--action", "copy-to-source", "--yes")

    assert result.exit_code == USAGE
    assert "delete, keep, retry" in result.stderr


def test_a_misspelt_kind_or_orchestrator_is_an_error_not_an_empty_list(site: Site) -> None:
    assert site.cli("sync", "--all").exit_code == OK
    remove_at_units(site, 1)
    site.cli("sync", "--all")

    misspelt_kind = site.cli("flags", "list", "--kind", "removals")
    unknown_name = site.cli("flags", "list", "parkveiw")
    bulk = site.cli("flags", "resolve", "--kind", "removals", "-o", "parkview", "--action", "keep")

    assert misspelt_kind.exit_code == USAGE and "removal, orphan, conflict" in misspelt_kind.stderr
    assert unknown_name.exit_code == USAGE and "known: parkview" in unknown_name.stderr
    assert bulk.exit_code == USAGE and len(open_flags(site, "removal")) == 1


def test_bulk_keep_by_kind_and_retry_of_a_missing_vlan(tmp_path: Path) -> None:
    for site in make_site(tmp_path, units=4, per_unit=2, with_missing_vlan=True):
        assert site.cli("sync", "--all").exit_code == OK
        [missing] = open_flags(site, "missing_vlan")
        remove_at_units(site, 2)
        site.cli("sync", "--all")

        bulk = site.cli("flags", "resolve", "--kind", "removal", "--orchestrator", "parkview", "--action", "keep")
        assert bulk.exit_code == OK
        assert open_flags(site, "removal") == []

        row = next(r for r in site.unit(3) if "vlanId" not in r)
        site.sim.update_passphrase(TENANT, site.seeded.unit_pool_ids[3], row["id"], vlanId=103)
        retry = site.cli("flags", "resolve", str(missing["id"]), "--action", "retry")
        assert retry.exit_code == OK, retry.stderr
        assert open_flags(site) == []
        assert (row["passphrase"], 103) in {(r["passphrase"], r.get("vlanId")) for r in site.site_wide()}
