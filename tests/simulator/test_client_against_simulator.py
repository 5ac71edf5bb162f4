"""The real RuckusONE client against the simulator: incomplete reads, token refresh, 429, retries that must
and must not happen, delegated tenants, failed activities; and `dpsk-orch simulator` as its own process."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from dpsk_orch.r1.client import ClientSettings, R1Client
from dpsk_orch.r1.errors import IncompleteReadError, R1Error, R1Unreachable
from dpsk_orch.r1.records import PassphraseFields
from dpsk_orch.simulator import Simulator, SimulatorTransport
from dpsk_orch.simulator.server import SIM_CLIENT_ID, SIM_CLIENT_SECRET, SIM_TENANT

T = TypeVar("T")
TENANT = "tenant-a"
CLIENT_ID = "client-a"
CLIENT_SECRET = "client-secret-canary-5e1d"
STARTUP_TIMEOUT_S = 20.0


def new_sim(**options: Any) -> Simulator:
    options.setdefault("activity_delay_s", 0.0)
    sim = Simulator(**options)
    sim.add_tenant(TENANT, CLIENT_ID, CLIENT_SECRET)
    return sim


def with_client(sim: Simulator, work: Callable[[R1Client], Awaitable[T]], tenant_id: str = TENANT,
                delegated_tenant_id: str | None = None) -> T:
    """Run `work` with an R1Client wired to `sim` through its in-process transport."""
    settings = ClientSettings(api_url="http://r1.simulator", tenant_id=tenant_id, client_id=CLIENT_ID,
                              client_secret=CLIENT_SECRET, delegated_tenant_id=delegated_tenant_id,
                              max_requests_per_minute=2000, concurrency=4)

    async def go() -> T:
        async with R1Client(settings, transport=SimulatorTransport(sim)) as r1:
            return await work(r1)

    return asyncio.run(go())


def pool_with_rows(sim: Simulator, count: int, name: str = "Unit101DPSK", tenant_id: str = TENANT) -> str:
    pool = sim.add_pool(tenant_id, name)
    for i in range(count):
        sim.add_passphrase(tenant_id, pool, f"passphrase-{name}-{i:04d}", f"resident{i}", vlan_id=101)
    return pool


# ---- reads ----------------------------------------------------------------------------------

def test_short_page_raises_incomplete_read_instead_of_a_partial_list():
    sim = new_sim(max_page_size=5)
    pool = pool_with_rows(sim, 12)
    sim.short_page(pool, 2)
    with pytest.raises(IncompleteReadError) as raised:
        with_client(sim, lambda r1: r1.fetch_passphrases(pool))
    assert (raised.value.got, raised.value.declared) == (11, 12)


def test_read_across_clamped_pages_returns_every_row():
    sim = new_sim(max_page_size=5)
    pool = pool_with_rows(sim, 12)
    rows = with_client(sim, lambda r1: r1.fetch_passphrases(pool))
    assert sorted(row.username for row in rows) == sorted(f"resident{i}" for i in range(12))


def test_expired_token_mid_run_is_refreshed_once_and_the_run_goes_on():
    sim = new_sim()
    pools = [pool_with_rows(sim, 3, name) for name in ("Unit101DPSK", "Unit102DPSK", "Unit103DPSK")]

    async def work(r1: R1Client) -> list[int]:
        counts = [len(await r1.fetch_passphrases(pools[0]))]
        sim.expire_tokens()
        counts.append(len(await r1.fetch_passphrases(pools[1])))
        counts.append(len(await r1.fetch_passphrases(pools[2])))
        return counts

    assert with_client(sim, work) == [3, 3, 3]
    assert sim.count("POST", r"^/oauth2/token/") == 2
    assert [r.status for r in sim.requests if r.path.endswith("/query")] == [200, 401, 200, 200]


def test_token_refused_again_after_refresh_is_an_error_not_a_loop():
    sim = new_sim(token_lifetime_s=0)  # every token is stale on arrival
    pool = pool_with_rows(sim, 1)
    with pytest.raises(R1Error) as raised:
        with_client(sim, lambda r1: r1.fetch_passphrases(pool))
    assert raised.value.status == 401
    assert sim.count("POST", r"^/oauth2/token/") == 2


def test_rate_limited_read_waits_out_429_and_completes():
    sim = new_sim(rate_limit_per_minute=120, rate_limit_burst=2)
    pools = [pool_with_rows(sim, 2, name) for name in ("Unit101DPSK", "Unit102DPSK", "Unit103DPSK")]

    async def work(r1: R1Client) -> list[int]:
        return [len(await r1.fetch_passphrases(pool)) for pool in pools]

    assert with_client(sim, work) == [2, 2, 2]
    query_statuses = [r.status for r in sim.requests if r.path.endswith("/query")]
    assert 429 in query_statuses
    assert query_statuses.count(200) == 3


def test_503_on_a_read_is_retried():
    sim = new_sim()
    pool = pool_with_rows(sim, 4)
    sim.fail_requests("POST", r"/passphrases/query", 503, times=1)
    rows = with_client(sim, lambda r1: r1.fetch_passphrases(pool))
    assert len(rows) == 4
    assert [r.status for r in sim.requests if r.path.endswith("/query")] == [503, 200]


# ---- writes ---------------------------------------------------------------------------------

def new_fields(passphrase: str = "new-passphrase-0001", username: str = "alice") -> PassphraseFields:
    return PassphraseFields(passphrase=passphrase, username=username, vlan_id=101)


def test_503_on_a_create_is_not_sent_again():
    sim = new_sim()
    pool = pool_with_rows(sim, 0)
    sim.fail_requests("POST", r"/passphrases$", 503, times=1)
    with pytest.raises(R1Error) as raised:
        with_client(sim, lambda r1: r1.create_passphrase(pool, new_fields()))
    assert raised.value.status == 503
    assert sim.count(writes_only=True) == 1
    sim.settle()
    assert sim.passphrases(TENANT, pool) == []


def test_create_whose_answer_is_lost_is_not_sent_again_so_no_duplicate_appears():
    sim = new_sim()
    pool = pool_with_rows(sim, 0)
    sim.drop_connections("POST", r"/passphrases$")
    with pytest.raises(R1Unreachable):
        with_client(sim, lambda r1: r1.create_passphrase(pool, new_fields()))
    assert sim.count(writes_only=True) == 1
    sim.settle()
    assert [row["username"] for row in sim.passphrases(TENANT, pool)] == ["alice"]


def test_create_then_await_reports_success_and_the_row_appears():
    sim = new_sim()
    pool = pool_with_rows(sim, 0)

    async def work(r1: R1Client) -> tuple[Any, list]:
        request_id = await r1.create_passphrase(pool, new_fields())
        results = await r1.await_activities([request_id], deadline_s=5)
        return results[request_id], await r1.fetch_passphrases(pool)

    result, rows = with_client(sim, work)
    assert result.succeeded
    assert [(row.username, row.vlan_id) for row in rows] == [("alice", 101)]
    assert rows[0].identity_id and rows[0].identity_group_id == sim.pool(TENANT, pool)["identityGroupId"]


def test_failed_activity_surfaces_ruckusones_message():
    sim = new_sim()
    pool = pool_with_rows(sim, 0)
    sim.fail_activities(r"/passphrases$", message="DPSK pool is locked by another administrator")

    async def work(r1: R1Client) -> Any:
        request_id = await r1.create_passphrase(pool, new_fields())
        return (await r1.await_activities([request_id], deadline_s=5))[request_id]

    result = with_client(sim, work)
    assert not result.succeeded
    assert "DPSK pool is locked by another administrator" in result.message
    assert sim.passphrases(TENANT, pool) == []


def test_too_long_passphrase_fails_with_the_reason_but_without_the_passphrase():
    sim = new_sim()
    pool = pool_with_rows(sim, 0)
    too_long = "too-long-secret-" + "z" * 60

    async def work(r1: R1Client) -> Any:
        request_id = await r1.create_passphrase(pool, new_fields(passphrase=too_long))
        return (await r1.await_activities([request_id], deadline_s=5))[request_id]

    result = with_client(sim, work)
    assert not result.succeeded
    assert "DPSK-10032" in result.message and "between 8 and 63" in result.message
    assert too_long not in result.message


def test_stuck_activity_is_reported_as_not_succeeded_at_the_deadline():
    sim = new_sim()
    pool = pool_with_rows(sim, 0)
    sim.stuck_activities()

    async def work(r1: R1Client) -> Any:
        request_id = await r1.create_passphrase(pool, new_fields())
        return (await r1.await_activities([request_id], deadline_s=0.3))[request_id]

    result = with_client(sim, work)
    assert not result.succeeded
    assert "no result" in result.message


# ---- delegated tenants ----------------------------------------------------------------------

def test_every_call_for_a_delegated_tenant_carries_x_rks_tenantid():
    sim = new_sim()
    sim.add_tenant("customer-1", "unused", "unused")
    sim.add_tenant("msp", CLIENT_ID, CLIENT_SECRET, delegated_tenant_ids=["customer-1"])
    seeded = sim.seed_property("customer-1", units=2, per_unit=2)

    async def work(r1: R1Client) -> tuple[list, list, list]:
        pools = await r1.fetch_pools()
        network_ids = await r1.fetch_venue_network_ids(seeded.venue_id)
        networks = [await r1.fetch_network(network_id) for network_id in network_ids]
        request_id = await r1.create_passphrase(seeded.unit_pool_ids[0], new_fields())
        await r1.await_activities([request_id], deadline_s=5)
        rows = await r1.fetch_passphrases(seeded.unit_pool_ids[0])
        await r1.fetch_identities(sim.pool("customer-1", seeded.unit_pool_ids[0])["identityGroupId"])
        return pools, networks, rows

    pools, networks, rows = with_client(sim, work, tenant_id="msp", delegated_tenant_id="customer-1")
    assert {pool.name for pool in pools} == {"SiteWideDPSK", "Unit101DPSK", "Unit102DPSK"}
    assert {pool_id for network in networks for pool_id in network.pool_ids} == \
        {seeded.site_wide_pool_id, *seeded.unit_pool_ids}
    assert len(rows) == 3
    token_calls = [r for r in sim.requests if r.path.startswith("/oauth2/token/")]
    api_calls = [r for r in sim.requests if not r.path.startswith("/oauth2/token/")]
    assert [r.path for r in token_calls] == ["/oauth2/token/msp"]
    assert any(r.path.startswith("/activities") for r in api_calls)
    assert {r.tenant_header for r in api_calls} == {"customer-1"}


# ---- `dpsk-orch simulator` as a process -----------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_token(url: str, process: subprocess.Popen) -> str:
    """Ask for a token until the simulator answers; fail if the process dies or takes too long."""
    form = {"grant_type": "client_credentials", "client_id": SIM_CLIENT_ID, "client_secret": SIM_CLIENT_SECRET}
    give_up_at = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < give_up_at:
        assert process.poll() is None, process.stderr.read() if process.stderr else "simulator exited"
        try:
            answer = httpx.post(f"{url}/oauth2/token/{SIM_TENANT}", data=form, timeout=2.0, trust_env=False)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        assert answer.status_code == 200
        return answer.json()["access_token"]
    raise AssertionError(f"the simulator did not answer within {STARTUP_TIMEOUT_S:.0f}s")


def test_simulator_command_serves_the_seeded_property_over_http():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dpsk_orch", "simulator", "--port", str(port), "--units", "3", "--per-unit", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {wait_for_token(url, process)}"}
        with httpx.Client(base_url=url, headers=headers, timeout=5.0, trust_env=False) as http:
            pools = http.post("/dpskServices/query", json={}).json()["data"]
            (unit_pool,) = [pool for pool in pools if pool["name"] == "Unit101DPSK"]
            answer = http.post(f"/dpskServices/{unit_pool['id']}/passphrases/query", json={"page": 1, "pageSize": 100})
        assert answer.status_code == 200
        body = answer.json()
        assert body["totalCount"] == 2
        assert sorted(row["username"] for row in body["data"]) == ["unit101-resident1", "unit101-resident2"]
        assert {pool["name"] for pool in pools} >= {"SiteWideDPSK", "Unit101DPSK", "Unit102DPSK", "Unit103DPSK"}
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()
