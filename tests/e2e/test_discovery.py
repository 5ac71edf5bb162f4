"""Discovery through the real CLI against the simulator over HTTP (issue 4's must-shows)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from dpsk_orch.exit_codes import OK, PARTIAL, USAGE
from dpsk_orch.simulator import Simulator, serve_in_thread
from tests.e2e.conftest import CLIENT_ID, CLIENT_SECRET, TENANT, SeededProperty, Site, write_config

UNIT_POOLS = 40
NETWORKS = 30


@dataclass
class Venue:
    site: Site
    unit_pools: dict[str, str]  # name -> id
    other_venue_pool: str


def mixed_case_name(index: int) -> str:
    number = 101 + index
    return (f"unit{number}dpsk", f"Unit{number}DPSK", f"UNIT{number}Dpsk")[index % 3]


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[Venue]:
    """30 networks carrying 40 unit pools, a guest pool, the site-wide pool; a unit pool on another venue."""
    sim = Simulator(activity_delay_s=0.02)
    sim.add_tenant(TENANT, CLIENT_ID, CLIENT_SECRET)
    venue_id = sim.add_venue(TENANT, "Parkview")
    other_venue = sim.add_venue(TENANT, "Lakeside")
    site_wide = sim.add_pool(TENANT, "SiteWideDPSK")
    guest = sim.add_pool(TENANT, "GuestDPSK")
    sim.add_network(TENANT, "Residents", [venue_id], [site_wide])
    sim.add_network(TENANT, "Guests", [venue_id], [guest])
    sim.add_network(TENANT, "Staff PSK", [venue_id], [])
    units = {}
    for index in range(UNIT_POOLS):
        name = mixed_case_name(index)
        units[name] = sim.add_pool(TENANT, name)
        sim.add_passphrase(TENANT, units[name], f"resident-of-{name.lower()}", f"r{index}", vlan_id=100 + index)
    names = list(units)
    for network in range(NETWORKS - 3):  # 27 unit networks: the first 13 serve two pools each
        served = names[network * 2:network * 2 + 2] if network < 13 else [names[26 + network - 13]]
        sim.add_network(TENANT, f"unit-net-{network}", [venue_id], [units[n] for n in served])
    elsewhere = sim.add_pool(TENANT, "Unit901DPSK")
    sim.add_network(TENANT, "lakeside-901", [other_venue], [elsewhere])
    seeded = SeededProperty(TENANT, venue_id, site_wide, "SiteWideDPSK", tuple(units.values()), tuple(units))
    server = serve_in_thread(sim)
    try:
        config = write_config(tmp_path, server.url, seeded, discovery=True)
        yield Venue(Site(sim, server.url, seeded, config, tmp_path / "state.db", tmp_path), units, elsewhere)
    finally:
        server.stop()


def state_digest(db: Path) -> str:
    """Every row of every table, hashed: equal digests mean the state did not change."""
    connection = sqlite3.connect(db)
    try:
        tables = [row[0] for row in connection.execute("select name from sqlite_master where type='table' order by 1")]
        text = repr([(t, connection.execute(f"select * from {t} order by 1").fetchall()) for t in tables])
    finally:
        connection.close()
    return hashlib.sha256(text.encode()).hexdigest()


def test_discovery_finds_exactly_the_unit_pools_of_the_venue(venue: Venue) -> None:
    result = venue.site.cli_json("discover", "--all")["orchestrators"][0]

    assert result["networks_scanned"] == NETWORKS
    assert sorted(pool["name"] for pool in result["source_pools"]) == sorted(venue.unit_pools)
    assert sorted(result["added"]) == sorted(venue.unit_pools)


def test_discovery_works_where_networks_do_not_list_their_pools(venue: Venue) -> None:
    venue.site.sim.set_network_pools_endpoint(False)  # only GET /wifiNetworks/{id} with dpskServiceProfileId
    result = venue.site.cli_json("discover", "--all", "--dry-run")["orchestrators"][0]
    # the fallback sees one pool per network: 13 networks serving two pools show only their first
    assert len(result["source_pools"]) == UNIT_POOLS - 13
    assert result["errors"] == []


def test_sync_discovers_then_a_deleted_pool_gives_one_pool_gone_flag_and_no_removals(venue: Venue) -> None:
    site = venue.site
    first = site.cli("sync", "--all")
    assert first.exit_code == OK, first.stderr
    assert len(site.site_wide()) == UNIT_POOLS
    deleted = mixed_case_name(7)
    site.sim.delete_pool(TENANT, venue.unit_pools[deleted])

    second = site.cli("sync", "--all")

    assert second.exit_code == OK, second.stderr
    assert f"source pools gone: {deleted}" in second.stdout and "pools_gone=1" in second.stderr
    flags = site.cli_json("flags", "list")["flags"]
    assert [(f["kind"], f["pool"]) for f in flags] == [("pool_gone", deleted)]
    assert len(site.site_wide()) == UNIT_POOLS, "its site-wide passphrase stays until a person decides"
    assert site.cli("sync", "--all").exit_code == OK
    assert len(site.cli_json("flags", "list")["flags"]) == 1, "still one flag after another sync"
    history = site.cli_json("history")["runs"]
    assert any(run["command"] == "discover" and run["counts"].get("gone") == 1 for run in history)


def test_a_failed_network_read_makes_the_sync_partial_and_judges_no_pool_gone(venue: Venue) -> None:
    site = venue.site
    assert site.cli("sync", "--all").exit_code == OK
    site.sim.fail_requests("GET", r"^/wifiNetworks/[^/]+/dpskServices$", status=403, times=1)
    newcomer = site.unit(0)[0]
    site.sim.update_passphrase(TENANT, site.seeded.unit_pool_ids[0], newcomer["id"], vlanId=3000)

    result = site.cli("sync", "--all")

    assert result.exit_code == PARTIAL
    assert "discovery incomplete" in result.stderr
    assert site.cli_json("flags", "list")["flags"] == [], "no pool is judged gone from an incomplete discovery"
    assert {row["passphrase"]: row["vlanId"] for row in site.site_wide()}[newcomer["passphrase"]] == 3000
    assert site.cli("sync", "--all").exit_code == OK


def test_dry_run_discovery_leaves_the_state_file_unchanged(venue: Venue) -> None:
    site = venue.site
    assert site.cli("discover", "--all").exit_code == OK
    site.sim.delete_pool(TENANT, venue.unit_pools[mixed_case_name(0)])
    site.sim.add_network(TENANT, "new-unit", [site.seeded.venue_id], [site.sim.add_pool(TENANT, "Unit500DPSK")])
    before = state_digest(site.db_path)

    dry = site.cli_json("discover", "--all", "--dry-run")["orchestrators"][0]

    assert dry["added"] == ["Unit500DPSK"] and dry["gone"] == [mixed_case_name(0)]
    assert state_digest(site.db_path) == before


def test_discovery_without_venue_id_is_a_config_error(venue: Venue) -> None:
    config = yaml.safe_load(venue.site.config_path.read_text())
    del config["orchestrators"]["parkview"]["venue_id"]
    venue.site.config_path.write_text(yaml.safe_dump(config))

    result = venue.site.cli("config", "validate")

    assert result.exit_code == USAGE
    assert "venue_id" in result.stderr and "orchestrators.parkview" in result.stderr
