"""The simulator answers over HTTP as API.md says RuckusONE does: tokens, paging, 202 + activities, faults."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from dpsk_orch.simulator import Simulator, serve_in_thread

TENANT = "tenant-a"
CLIENT_ID = "client-a"
CLIENT_SECRET = "secret-a"
ACTIVITY_POLL_LIMIT = 50


@dataclass
class Api:
    """A raw HTTP client for one simulator, with a bearer token once `login` was called."""

    sim: Simulator
    http: httpx.Client
    headers: dict[str, str] = field(default_factory=dict)

    def token(self, tenant_id: str = TENANT, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET
              ) -> httpx.Response:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        return self.http.post(f"/oauth2/token/{tenant_id}", data=form)

    def login(self, **credentials: str) -> Api:
        self.headers["Authorization"] = f"Bearer {self.token(**credentials).json()['access_token']}"
        return self

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        content = None if body is None else json.dumps(body).encode()
        headers = {**self.headers, "Content-Type": "application/json", **kwargs.pop("headers", {})}
        return self.http.request(method, path, content=content, headers=headers, **kwargs)

    def query(self, pool_id: str, body: dict | None = None) -> httpx.Response:
        return self.call("POST", f"/dpskServices/{pool_id}/passphrases/query", body or {"page": 1, "pageSize": 100})

    def rows(self, pool_id: str) -> list[dict]:
        return self.query(pool_id).json()["data"]

    def activity(self, request_id: str, **kwargs: Any) -> dict:
        """Poll GET /activities/{id} until it is terminal (404 and INPROGRESS mean not yet)."""
        for _ in range(ACTIVITY_POLL_LIMIT):
            answer = self.call("GET", f"/activities/{request_id}", **kwargs)
            if answer.status_code == 200 and answer.json()["status"] not in ("PENDING", "INPROGRESS"):
                return answer.json()
            time.sleep(0.01)
        raise AssertionError(f"activity {request_id} never ended")


@pytest.fixture
def serve() -> Iterator[Callable[..., Api]]:
    """Start a simulator (one tenant) over HTTP on 127.0.0.1; stopped after the test."""
    servers = []

    def start(**options: Any) -> Api:
        options.setdefault("activity_delay_s", 0.0)
        sim = Simulator(**options)
        sim.add_tenant(TENANT, CLIENT_ID, CLIENT_SECRET)
        server = serve_in_thread(sim)
        api = Api(sim, httpx.Client(base_url=server.url, trust_env=False, timeout=5.0))
        servers.append((api, server))
        return api

    yield start
    for api, server in servers:
        api.http.close()
        server.stop()


@pytest.fixture
def api(serve) -> Api:
    return serve().login()


def add_rows(sim: Simulator, pool_id: str, count: int, vlan: int | None = 101) -> list[str]:
    return [sim.add_passphrase(TENANT, pool_id, f"passphrase-{i:04d}", f"resident{i}", vlan_id=vlan)
            for i in range(count)]


def error_code(answer: httpx.Response) -> str:
    return answer.json()["errors"][0]["code"]


def create(api: Api, pool_id: str, passphrase: str, username: str = "alice", **fields: Any) -> httpx.Response:
    return api.call("POST", f"/dpskServices/{pool_id}/passphrases",
                    {"passphrase": passphrase, "username": username, **fields})


# ---- tokens ---------------------------------------------------------------------------------

def test_token_is_issued_for_the_form_encoded_client_credentials(serve):
    api = serve()
    answer = api.token()
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    api.headers["Authorization"] = f"Bearer {body['access_token']}"
    assert api.call("POST", "/dpskServices/query", {}).status_code == 200


@pytest.mark.parametrize("tenant_id, secret", [(TENANT, "wrong"), ("other-tenant", CLIENT_SECRET)])
def test_token_with_wrong_secret_or_tenant_is_401(serve, tenant_id, secret):
    assert serve().token(tenant_id=tenant_id, secret=secret).status_code == 401


def test_token_as_json_body_is_refused(serve):
    api = serve()
    answer = api.http.post(f"/oauth2/token/{TENANT}", json={"grant_type": "client_credentials",
                                                            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert answer.status_code == 401


def test_call_without_a_token_is_401(serve):
    assert serve().call("POST", "/dpskServices/query", {}).status_code == 401


def test_expired_tokens_get_401_rcg_10003_and_a_new_token_works(api):
    api.sim.expire_tokens()
    answer = api.call("POST", "/dpskServices/query", {})
    assert answer.status_code == 401
    assert error_code(answer) == "RCG-10003"
    assert api.login().call("POST", "/dpskServices/query", {}).status_code == 200


# ---- paging ---------------------------------------------------------------------------------

def test_passphrase_query_pages_are_one_based(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    ids = add_rows(api.sim, pool, 7)
    pages = [api.query(pool, {"page": page, "pageSize": 3}).json() for page in (1, 2, 3)]
    assert [page["page"] for page in pages] == [1, 2, 3]
    assert {(page["totalCount"], page["totalPages"]) for page in pages} == {(7, 3)}
    assert [row["id"] for page in pages for row in page["data"]] == ids
    assert api.query(pool, {"page": 4, "pageSize": 3}).json()["data"] == []


@pytest.mark.parametrize("page", [0, -1])
def test_passphrase_query_page_below_one_is_500(api, page):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    add_rows(api.sim, pool, 2)
    assert api.query(pool, {"page": page, "pageSize": 10}).status_code == 500


def test_page_size_is_clamped_to_the_server_maximum(serve):
    api = serve(max_page_size=5).login()
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    add_rows(api.sim, pool, 12)
    body = api.query(pool, {"page": 1, "pageSize": 500}).json()
    assert (len(body["data"]), body["totalCount"], body["totalPages"]) == (5, 12, 3)


def test_no_paging_keys_give_the_default_page_of_20(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    add_rows(api.sim, pool, 25)
    body = api.query(pool, {"pageNumber": 1, "limit": 100}).json()
    assert (len(body["data"]), body["totalCount"]) == (20, 25)


def test_unset_fields_are_absent_not_null(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    api.sim.add_passphrase(TENANT, pool, "passphrase-1", "alice")  # no VLAN, devices, expiry, email
    (row,) = api.rows(pool)
    assert None not in row.values()
    assert not {"vlanId", "numberOfDevices", "expirationDate", "email", "mac", "revocationReason"} & row.keys()
    assert {"id", "passphrase", "username", "identityId", "identityGroupId", "createdDate"} <= row.keys()


def test_identities_are_listed_as_zero_based_spring_pages(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    ids = add_rows(api.sim, pool, 5)
    group = api.sim.pool(TENANT, pool)["identityGroupId"]
    pages = [api.call("GET", f"/identityGroups/{group}/identities", params={"page": page, "size": 2}).json()
             for page in (0, 1, 2)]
    assert [page["number"] for page in pages] == [0, 1, 2]
    assert {page["totalElements"] for page in pages} == {5}
    assert sorted(row["dpskGuid"] for page in pages for row in page["content"]) == sorted(ids)


# ---- writes and activities ------------------------------------------------------------------

def test_write_answers_202_and_takes_effect_only_when_its_activity_completes(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    api.sim.stuck_activities()
    answer = create(api, pool, "new-passphrase-1")
    assert answer.status_code == 202
    request_id = answer.json()["requestId"]
    assert api.rows(pool) == []
    first, second = (api.call("GET", f"/activities/{request_id}") for _ in range(2))
    assert first.status_code == 404  # not created yet (API.md §6.3)
    assert second.json()["status"] == "INPROGRESS"
    assert api.rows(pool) == []
    api.sim.stuck_activities(False)
    assert api.activity(request_id)["status"] == "SUCCESS"
    assert [row["username"] for row in api.rows(pool)] == ["alice"]


def test_activity_completes_after_its_delay_without_being_polled(serve):
    api = serve(activity_delay_s=0.2).login()
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    create(api, pool, "new-passphrase-1")
    assert api.rows(pool) == []
    time.sleep(0.25)
    assert len(api.rows(pool)) == 1


def test_create_returns_no_id_and_makes_an_identity_in_the_pools_group(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    answer = create(api, pool, "new-passphrase-1", vlanId=101)
    assert answer.json().keys() == {"requestId"}
    assert api.activity(answer.json()["requestId"])["status"] == "SUCCESS"
    (row,) = api.rows(pool)
    group = api.sim.pool(TENANT, pool)["identityGroupId"]
    assert row["identityGroupId"] == group
    identities = api.call("GET", f"/identityGroups/{group}/identities").json()["content"]
    assert [(identity["id"], identity["dpskGuid"]) for identity in identities] == [(row["identityId"], row["id"])]


def test_duplicate_passphrase_in_the_pool_fails_the_activity(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    api.sim.add_passphrase(TENANT, pool, "taken-passphrase", "alice")
    answer = create(api, pool, "taken-passphrase", username="bob")
    assert answer.status_code == 202
    assert api.activity(answer.json()["requestId"])["status"] == "FAIL"
    assert [row["username"] for row in api.rows(pool)] == ["alice"]


def test_passphrase_under_8_characters_is_refused_at_once_with_dpsk_032(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    answer = create(api, pool, "short7c")
    assert answer.status_code == 400
    assert error_code(answer) == "DPSK-032"
    api.sim.settle()
    assert api.rows(pool) == []


def test_passphrase_over_63_characters_is_accepted_then_fails_with_dpsk_10032(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    too_long = "x" * 64
    answer = create(api, pool, too_long)
    assert answer.status_code == 202
    activity = api.activity(answer.json()["requestId"])
    assert activity["status"] == "FAIL"
    error = activity["errors"][0]
    assert error["code"] == "DPSK-10032"
    detail = json.loads(error["message"])  # a JSON document inside a string (API.md §8.1)
    assert detail["subErrors"][0]["field"] == "passphrase"
    assert api.rows(pool) == []


def test_bulk_delete_takes_a_bare_array(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    first, second, third = add_rows(api.sim, pool, 3)
    answer = api.call("DELETE", f"/dpskServices/{pool}/passphrases", [first, third])
    assert answer.status_code == 202
    assert api.activity(answer.json()["requestId"])["status"] == "SUCCESS"
    assert [row["id"] for row in api.rows(pool)] == [second]


def test_bulk_delete_with_an_object_is_400_general_003(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    ids = add_rows(api.sim, pool, 2)
    answer = api.call("DELETE", f"/dpskServices/{pool}/passphrases", {"passphraseIds": ids})
    assert answer.status_code == 400
    assert error_code(answer) == "GENERAL-003"
    api.sim.settle()
    assert len(api.rows(pool)) == 2


def test_bulk_patch_revokes_and_unrevokes(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    revoked, untouched = add_rows(api.sim, pool, 2)
    path = f"/dpskServices/{pool}/passphrases"
    answer = api.call("PATCH", path, {"ids": [revoked], "changes": {"revocationReason": "moved out"}})
    assert api.activity(answer.json()["requestId"])["status"] == "SUCCESS"
    rows = {row["id"]: row for row in api.rows(pool)}
    assert rows[revoked]["revocationReason"] == "moved out"
    assert rows[revoked]["revocationDate"]
    assert "revocationReason" not in rows[untouched]
    answer = api.call("PATCH", path, {"ids": [revoked], "changes": {"revocationReason": None}})
    assert api.activity(answer.json()["requestId"])["status"] == "SUCCESS"
    row = {row["id"]: row for row in api.rows(pool)}[revoked]
    assert not {"revocationReason", "revocationDate"} & row.keys()


def test_passphrase_query_filters_by_status(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    active, revoked = add_rows(api.sim, pool, 2)
    api.sim.revoke_passphrase(TENANT, pool, revoked)
    body = api.query(pool, {"page": 1, "pageSize": 10, "filters": {"status": ["REVOKED"]}}).json()
    assert [row["id"] for row in body["data"]] == [revoked]


# ---- tenants --------------------------------------------------------------------------------

def test_x_rks_tenantid_acts_in_a_delegated_tenant(serve):
    api = serve()
    api.sim.add_tenant("customer-1", "c1", "s1")
    api.sim.add_tenant("customer-2", "c2", "s2")
    api.sim.add_tenant("msp", "msp-client", "msp-secret", delegated_tenant_ids=["customer-1"])
    api.sim.add_pool("customer-1", "CustomerPool")
    api.login(tenant_id="msp", client_id="msp-client", secret="msp-secret")
    own = api.call("POST", "/dpskServices/query", {}).json()
    delegated = api.call("POST", "/dpskServices/query", {}, headers={"x-rks-tenantid": "customer-1"}).json()
    assert own["data"] == []
    assert [pool["name"] for pool in delegated["data"]] == ["CustomerPool"]
    refused = api.call("POST", "/dpskServices/query", {}, headers={"x-rks-tenantid": "customer-2"})
    assert refused.status_code == 403


def test_activity_of_a_delegated_tenant_needs_the_header(serve):
    api = serve()
    api.sim.add_tenant("customer-1", "c1", "s1")
    api.sim.add_tenant("msp", "msp-client", "msp-secret", delegated_tenant_ids=["customer-1"])
    pool = api.sim.add_pool("customer-1", "CustomerPool")
    api.login(tenant_id="msp", client_id="msp-client", secret="msp-secret")
    delegated = {"x-rks-tenantid": "customer-1"}
    answer = api.call("POST", f"/dpskServices/{pool}/passphrases", {"passphrase": "new-passphrase-1", "username": "a"},
                      headers=delegated)
    request_id = answer.json()["requestId"]
    for _ in range(2):
        assert api.call("GET", f"/activities/{request_id}").status_code == 404
    assert api.activity(request_id, headers=delegated)["status"] == "SUCCESS"


# ---- faults ---------------------------------------------------------------------------------

def test_rate_limit_answers_429_with_retry_after(serve):
    api = serve(rate_limit_per_minute=60, rate_limit_burst=2).login()
    answers = [api.call("POST", "/dpskServices/query", {}) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1


def test_fail_page_answers_500_on_that_page_only(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    add_rows(api.sim, pool, 9)
    api.sim.fail_page(pool, 2)
    statuses = [api.query(pool, {"page": page, "pageSize": 3}).status_code for page in (1, 2, 3, 2)]
    assert statuses == [200, 500, 200, 500]


def test_short_page_has_one_row_fewer_while_total_stays_true(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    add_rows(api.sim, pool, 9)
    api.sim.short_page(pool, 2, times=1)
    short = api.query(pool, {"page": 2, "pageSize": 3}).json()
    assert (len(short["data"]), short["totalCount"]) == (2, 9)
    assert len(api.query(pool, {"page": 2, "pageSize": 3}).json()["data"]) == 3


def test_fail_requests_answers_the_status_the_given_number_of_times(api):
    api.sim.fail_requests("POST", r"/dpskServices/query", 503, times=2)
    statuses = [api.call("POST", "/dpskServices/query", {}).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_dropped_connection_gets_no_answer_but_the_write_took_effect(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    api.sim.drop_connections("POST", r"/passphrases$")
    with pytest.raises(httpx.RemoteProtocolError):
        create(api, pool, "new-passphrase-1")
    api.sim.settle()
    assert [row["username"] for row in api.rows(pool)] == ["alice"]
    assert create(api, pool, "new-passphrase-2", username="bob").status_code == 202  # only once


def test_stuck_activities_stay_in_progress_until_settled(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    api.sim.stuck_activities()
    request_id = create(api, pool, "new-passphrase-1").json()["requestId"]
    statuses = [api.call("GET", f"/activities/{request_id}").status_code for _ in range(3)]
    assert statuses == [404, 200, 200]
    assert api.call("GET", f"/activities/{request_id}").json()["status"] == "INPROGRESS"
    api.sim.settle()
    assert api.call("GET", f"/activities/{request_id}").json()["status"] == "SUCCESS"


def test_fail_activities_ends_the_write_in_fail_with_the_message(api):
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    api.sim.fail_activities(r"/passphrases$", message="pool is locked", times=1)
    failed = api.activity(create(api, pool, "new-passphrase-1").json()["requestId"])
    assert failed["status"] == "FAIL"
    assert failed["errors"][0]["message"] == "pool is locked"
    assert api.rows(pool) == []
    assert api.activity(create(api, pool, "new-passphrase-1").json()["requestId"])["status"] == "SUCCESS"


# ---- venues and networks --------------------------------------------------------------------

@pytest.fixture
def venue(api) -> tuple[str, str, str, str]:
    """A venue with a DPSK network serving one pool and a guest network; (venue, dpsk net, guest net, pool)."""
    venue_id = api.sim.add_venue(TENANT, "Parkview")
    pool = api.sim.add_pool(TENANT, "Unit101DPSK")
    dpsk_network = api.sim.add_network(TENANT, "Unit101", [venue_id], [pool])
    guest_network = api.sim.add_network(TENANT, "Guest", [venue_id])
    api.sim.add_network(TENANT, "Elsewhere", [api.sim.add_venue(TENANT, "Other")], [])
    return venue_id, dpsk_network, guest_network, pool


def test_venue_networks_query_lists_the_networks_of_the_venue(api, venue):
    venue_id, dpsk_network, guest_network, _ = venue
    body = api.call("POST", "/venues/wifiNetworks/query", {"venueIds": [venue_id]}).json()
    assert [row["venueId"] for row in body["data"]] == [venue_id]
    assert sorted(n["networkId"] for n in body["data"][0]["networks"]) == sorted([dpsk_network, guest_network])


def test_network_lists_its_dpsk_pools(api, venue):
    _, dpsk_network, guest_network, pool = venue
    assert [row["id"] for row in api.call("GET", f"/wifiNetworks/{dpsk_network}/dpskServices").json()["data"]] == \
        [pool]
    assert api.call("GET", f"/wifiNetworks/{guest_network}/dpskServices").json()["data"] == []


def test_network_pools_endpoint_can_be_absent(api, venue):
    _, dpsk_network, _, _ = venue
    api.sim.set_network_pools_endpoint(False)
    assert api.call("GET", f"/wifiNetworks/{dpsk_network}/dpskServices").status_code == 404


def test_network_names_its_pool_in_dpsk_service_profile_id(api, venue):
    _, dpsk_network, guest_network, pool = venue
    dpsk = api.call("GET", f"/wifiNetworks/{dpsk_network}").json()
    guest = api.call("GET", f"/wifiNetworks/{guest_network}").json()
    assert (dpsk["type"], dpsk["dpskServiceProfileId"]) == ("dpsk", pool)
    assert "dpskServiceProfileId" not in guest
