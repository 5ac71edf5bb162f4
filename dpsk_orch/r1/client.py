"""The RuckusONE client: URLs, field spellings, paging, retries, rate limit, 202 + activities.

Everything outside `dpsk_orch.r1` sees only the records of `records.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from dpsk_orch import __version__
from dpsk_orch.constants import (
    ACTIVITY_DEADLINE_S,
    ACTIVITY_FIRST_POLL_S,
    ACTIVITY_POLL_CAP_S,
    ACTIVITY_QUERY_BATCH,
    CONNECT_TIMEOUT_S,
    IDENTITY_PAGE_SIZE,
    MAX_READ_ATTEMPTS,
    MAX_WRITE_ATTEMPTS_ON_429,
    PASSPHRASE_PAGE_SIZE,
    POOL_PAGE_SIZE,
    RATE_LIMIT_BURST,
    READ_TIMEOUT_S,
    USER_AGENT,
)
from dpsk_orch.r1.auth import TokenSource
from dpsk_orch.r1.errors import (
    AuthError,
    IncompleteReadError,
    R1Error,
    R1Unreachable,
)
from dpsk_orch.r1.ratelimit import TokenBucket
from dpsk_orch.r1.records import ActivityResult, Identity, Network, Passphrase, PassphraseFields, Pool
from dpsk_orch.r1.retry import (
    RetryableStatus,
    is_retryable_status,
    parse_retry_after_s,
    retry_wait_s,
    should_retry,
)

PENDING_STATUSES = frozenset({"PENDING", "INPROGRESS"})  # an activity in these is not done yet
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientSettings:
    """Where and as whom to talk to RuckusONE."""

    api_url: str
    tenant_id: str
    client_id: str
    client_secret: str
    delegated_tenant_id: str | None = None
    max_requests_per_minute: int = 1800
    concurrency: int = 8

    def __repr__(self) -> str:
        return f"ClientSettings(api_url={self.api_url!r}, tenant_id={self.tenant_id!r})"


@dataclass
class RequestStats:
    """What a run cost: requests sent, 429s met, retries made."""

    requests: int = 0
    writes: int = 0
    throttled: int = 0
    retries: int = 0


class R1Client:
    """One client per controller and tenant for a run. Use as `async with R1Client(...) as r1:`."""

    def __init__(self, settings: ClientSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.stats = RequestStats()
        self._http = httpx.AsyncClient(
            base_url=settings.api_url.rstrip("/"),
            transport=transport,
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            limits=httpx.Limits(max_connections=settings.concurrency),
            headers={"User-Agent": USER_AGENT.format(version=__version__), "Accept": "application/json"},
        )
        self._bucket = TokenBucket(settings.max_requests_per_minute / 60.0, RATE_LIMIT_BURST)
        self._in_flight = asyncio.Semaphore(settings.concurrency)
        self._tokens = TokenSource(self._fetch_token)

    async def __aenter__(self) -> R1Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    # ---- pools -------------------------------------------------------------------------------

    async def fetch_pools(self) -> list[Pool]:
        """Every DPSK pool of the tenant. Sends no paging first (API.md §3.2), pages 1-based if short."""
        action = "list DPSK pools"
        body = await self._read_json("POST", "/dpskServices/query", action, json_body={})
        rows = body.get("data") or []
        if int(body.get("totalCount") or 0) > len(rows):
            rows = await self._query_all("/dpskServices/query", {}, POOL_PAGE_SIZE, action)
        return [pool_from_row(row) for row in rows]

    async def fetch_pool(self, pool_id: str) -> Pool:
        return pool_from_row(await self._read_json("GET", f"/dpskServices/{pool_id}", f"read pool {pool_id}"))

    # ---- passphrases -------------------------------------------------------------------------

    async def fetch_passphrases(self, pool_id: str, pool_name: str = "") -> list[Passphrase]:
        """Every passphrase of a pool, or IncompleteReadError: never a partial list."""
        rows = await self._query_all(
            f"/dpskServices/{pool_id}/passphrases/query",
            {"sortField": "createdDate", "sortOrder": "ASC"},
            PASSPHRASE_PAGE_SIZE,
            f"read passphrases of pool {pool_name or pool_id}",
        )
        return [passphrase_from_row(pool_id, row) for row in rows]

    async def create_passphrase(self, pool_id: str, fields: PassphraseFields) -> str:
        """Send one create; return the activity id. RuckusONE returns no passphrase id (API.md §4.4)."""
        return await self._write("POST", f"/dpskServices/{pool_id}/passphrases", create_body(fields),
                                 f"create passphrase for {fields.username!r}")

    async def update_passphrase(self, pool_id: str, passphrase_id: str, changes: dict[str, Any]) -> str:
        """Patch some fields (record names, see `UPDATE_FIELD_NAMES`) of one passphrase."""
        body = {UPDATE_FIELD_NAMES[name]: value for name, value in changes.items()}
        if "number_of_devices" in changes:
            body["numberOfDevicesType"] = "UNLIMITED" if changes["number_of_devices"] is None else "LIMITED"
        return await self._write("PATCH", f"/dpskServices/{pool_id}/passphrases/{passphrase_id}", body,
                                 f"update passphrase {passphrase_id}")

    async def set_revoked(self, pool_id: str, passphrase_ids: list[str], reason: str | None) -> str:
        """Revoke (reason given) or unrevoke (None) many passphrases in one bulk PATCH."""
        body = {"ids": passphrase_ids, "changes": {"revocationReason": reason}}
        verb = "revoke" if reason is not None else "unrevoke"
        return await self._write("PATCH", f"/dpskServices/{pool_id}/passphrases", body,
                                 f"{verb} {len(passphrase_ids)} passphrase(s)")

    async def delete_passphrases(self, pool_id: str, passphrase_ids: list[str]) -> str:
        """Bulk delete; the body is a bare JSON array (an object gets 400 GENERAL-003)."""
        return await self._write("DELETE", f"/dpskServices/{pool_id}/passphrases", list(passphrase_ids),
                                 f"delete {len(passphrase_ids)} passphrase(s)")

    # ---- identities --------------------------------------------------------------------------

    async def fetch_identities(self, group_id: str) -> list[Identity]:
        rows = await self._spring_all(f"/identityGroups/{group_id}/identities", IDENTITY_PAGE_SIZE,
                                      f"read identities of group {group_id}")
        return [identity_from_row(row) for row in rows]

    async def update_identity(self, group_id: str, identity_id: str, name: str, display_name: str,
                              description: str) -> str | None:
        """Rename an identity; returns an activity id when RuckusONE answers 202, None when done."""
        body = {"name": name, "displayName": display_name, "description": description}
        return await self._write("PATCH", f"/identityGroups/{group_id}/identities/{identity_id}", body,
                                 f"update identity {identity_id}", allow_sync=True)

    async def delete_identity(self, group_id: str, identity_id: str) -> str | None:
        return await self._write("DELETE", f"/identityGroups/{group_id}/identities/{identity_id}", None,
                                 f"delete identity {identity_id}", allow_sync=True)

    # ---- venues and networks -----------------------------------------------------------------

    async def fetch_venue_network_ids(self, venue_id: str) -> list[str]:
        """The Wi-Fi networks active at a venue (API.md §3.3 step 1)."""
        body = await self._read_json("POST", "/venues/wifiNetworks/query", f"list networks of venue {venue_id}",
                                     json_body={"venueIds": [venue_id]})
        ids: list[str] = []
        for venue in body.get("data") or []:
            if venue.get("venueId") in (None, venue_id):
                ids.extend(n["networkId"] for n in venue.get("networks") or [] if n.get("networkId"))
        return list(dict.fromkeys(ids))

    async def fetch_network(self, network_id: str) -> Network:
        """The DPSK pools a network serves: /wifiNetworks/{id}/dpskServices, else the network's own
        `dpskServiceProfileId` when that path is not available (API.md §3.3 step 2)."""
        action = f"list pools of network {network_id}"
        try:
            body = await self._read_json("GET", f"/wifiNetworks/{network_id}/dpskServices", action)
            return Network(network_id, tuple(row["id"] for row in body.get("data") or []))
        except R1Error as error:
            if error.status not in (404, 405):
                raise
        body = await self._read_json("GET", f"/wifiNetworks/{network_id}", action)
        pool_id = body.get("dpskServiceProfileId")
        return Network(network_id, (pool_id,) if pool_id else ())

    # ---- activities --------------------------------------------------------------------------

    async def await_activities(self, request_ids: Iterable[str],
                               deadline_s: float = ACTIVITY_DEADLINE_S) -> dict[str, ActivityResult]:
        """Wait for many activities at once; every id gets a result (a timeout counts as not succeeded).

        Polls `POST /activities/query` filtered by id in batches; falls back to one
        `GET /activities/{id}` each if the query is refused. A missing activity is not created yet.
        """
        pending = list(dict.fromkeys(request_ids))
        results: dict[str, ActivityResult] = {}
        give_up_at = time.monotonic() + deadline_s
        delay = ACTIVITY_FIRST_POLL_S
        use_query = True
        while pending:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, ACTIVITY_POLL_CAP_S)
            if use_query:
                try:
                    found = await self._query_activities(pending)
                except R1Error as error:
                    if error.status is None or error.status < 400 or error.status == 401:
                        raise
                    use_query = False
                    continue
            else:
                found = await self._get_activities(pending)
            results.update(found)
            pending = [request_id for request_id in pending if request_id not in results]
            if pending and time.monotonic() >= give_up_at:
                for request_id in pending:
                    results[request_id] = ActivityResult(
                        request_id, False, f"no result after {deadline_s:.0f}s; the next run checks again")
                break
        return results

    async def _query_activities(self, request_ids: list[str]) -> dict[str, ActivityResult]:
        found: dict[str, ActivityResult] = {}
        batches = [request_ids[i:i + ACTIVITY_QUERY_BATCH] for i in range(0, len(request_ids), ACTIVITY_QUERY_BATCH)]
        for batch in await asyncio.gather(*(self._query_activity_batch(b) for b in batches)):
            found.update(batch)
        return found

    async def _query_activity_batch(self, request_ids: list[str]) -> dict[str, ActivityResult]:
        body = {"page": 1, "pageSize": len(request_ids), "sortField": "startDatetime", "sortOrder": "DESC",
                "filters": {"id": request_ids}}
        answer = await self._read_json("POST", "/activities/query", "poll activities", json_body=body)
        wanted = set(request_ids)
        found: dict[str, ActivityResult] = {}
        for row in answer.get("data") or []:
            request_id = row.get("requestId") or row.get("id")
            if request_id in wanted and row.get("status") not in PENDING_STATUSES:
                found[request_id] = activity_result(request_id, row)
        return found

    async def _get_activities(self, request_ids: list[str]) -> dict[str, ActivityResult]:
        async def one(request_id: str) -> ActivityResult | None:
            try:
                row = await self._read_json("GET", f"/activities/{request_id}", "poll activity")
            except R1Error as error:
                if error.status == 404:
                    return None  # not created yet (API.md §6.3)
                raise
            return None if row.get("status") in PENDING_STATUSES else activity_result(request_id, row)

        answers = await asyncio.gather(*(one(request_id) for request_id in request_ids))
        return {result.request_id: result for result in answers if result is not None}

    async def count_open_activities(self, since_iso: str) -> int:
        """How many activities started since `since_iso` are still PENDING or INPROGRESS."""
        body = {"page": 1, "pageSize": 500, "sortField": "startDatetime", "sortOrder": "DESC",
                "filters": {"fromTime": since_iso}}
        answer = await self._read_json("POST", "/activities/query", "list recent activities", json_body=body)
        return sum(1 for row in answer.get("data") or [] if row.get("status") in PENDING_STATUSES)

    # ---- paging ------------------------------------------------------------------------------

    async def _query_all(self, path: str, base: dict[str, Any], page_size: int, action: str) -> list[dict]:
        """Convention A: 1-based `page`/`pageSize` in the body, `data`/`totalCount` back."""
        first = await self._read_json("POST", path, action, json_body={**base, "page": 1, "pageSize": page_size})
        rows = list(first.get("data") or [])
        total = int(first.get("totalCount") or 0)
        if len(rows) < total:
            size = len(rows) if 0 < len(rows) < page_size else page_size  # the server's own cap
            if not rows:
                raise IncompleteReadError(action, 0, total)
            pages = range(2, math.ceil(total / size) + 1)
            answers = await asyncio.gather(*(
                self._read_json("POST", path, action, json_body={**base, "page": page, "pageSize": size})
                for page in pages))
            for answer in answers:
                rows.extend(answer.get("data") or [])
        return unique_complete(rows, total, action)

    async def _spring_all(self, path: str, size: int, action: str) -> list[dict]:
        """Convention C: 0-based `page`/`size` in the query string, `content`/`totalElements` back."""
        first = await self._read_json("GET", path, action, params={"page": 0, "size": size})
        rows = list(first.get("content") or [])
        total = int(first.get("totalElements") or 0)
        if len(rows) < total:
            size = len(rows) if 0 < len(rows) < size else size
            if not rows:
                raise IncompleteReadError(action, 0, total)
            answers = await asyncio.gather(*(
                self._read_json("GET", path, action, params={"page": page, "size": size})
                for page in range(1, math.ceil(total / size))))
            for answer in answers:
                rows.extend(answer.get("content") or [])
        return unique_complete(rows, total, action)

    # ---- requests ----------------------------------------------------------------------------

    async def _read_json(self, method: str, path: str, action: str, *, json_body: Any = None,
                         params: dict[str, Any] | None = None) -> dict:
        response = await self._request(method, path, action, json_body=json_body, params=params, is_read=True)
        return response.json()

    async def _write(self, method: str, path: str, json_body: Any, action: str,
                     allow_sync: bool = False) -> str | None:
        """Send a write once (re-sent only on 429 or when it surely never left); return its activity id."""
        response = await self._request(method, path, action, json_body=json_body, is_read=False)
        self.stats.writes += 1
        if response.status_code == 202:
            request_id = (response.json() or {}).get("requestId") if response.content else None
            if not request_id:
                raise R1Error(action, 202, "NO-REQUEST-ID", "RuckusONE accepted the call but gave no requestId")
            return request_id
        if allow_sync:
            return None
        raise R1Error(action, response.status_code, "UNEXPECTED", "expected 202 Accepted")

    async def _request(self, method: str, path: str, action: str, *, json_body: Any, is_read: bool,
                       params: dict[str, Any] | None = None) -> httpx.Response:
        attempts = MAX_READ_ATTEMPTS if is_read else MAX_WRITE_ATTEMPTS_ON_429
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=lambda state: retry_wait_s(state.attempt_number, getattr(
                state.outcome.exception(), "retry_after_s", None)),
            retry=retry_if_exception(lambda error: should_retry(error, is_read)),
            before_sleep=lambda state: self._note_retry(action, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send_authorised(method, path, action, json_body, params, is_read)
        except httpx.TransportError as error:
            raise self._unreachable(action, error) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, action: str, error: httpx.TransportError) -> R1Unreachable:
        """What went wrong on the wire (httpx's text holds no request content) and where."""
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        return R1Unreachable(action, None, "TRANSPORT", f"{detail}, talking to {self.settings.api_url}")

    def _note_retry(self, action: str, state: RetryCallState) -> None:
        self.stats.retries += 1
        error = state.outcome.exception() if state.outcome else None
        wait_s = state.next_action.sleep if state.next_action else 0.0
        reason = str(error) if isinstance(error, R1Error) else type(error).__name__
        logger.info("%s: trying again in %.1fs (attempt %d failed: %s)", action, wait_s, state.attempt_number,
                    reason)

    async def _send_authorised(self, method: str, path: str, action: str, json_body: Any,
                               params: dict[str, Any] | None, is_read: bool) -> httpx.Response:
        """One call with a bearer token; on a 401, one fresh token and one more try."""
        for attempt in (1, 2):
            token = await self._tokens.get()
            response = await self._send(method, path, json_body, params, token)
            if response.status_code != 401 or attempt == 2:
                break
            self._tokens.invalidate(token)
        return self._check(response, action, is_read)

    async def _send(self, method: str, path: str, json_body: Any, params: dict[str, Any] | None,
                    token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if self.settings.delegated_tenant_id:
            headers["x-rks-tenantid"] = self.settings.delegated_tenant_id
        content = None if json_body is None else json.dumps(json_body).encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        await self._bucket.acquire()
        async with self._in_flight:
            self.stats.requests += 1
            started = time.monotonic()
            response = await self._http.request(method, path, content=content, params=params, headers=headers)
        logger.debug("%s %s%s -> %d (%.0f ms)", method, path, f" {params}" if params else "", response.status_code,
                     (time.monotonic() - started) * 1000)
        return response

    def _check(self, response: httpx.Response, action: str, is_read: bool) -> httpx.Response:
        status = response.status_code
        if status < 400:
            return response
        code, message = error_code_and_message(response)
        if status == 429:
            self.stats.throttled += 1
            retry_after = parse_retry_after_s(response.headers.get("Retry-After"))
            self._bucket.pause(retry_after if retry_after is not None else 1.0)
            raise RetryableStatus(action, status, code, message, retry_after)
        if is_retryable_status(status, is_read):
            raise RetryableStatus(action, status, code, message, None)
        raise R1Error(action, status, code, message)

    async def _fetch_token(self) -> tuple[str, float | None]:
        """POST {api_url}/oauth2/token/{tenant_id} with the client credentials (never logged)."""
        settings = self.settings
        form = {"grant_type": "client_credentials", "client_id": settings.client_id,
                "client_secret": settings.client_secret}
        action = "get an access token"
        await self._bucket.acquire()
        self.stats.requests += 1
        try:
            response = await self._http.post(f"/oauth2/token/{settings.tenant_id}", data=form)
        except httpx.TransportError as error:
            raise self._unreachable(action, error) from None
        if response.status_code != 200:
            code, message = error_code_and_message(response)
            error_type = AuthError if response.status_code in (400, 401, 403) else R1Error
            hint = "check client_id, the client secret and tenant_id" if error_type is AuthError else ""
            raise error_type(action, response.status_code, code, "; ".join(p for p in (message, hint) if p))
        body = response.json()
        expires_in = body.get("expires_in")
        logger.info("got an access token for tenant %s (expires in %ss)", settings.tenant_id, expires_in or "?")
        return body["access_token"], float(expires_in) if expires_in else None


# ---- field spellings (API.md §4) ------------------------------------------------------------

UPDATE_FIELD_NAMES = {
    "passphrase": "passphrase",
    "username": "username",
    "vlan_id": "vlanId",
    "number_of_devices": "numberOfDevices",
    "expiration_date": "expirationDate",
    "email": "email",
    "phone_number": "phoneNumber",
}


def create_body(fields: PassphraseFields) -> dict[str, Any]:
    """A DpskPassphraseCreateDto: one object, unset fields absent, device type matching the count."""
    body: dict[str, Any] = {"passphrase": fields.passphrase, "username": fields.username}
    optional = {"vlanId": fields.vlan_id, "expirationDate": fields.expiration_date, "email": fields.email,
                "phoneNumber": fields.phone_number, "mac": fields.mac, "numberOfDevices": fields.number_of_devices}
    body.update({key: value for key, value in optional.items() if value not in (None, "")})
    body["numberOfDevicesType"] = "LIMITED" if fields.number_of_devices else "UNLIMITED"
    return body


def optional_int(value: Any) -> int | None:
    """RuckusONE's "no value": absent, "", 0 (API.md §4.1); the UI sometimes sends ints as strings."""
    if value in (None, "", 0, "0"):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def optional_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def pool_from_row(row: dict) -> Pool:
    return Pool(id=row["id"], name=row.get("name") or "", identity_group_id=row.get("identityGroupId"),
                device_count_limit=optional_int(row.get("deviceCountLimit")))


def passphrase_from_row(pool_id: str, row: dict) -> Passphrase:
    return Passphrase(
        id=row["id"],
        pool_id=pool_id,
        passphrase=row.get("passphrase") or "",
        username=row.get("username") or "",
        vlan_id=optional_int(row.get("vlanId")),
        number_of_devices=optional_int(row.get("numberOfDevices")),
        expiration_date=optional_str(row.get("expirationDate")),
        email=optional_str(row.get("email")),
        phone_number=optional_str(row.get("phoneNumber")),
        mac=optional_str(row.get("mac")),
        is_revoked=bool(row.get("revocationReason") or row.get("revocationDate")),
        identity_id=row.get("identityId"),
        identity_group_id=row.get("identityGroupId"),
    )


def identity_from_row(row: dict) -> Identity:
    return Identity(id=row["id"], group_id=row.get("groupId") or "", name=row.get("name") or "",
                    display_name=row.get("displayName"), description=row.get("description"),
                    passphrase_id=row.get("dpskGuid"))


def unique_complete(rows: list[dict], total: int, action: str) -> list[dict]:
    """The rows with duplicates dropped, or IncompleteReadError unless unique ids equal the total."""
    by_id = {row["id"]: row for row in rows if row.get("id")}
    if len(by_id) != total:
        raise IncompleteReadError(action, len(by_id), total)
    return list(by_id.values())


def error_code_and_message(response: httpx.Response) -> tuple[str, str]:
    """RuckusONE's error code and message from any of its error body shapes (API.md §8.1)."""
    try:
        body = response.json()
    except ValueError:
        return "", response.reason_phrase
    if not isinstance(body, dict):
        return "", response.reason_phrase
    errors = body.get("errors") or body.get("subErrors") or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    code = str(first.get("code") or body.get("code") or "")
    message = str(first.get("message") or body.get("message") or body.get("error") or "")
    return code, safe_message(message)


def activity_result(request_id: str, row: dict) -> ActivityResult:
    if row.get("status") == "SUCCESS":
        return ActivityResult(request_id, True)
    errors = row.get("errors") or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    code = str(first.get("code") or "")
    message = safe_message(str(first.get("message") or row.get("error") or row.get("status") or "failed"))
    return ActivityResult(request_id, False, f"{code} {message}".strip())


def safe_message(message: str) -> str:
    """RuckusONE's message without any echoed value: validation errors arrive as a JSON string whose
    `rejectedValue` can be the submitted passphrase (API.md §4.5), so only field and reason are kept."""
    try:
        document = json.loads(message)
    except ValueError:
        return message if "rejectedValue" not in message else "validation failed (details withheld)"
    if not isinstance(document, dict):
        return "validation failed (details withheld)"
    parts = [str(document.get("message") or "")]
    for sub in document.get("subErrors") or []:
        if isinstance(sub, dict):
            parts.append(f"{sub.get('field', '?')}: {sub.get('message', '')}")
    return "; ".join(part for part in parts if part)

