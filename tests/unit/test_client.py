"""The RuckusONE client against respx: paging, retries, tokens, activities, secrets in errors."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import respx

from dpsk_orch.r1.client import ClientSettings, R1Client, create_body, passphrase_from_row, safe_message
from dpsk_orch.r1.errors import IncompleteReadError, R1Error
from dpsk_orch.r1.records import PassphraseFields
from dpsk_orch.r1.retry import parse_retry_after_s, retry_wait_s, should_retry

API = "https://r1.test"
SETTINGS = ClientSettings(api_url=API, tenant_id="msp-1", client_id="cid", client_secret="client-secret-canary",
                          max_requests_per_minute=2000, concurrency=4)


def run(coroutine):
    return asyncio.run(coroutine)


def token_route(mock: respx.MockRouter, *tokens: str) -> respx.Route:
    answers = [httpx.Response(200, json={"access_token": t, "expires_in": 3600}) for t in tokens or ("tok-1",)]
    return mock.post(f"{API}/oauth2/token/msp-1").mock(side_effect=answers)


def rows(start: int, count: int) -> list[dict]:
    return [{"id": f"{i:032x}", "passphrase": f"secret-{i:05d}", "username": f"u{i}", "vlanId": 100 + i}
            for i in range(start, start + count)]


def page_answer(request: httpx.Request, total: int, cap: int = 500) -> httpx.Response:
    body = json.loads(request.content)
    page, size = body["page"], min(body["pageSize"], cap)
    if page < 1:
        return httpx.Response(500, json={"errors": [{"code": "GENERAL-500", "message": "page must be >= 1"}]})
    start = (page - 1) * size
    return httpx.Response(200, json={"data": rows(start, max(0, min(size, total - start))), "totalCount": total,
                                     "page": page, "totalPages": -(-total // size)})


@respx.mock
def test_paged_read_returns_every_row_across_one_based_pages():
    token_route(respx.mock)
    respx.post(f"{API}/dpskServices/p1/passphrases/query").mock(side_effect=lambda r: page_answer(r, 1203))

    async def go():
        async with R1Client(SETTINGS) as r1:
            return await r1.fetch_passphrases("p1")

    result = run(go())
    assert len({p.id for p in result}) == 1203
    pages = [json.loads(call.request.content)["page"] for call in respx.calls if "query" in str(call.request.url)]
    assert sorted(pages) == [1, 2, 3]


@respx.mock
def test_server_page_cap_smaller_than_requested_still_reads_everything():
    token_route(respx.mock)
    respx.post(f"{API}/dpskServices/p1/passphrases/query").mock(side_effect=lambda r: page_answer(r, 250, cap=100))

    async def go():
        async with R1Client(SETTINGS) as r1:
            return await r1.fetch_passphrases("p1")

    assert len(run(go())) == 250


@respx.mock
def test_short_page_raises_incomplete_read():
    token_route(respx.mock)

    def short(request: httpx.Request) -> httpx.Response:
        answer = page_answer(request, 1000)
        body = answer.json()
        if body["page"] == 2:
            body["data"] = body["data"][:-1]
        return httpx.Response(200, json=body)

    respx.post(f"{API}/dpskServices/p1/passphrases/query").mock(side_effect=short)

    async def go():
        async with R1Client(SETTINGS) as r1:
            await r1.fetch_passphrases("p1")

    with pytest.raises(IncompleteReadError) as caught:
        run(go())
    assert (caught.value.got, caught.value.declared) == (999, 1000)


@respx.mock
def test_401_mid_run_refreshes_the_token_once_and_goes_on():
    tokens = token_route(respx.mock, "tok-1", "tok-2")
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        if request.headers["Authorization"] == "Bearer tok-1" and len(seen) > 1:
            return httpx.Response(401, json={"errors": [{"code": "RCG-10003", "message": "session expired"}]})
        return httpx.Response(200, json={"id": "p1", "name": "Pool"})

    respx.get(f"{API}/dpskServices/p1").mock(side_effect=answer)

    async def go():
        async with R1Client(SETTINGS) as r1:
            await r1.fetch_pool("p1")
            return await r1.fetch_pool("p1")

    assert run(go()).name == "Pool"
    assert tokens.call_count == 2
    assert seen == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


@respx.mock
def test_429_with_retry_after_waits_that_long():
    token_route(respx.mock)
    respx.get(f"{API}/dpskServices/p1").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "1"}, json={"errors": [{"code": "RCG-10029"}]}),
        httpx.Response(200, json={"id": "p1", "name": "Pool"}),
    ])

    async def go():
        async with R1Client(SETTINGS) as r1:
            started = time.monotonic()
            await r1.fetch_pool("p1")
            return time.monotonic() - started, r1.stats.throttled

    waited, throttled = run(go())
    assert 1.0 <= waited < 2.5
    assert throttled == 1


@respx.mock
def test_503_on_a_read_is_retried():
    token_route(respx.mock)
    route = respx.get(f"{API}/dpskServices/p1").mock(side_effect=[
        httpx.Response(503), httpx.Response(200, json={"id": "p1", "name": "Pool"})])

    async def go():
        async with R1Client(SETTINGS) as r1:
            return await r1.fetch_pool("p1")

    assert run(go()).id == "p1"
    assert route.call_count == 2


@respx.mock
def test_503_on_a_write_is_not_resent():
    token_route(respx.mock)
    route = respx.post(f"{API}/dpskServices/p1/passphrases").mock(return_value=httpx.Response(503))

    async def go():
        async with R1Client(SETTINGS) as r1:
            await r1.create_passphrase("p1", PassphraseFields(passphrase="secret-canary-77", username="bob"))

    with pytest.raises(R1Error) as caught:
        run(go())
    assert route.call_count == 1
    assert "secret-canary-77" not in str(caught.value)


@respx.mock
def test_timeout_on_a_write_is_not_resent():
    token_route(respx.mock)
    route = respx.post(f"{API}/dpskServices/p1/passphrases").mock(side_effect=httpx.ReadTimeout("slow"))

    async def go():
        async with R1Client(SETTINGS) as r1:
            await r1.create_passphrase("p1", PassphraseFields(passphrase="secret-canary-77", username="bob"))

    with pytest.raises(R1Error):
        run(go())
    assert route.call_count == 1


@respx.mock
def test_every_request_of_a_delegated_tenant_carries_its_header():
    token_route(respx.mock)
    respx.get(f"{API}/dpskServices/p1").mock(return_value=httpx.Response(200, json={"id": "p1", "name": "P"}))
    respx.post(f"{API}/dpskServices/p1/passphrases").mock(return_value=httpx.Response(202, json={"requestId": "a1"}))
    respx.post(f"{API}/activities/query").mock(return_value=httpx.Response(200, json={
        "data": [{"requestId": "a1", "status": "SUCCESS"}], "totalCount": 1, "page": 1}))
    delegated = ClientSettings(**{**SETTINGS.__dict__, "delegated_tenant_id": "customer-9"})

    async def go():
        async with R1Client(delegated) as r1:
            await r1.fetch_pool("p1")
            request_id = await r1.create_passphrase("p1", PassphraseFields(passphrase="abcdefgh1", username="u"))
            await r1.await_activities([request_id])

    run(go())
    data_calls = [c.request for c in respx.calls if "/oauth2/" not in str(c.request.url)]
    assert len(data_calls) == 3
    assert all(request.headers.get("x-rks-tenantid") == "customer-9" for request in data_calls)


@respx.mock
def test_activity_fail_surfaces_ruckusone_message_without_the_echoed_secret():
    token_route(respx.mock)
    inner = json.dumps({"message": "Validation Error", "subErrors": [
        {"field": "passphrase", "rejectedValue": "secret-canary-64", "message": "Size must be between 8 and 63"}]})
    respx.post(f"{API}/activities/query").mock(return_value=httpx.Response(200, json={
        "data": [{"requestId": "a1", "status": "FAIL", "errors": [{"code": "DPSK-10032", "message": inner}]}],
        "totalCount": 1, "page": 1}))

    async def go():
        async with R1Client(SETTINGS) as r1:
            return (await r1.await_activities(["a1"]))["a1"]

    result = run(go())
    assert not result.succeeded
    assert "DPSK-10032" in result.message and "Size must be between 8 and 63" in result.message
    assert "secret-canary-64" not in result.message


@respx.mock
def test_activity_poll_treats_absent_then_inprogress_as_pending():
    token_route(respx.mock)
    respx.post(f"{API}/activities/query").mock(side_effect=[
        httpx.Response(200, json={"data": [], "totalCount": 0, "page": 1}),
        httpx.Response(200, json={"data": [{"requestId": "a1", "status": "INPROGRESS"}], "totalCount": 1}),
        httpx.Response(200, json={"data": [{"requestId": "a1", "status": "SUCCESS"}], "totalCount": 1}),
    ])

    async def go():
        async with R1Client(SETTINGS) as r1:
            return await r1.await_activities(["a1"])

    assert run(go())["a1"].succeeded


@respx.mock
def test_activity_query_refused_falls_back_to_one_get_each_with_404_as_not_yet():
    token_route(respx.mock)
    respx.post(f"{API}/activities/query").mock(return_value=httpx.Response(400, json={"errors": [{"code": "X"}]}))
    respx.get(f"{API}/activities/a1").mock(side_effect=[
        httpx.Response(404), httpx.Response(200, json={"requestId": "a1", "status": "SUCCESS"})])

    async def go():
        async with R1Client(SETTINGS) as r1:
            return await r1.await_activities(["a1"])

    assert run(go())["a1"].succeeded


@respx.mock
def test_bulk_delete_sends_a_bare_array():
    token_route(respx.mock)
    route = respx.delete(f"{API}/dpskServices/p1/passphrases").mock(
        return_value=httpx.Response(202, json={"requestId": "a1"}))

    async def go():
        async with R1Client(SETTINGS) as r1:
            return await r1.delete_passphrases("p1", ["x1", "x2"])

    assert run(go()) == "a1"
    assert json.loads(route.calls[0].request.content) == ["x1", "x2"]


@respx.mock
def test_pool_list_sends_no_paging_and_pages_only_when_short():
    token_route(respx.mock)
    pools = [{"id": f"{i:032x}", "name": f"Unit{i}"} for i in range(150)]

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "page" not in body:
            return httpx.Response(200, json={"data": pools[:100], "totalCount": 150})
        start = (body["page"] - 1) * body["pageSize"]
        return httpx.Response(200, json={"data": pools[start:start + body["pageSize"]], "totalCount": 150})

    respx.post(f"{API}/dpskServices/query").mock(side_effect=answer)

    async def go():
        async with R1Client(SETTINGS) as r1:
            return await r1.fetch_pools()

    assert len(run(go())) == 150
    assert "page" not in json.loads(respx.calls[1].request.content)


def test_vlan_absent_empty_or_zero_means_none():
    for raw in ({}, {"vlanId": ""}, {"vlanId": 0}):
        assert passphrase_from_row("p", {"id": "x", "passphrase": "abcdefgh", **raw}).vlan_id is None
    assert passphrase_from_row("p", {"id": "x", "vlanId": "123"}).vlan_id == 123


def test_create_body_spells_fields_as_ruckusone_and_omits_unset_ones():
    body = create_body(PassphraseFields(passphrase="abcdefgh1", username="bob", vlan_id=12, number_of_devices=3))
    assert body == {"passphrase": "abcdefgh1", "username": "bob", "vlanId": 12, "numberOfDevices": 3,
                    "numberOfDevicesType": "LIMITED"}


def test_passphrase_is_never_in_a_record_repr():
    row = passphrase_from_row("p", {"id": "x", "passphrase": "secret-canary-99"})
    assert "secret-canary-99" not in repr(row)
    assert "secret-canary-99" not in repr(row.fields())
    assert "client-secret-canary" not in repr(SETTINGS)


def test_retry_rules_reads_yes_writes_only_when_never_sent():
    assert should_retry(httpx.ReadTimeout("x"), is_read=True)
    assert not should_retry(httpx.ReadTimeout("x"), is_read=False)
    assert should_retry(httpx.ConnectError("x"), is_read=False)


def test_retry_after_is_honoured_and_capped():
    assert parse_retry_after_s("2") == 2.0
    assert parse_retry_after_s("600") == 30.0
    assert parse_retry_after_s("soon") is None
    assert retry_wait_s(1, 4.0) == 4.0
    assert retry_wait_s(3, None, jitter=1.0) == 4.0
    assert retry_wait_s(10, None, jitter=1.0) == 8.0


def test_safe_message_drops_rejected_values_in_any_form():
    assert "hunter22" not in safe_message('{"subErrors":[{"field":"passphrase","rejectedValue":"hunter22"}]}')
    assert "hunter22" not in safe_message('rejectedValue=hunter22 is invalid')
