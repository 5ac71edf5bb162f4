"""An in-memory RuckusONE that behaves as ../shared/ruckusone/API.md says, faults included.

`Simulator.handle` takes one request and returns one `Reply`; `server.py` puts it on HTTP or on an
httpx transport. Writes answer 202 and take effect when their activity completes, `activity_delay_s`
later, whether or not anyone polls. All state sits behind one lock: the HTTP server is threaded.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from dpsk_orch.simulator.faults import ActivityFailRule, Faults, PageRule, Rule, StatusRule

PASSPHRASE_MIN_CHARS = 8
PASSPHRASE_MAX_CHARS = 63
DEFAULT_PAGE_SIZE = 20  # API.md §8.4: what an absent or unknown paging key gets
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
PASSPHRASE_FIELDS = ("passphrase", "username", "vlanId", "numberOfDevices", "expirationDate", "email",
                     "phoneNumber", "mac")


def hex_id() -> str:
    """DPSK pool and passphrase ids: 32 lower-case hex, no hyphens (API.md §1.3)."""
    return uuid.uuid4().hex


def uuid_id() -> str:
    return str(uuid.uuid4())


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering

    def content(self) -> bytes:
        return b"" if self.body is None else json.dumps(self.body).encode()


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    status: int
    tenant_header: str | None
    is_write: bool
    at: float


@dataclass
class Activity:
    request_id: str
    tenant_id: str
    use_case: str
    started: str
    due: float  # time.monotonic() at which it completes
    effect: Any  # callable returning None (SUCCESS) or (code, message) (FAIL)
    status: str = "INPROGRESS"
    ended: str | None = None
    errors: list[dict] = field(default_factory=list)
    polled: bool = False

    def row(self) -> dict:
        row = {"requestId": self.request_id, "tenantId": self.tenant_id, "status": self.status,
               "useCase": self.use_case, "startDatetime": self.started,
               "admin": {"name": "Application dpsk-orch"}}
        if self.ended:
            row["endDatetime"] = self.ended
        if self.errors:
            row["errors"] = self.errors
        return row


@dataclass
class Tenant:
    id: str
    client_id: str
    client_secret: str
    delegated: set[str] = field(default_factory=set)
    venues: dict[str, dict] = field(default_factory=dict)
    networks: dict[str, dict] = field(default_factory=dict)
    pools: dict[str, dict] = field(default_factory=dict)
    passphrases: dict[str, dict[str, dict]] = field(default_factory=dict)  # pool id -> id -> row
    identities: dict[str, dict[str, dict]] = field(default_factory=dict)  # group id -> id -> row
    activities: dict[str, Activity] = field(default_factory=dict)


class ApiFailure(Exception):
    """Raised inside a handler to answer with a RuckusONE error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.reply = Reply(status, {"timestamp": iso_now(), "status": status, "message": message,
                                    "errors": [{"code": code, "message": message}]})


class RateBucket:
    """RuckusONE's per-tenant token bucket (API.md §8.3)."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate_per_s = per_minute / 60.0
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> float | None:
        """Take one token; None when allowed, else the seconds until one is free."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate_per_s


ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in [
        ("POST", r"/dpskServices/query", "query_pools"),
        ("GET", r"/dpskServices/(?P<pool>[^/]+)", "get_pool"),
        ("POST", r"/dpskServices/(?P<pool>[^/]+)/passphrases/query", "query_passphrases"),
        ("GET", r"/dpskServices/(?P<pool>[^/]+)/passphrases/(?P<pp>[^/]+)", "get_passphrase"),
        ("POST", r"/dpskServices/(?P<pool>[^/]+)/passphrases", "create_passphrase"),
        ("PATCH", r"/dpskServices/(?P<pool>[^/]+)/passphrases/(?P<pp>[^/]+)", "patch_passphrase"),
        ("PATCH", r"/dpskServices/(?P<pool>[^/]+)/passphrases", "bulk_patch_passphrases"),
        ("DELETE", r"/dpskServices/(?P<pool>[^/]+)/passphrases", "bulk_delete_passphrases"),
        ("GET", r"/identityGroups/(?P<group>[^/]+)/identities", "list_identities"),
        ("PATCH", r"/identityGroups/(?P<group>[^/]+)/identities/(?P<identity>[^/]+)", "patch_identity"),
        ("DELETE", r"/identityGroups/(?P<group>[^/]+)/identities/(?P<identity>[^/]+)", "delete_identity"),
        ("POST", r"/venues/wifiNetworks/query", "query_venue_networks"),
        ("GET", r"/wifiNetworks/(?P<network>[^/]+)/dpskServices", "network_pools"),
        ("GET", r"/wifiNetworks/(?P<network>[^/]+)", "get_network"),
        ("GET", r"/activities/(?P<activity>[^/]+)", "get_activity"),
        ("POST", r"/activities/query", "query_activities"),
    ]
]
TOKEN_PATH = re.compile(r"^/oauth2/token/(?P<tenant>[^/]+)$")


class Simulator:
    """A RuckusONE for tests, the demo and `dpsk-orch simulator`. See API.md §10."""

    def __init__(self, latency_s: float = 0.0, rate_limit_per_minute: int | None = None,
                 rate_limit_burst: int = 100, max_page_size: int = 500, token_lifetime_s: int = 3600,
                 activity_delay_s: float = 0.05) -> None:
        self.latency_s = latency_s
        self.rate_limit_per_minute = rate_limit_per_minute
        self.rate_limit_burst = rate_limit_burst
        self.max_page_size = max_page_size
        self.token_lifetime_s = token_lifetime_s
        self.activity_delay_s = activity_delay_s
        self.requests: list[RequestRecord] = []
        self.faults = Faults()
        self._tenants: dict[str, Tenant] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (tenant id, expires at)
        self._buckets: dict[str, RateBucket] = {}
        self._lock = threading.RLock()

    # ---- set-up (what an admin does in the RuckusONE UI) ----------------------------------------

    def add_tenant(self, tenant_id: str, client_id: str, client_secret: str,
                   delegated_tenant_ids: list[str] | None = None) -> None:
        with self._lock:
            self._tenants[tenant_id] = Tenant(tenant_id, client_id, client_secret, set(delegated_tenant_ids or []))

    def add_venue(self, tenant_id: str, name: str) -> str:
        with self._lock:
            venue_id = hex_id()
            self._tenant(tenant_id).venues[venue_id] = {"id": venue_id, "name": name}
            return venue_id

    def add_pool(self, tenant_id: str, name: str, device_count_limit: int | None = None,
                 passphrase_length: int = 8) -> str:
        """A DPSK pool with its identity group; returns the pool id."""
        with self._lock:
            tenant = self._tenant(tenant_id)
            pool_id, group_id = hex_id(), uuid_id()
            pool = {"id": pool_id, "name": name, "passphraseFormat": "KEYBOARD_FRIENDLY",
                    "passphraseLength": passphrase_length, "identityGroupId": group_id,
                    "createdDate": iso_now(), "networkCount": 0, "isReferenced": True}
            if device_count_limit is not None:
                pool["deviceCountLimit"] = device_count_limit
            tenant.pools[pool_id] = pool
            tenant.passphrases[pool_id] = {}
            tenant.identities[group_id] = {}
            return pool_id

    def delete_pool(self, tenant_id: str, pool_id: str) -> None:
        with self._lock:
            tenant = self._tenant(tenant_id)
            pool = tenant.pools.pop(pool_id)
            tenant.passphrases.pop(pool_id, None)
            tenant.identities.pop(pool["identityGroupId"], None)
            for network in tenant.networks.values():
                network["pool_ids"] = [p for p in network["pool_ids"] if p != pool_id]

    def add_network(self, tenant_id: str, name: str, venue_ids: list[str], pool_ids: list[str] | None = None
                    ) -> str:
        """A Wi-Fi network active at `venue_ids`, serving `pool_ids` (DPSK) or none (a guest network)."""
        with self._lock:
            network_id = hex_id()
            self._tenant(tenant_id).networks[network_id] = {
                "id": network_id, "name": name, "venue_ids": list(venue_ids), "pool_ids": list(pool_ids or [])}
            return network_id

    def add_passphrase(self, tenant_id: str, pool_id: str, passphrase: str, username: str,
                       vlan_id: int | None = None, **fields: Any) -> str:
        """A passphrase as the UI makes it (with its identity), at once; `fields` use API names."""
        with self._lock:
            return self._insert_passphrase(self._tenant(tenant_id), pool_id,
                                           {"passphrase": passphrase, "username": username, "vlanId": vlan_id,
                                            **fields})

    def update_passphrase(self, tenant_id: str, pool_id: str, passphrase_id: str, **fields: Any) -> None:
        """Change fields (API names) at once; None removes a field."""
        with self._lock:
            apply_fields(self._tenant(tenant_id).passphrases[pool_id][passphrase_id], fields)

    def revoke_passphrase(self, tenant_id: str, pool_id: str, passphrase_id: str, reason: str = "moved out") -> None:
        with self._lock:
            set_revocation(self._tenant(tenant_id).passphrases[pool_id][passphrase_id], reason)

    def delete_passphrase(self, tenant_id: str, pool_id: str, passphrase_id: str) -> None:
        with self._lock:
            del self._tenant(tenant_id).passphrases[pool_id][passphrase_id]

    # ---- inspection (for tests and the demo) ----------------------------------------------------

    def passphrases(self, tenant_id: str, pool_id: str) -> list[dict]:
        """The pool's rows as the API spells them, oldest first, after every due activity completed."""
        with self._lock:
            self._complete_due_activities()
            return [dict(row) for row in self._tenant(tenant_id).passphrases[pool_id].values()]

    def identities(self, tenant_id: str, group_id: str) -> list[dict]:
        with self._lock:
            self._complete_due_activities()
            return [dict(row) for row in self._tenant(tenant_id).identities.get(group_id, {}).values()]

    def pool(self, tenant_id: str, pool_id: str) -> dict:
        with self._lock:
            return dict(self._tenant(tenant_id).pools[pool_id])

    def count(self, method: str | None = None, path_regex: str | None = None, writes_only: bool = False) -> int:
        """Requests received, by method, path and kind."""
        with self._lock:
            return sum(1 for r in self.requests
                       if (method is None or r.method == method)
                       and (path_regex is None or re.search(path_regex, r.path))
                       and (not writes_only or r.is_write))

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def settle(self) -> None:
        """Complete every activity now, as if `activity_delay_s` had passed (stuck ones included)."""
        with self._lock:
            for tenant in self._tenants.values():
                for activity in tenant.activities.values():
                    activity.due = min(activity.due, time.monotonic())
            self.faults.activities_stuck = False
            self._complete_due_activities()

    def seed_property(self, tenant_id: str, **options: Any) -> Any:
        """A property like a real one; see `seed.seed_property` for the options."""
        from dpsk_orch.simulator.seed import seed_property

        return seed_property(self, tenant_id, **options)

    # ---- faults ---------------------------------------------------------------------------------

    def fail_requests(self, method: str | None, path_regex: str, status: int = 500, times: int | None = 1) -> None:
        """Answer matching requests with `status` (before doing anything)."""
        with self._lock:
            self.faults.failing.append(StatusRule(times=times, method=method, path_regex=path_regex, status=status))

    def fail_page(self, pool_id: str, page: int, times: int | None = None) -> None:
        """Answer one page of a pool's passphrase query with 500."""
        with self._lock:
            self.faults.pages.append(PageRule(times=times, pool_id=pool_id, page=page, short=False))

    def short_page(self, pool_id: str, page: int, times: int | None = None) -> None:
        """Leave one row out of a page while totalCount stays true."""
        with self._lock:
            self.faults.pages.append(PageRule(times=times, pool_id=pool_id, page=page, short=True))

    def drop_connections(self, method: str | None = None, path_regex: str = ".*", times: int | None = 1) -> None:
        """Close the connection instead of answering, after the request took effect."""
        with self._lock:
            self.faults.dropping.append(Rule(times=times, method=method, path_regex=path_regex))

    def stuck_activities(self, stuck: bool = True) -> None:
        """While stuck, no activity completes."""
        with self._lock:
            self.faults.activities_stuck = stuck

    def fail_activities(self, path_regex: str, message: str = "simulated failure", times: int | None = None) -> None:
        """Writes to matching paths are accepted (202) and their activity ends FAIL with `message`."""
        with self._lock:
            self.faults.failing_activities.append(ActivityFailRule(times=times, path_regex=path_regex,
                                                                   message=message))

    def expire_tokens(self) -> None:
        """Every token issued so far is refused next time (401 RCG-10003)."""
        with self._lock:
            self._tokens = {token: (tenant, 0.0) for token, (tenant, _) in self._tokens.items()}

    def set_network_pools_endpoint(self, available: bool) -> None:
        """Whether GET /wifiNetworks/{id}/dpskServices exists (API.md §3.3 2a is [SPEC-CONS] only)."""
        with self._lock:
            self.faults.network_pools_endpoint = available

    def clear_faults(self) -> None:
        with self._lock:
            self.faults = Faults()

    # ---- the API --------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
               ) -> Reply:
        """Answer one request. `headers` keys are lower case."""
        with self._lock:
            self._complete_due_activities()
            tenant_header = headers.get("x-rks-tenantid")
            is_write = method in WRITE_METHODS and not path.endswith("/query") and not TOKEN_PATH.match(path)
            reply = self._answer(method, path, query, headers, body)
            if self.faults.drops(method, path):
                reply = Reply(reply.status, reply.body, reply.headers, drop=True)
            self.requests.append(RequestRecord(method, path, reply.status, tenant_header, is_write, time.time()))
            return reply

    def _answer(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
                ) -> Reply:
        try:
            token_match = TOKEN_PATH.match(path)
            if method == "POST" and token_match:
                return self._issue_token(token_match["tenant"], body)
            tenant = self._authorise(headers)
            wait_s = self._rate_limited(tenant.id)
            if wait_s is not None:
                return Reply(429, {"errors": [{"code": "RCG-10029", "message": "Too Many Requests"}]},
                             {"Retry-After": str(max(1, math.ceil(wait_s)))})
            status = self.faults.status_for(method, path)
            if status is not None:
                raise ApiFailure(status, "SIM-FAULT", "simulated server error")
            for route_method, pattern, handler in ROUTES:
                match = pattern.match(path)
                if match and route_method == method:
                    payload = json.loads(body) if body else None
                    return getattr(self, f"_{handler}")(tenant, method, path, query, payload, **match.groupdict())
            raise ApiFailure(404, "RCG-10016", "The requested endpoint was not found.")
        except ApiFailure as failure:
            return failure.reply
        except (ValueError, KeyError, TypeError, AttributeError):
            return ApiFailure(400, "GENERAL-003", "Malformed JSON request.").reply

    def _issue_token(self, tenant_id: str, body: bytes) -> Reply:
        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        tenant = self._tenants.get(tenant_id)
        if (tenant is None or form.get("grant_type") != "client_credentials"
                or form.get("client_id") != tenant.client_id or form.get("client_secret") != tenant.client_secret):
            return Reply(401, {"error": "invalid_client", "error_description": "Bad client credentials"})
        token = uuid.uuid4().hex + uuid.uuid4().hex
        self._tokens[token] = (tenant_id, time.monotonic() + self.token_lifetime_s)
        return Reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime_s})

    def _authorise(self, headers: dict[str, str]) -> Tenant:
        """The tenant the request acts on: the token's, or the delegated one named by x-rks-tenantid."""
        authorization = headers.get("authorization", "")
        token = authorization.removeprefix("Bearer ").strip()
        tenant_id, expires_at = self._tokens.get(token, ("", 0.0))
        if not tenant_id or time.monotonic() >= expires_at:
            raise ApiFailure(401, "RCG-10003", "Please re-login, the session has expired.")
        delegated = headers.get("x-rks-tenantid")
        if delegated and delegated != tenant_id:
            if delegated not in self._tenants[tenant_id].delegated or delegated not in self._tenants:
                raise ApiFailure(403, "RCG-10004", "Not authorised for this tenant.")
            return self._tenants[delegated]
        return self._tenants[tenant_id]

    def _rate_limited(self, tenant_id: str) -> float | None:
        if self.rate_limit_per_minute is None:
            return None
        bucket = self._buckets.setdefault(tenant_id, RateBucket(self.rate_limit_per_minute, self.rate_limit_burst))
        return bucket.take()

    # ---- pools ----------------------------------------------------------------------------------

    def _query_pools(self, tenant: Tenant, method: str, path: str, query: dict, payload: dict | None) -> Reply:
        payload = payload or {}
        rows = sorted(tenant.pools.values(), key=lambda pool: pool["name"].lower())
        search = (payload.get("searchString") or "").lower()
        if search:
            rows = [row for row in rows if search in row["name"].lower()]
        return self._query_page(rows, payload)

    def _get_pool(self, tenant: Tenant, method: str, path: str, query: dict, payload: Any, pool: str) -> Reply:
        return Reply(200, dict(self._pool(tenant, pool)))

    # ---- passphrases ----------------------------------------------------------------------------

    def _query_passphrases(self, tenant: Tenant, method: str, path: str, query: dict, payload: dict | None,
                           pool: str) -> Reply:
        self._pool(tenant, pool)
        payload = payload or {}
        if payload.get("page") is not None and int(payload["page"]) < 1:  # 1-based: page 0 (or less) is a 500
            raise ApiFailure(500, "GENERAL-500", "Internal Server Error")
        rows = [dict(row) for row in tenant.passphrases[pool].values()]
        statuses = (payload.get("filters") or {}).get("status")
        if statuses:
            rows = [row for row in rows if ("REVOKED" if row.get("revocationReason") else "ACTIVE") in statuses]
        if payload.get("sortField") in ("createdDate", "username"):
            rows.sort(key=lambda row: row.get(payload["sortField"]) or "",
                      reverse=payload.get("sortOrder") == "DESC")
        page = int(payload.get("page") or 1)
        fault = self.faults.page_fault(pool, page)
        if fault is not None and not fault.short:
            raise ApiFailure(500, "GENERAL-500", "Internal Server Error")
        reply = self._query_page(rows, payload)
        if fault is not None and reply.body["data"]:
            reply.body["data"] = reply.body["data"][:-1]
        return reply

    def _get_passphrase(self, tenant: Tenant, method: str, path: str, query: dict, payload: Any, pool: str,
                        pp: str) -> Reply:
        row = self._pool_rows(tenant, pool).get(pp)
        if row is None:
            raise ApiFailure(404, "DPSK-404", "Passphrase not found")
        return Reply(200, dict(row))

    def _create_passphrase(self, tenant: Tenant, method: str, path: str, query: dict, payload: dict,
                           pool: str) -> Reply:
        pool_row = self._pool(tenant, pool)
        if not isinstance(payload, dict):
            raise ApiFailure(400, "GENERAL-003", "Malformed JSON request.")
        check_length(payload.get("passphrase"), pool_row)
        fields = {key: payload[key] for key in PASSPHRASE_FIELDS if key in payload}

        def effect() -> tuple[str, str] | None:
            if pool not in tenant.pools:
                return "DPSK-404", "DPSK pool not found"
            problem = validate_passphrase(fields.get("passphrase"), tenant.passphrases[pool].values())
            if problem:
                return problem
            self._insert_passphrase(tenant, pool, fields)
            return None

        return self._accept(tenant, method, path, "BULK_CREATE_PERSONAS", effect)

    def _patch_passphrase(self, tenant: Tenant, method: str, path: str, query: dict, payload: dict, pool: str,
                          pp: str) -> Reply:
        pool_row = self._pool(tenant, pool)
        if not isinstance(payload, dict):
            raise ApiFailure(400, "GENERAL-003", "Malformed JSON request.")
        if "passphrase" in payload:
            check_length(payload["passphrase"], pool_row)
        changes = {key: payload[key] for key in (*PASSPHRASE_FIELDS, "revocationReason") if key in payload}

        def effect() -> tuple[str, str] | None:
            row = tenant.passphrases.get(pool, {}).get(pp)
            if row is None:
                return "DPSK-404", "Passphrase not found"
            others = [other for other in tenant.passphrases[pool].values() if other["id"] != pp]
            problem = validate_passphrase(changes.get("passphrase"), others) if "passphrase" in changes else None
            if problem:
                return problem
            apply_fields(row, changes)
            return None

        return self._accept(tenant, method, path, "UPDATE_DPSK_PASSPHRASE", effect)

    def _bulk_patch_passphrases(self, tenant: Tenant, method: str, path: str, query: dict, payload: dict,
                                pool: str) -> Reply:
        self._pool(tenant, pool)
        if not isinstance(payload, dict) or not payload.get("ids") or not isinstance(payload.get("changes"), dict):
            raise ApiFailure(400, "GENERAL-003", "Malformed JSON request.")
        ids, changes = list(payload["ids"]), dict(payload["changes"])

        def effect() -> tuple[str, str] | None:
            rows = tenant.passphrases.get(pool, {})
            missing = [i for i in ids if i not in rows]
            if missing:
                return "DPSK-404", f"{len(missing)} passphrase(s) not found"
            for passphrase_id in ids:
                apply_fields(rows[passphrase_id], changes)
            return None

        return self._accept(tenant, method, path, "UPDATE_DPSK_PASSPHRASES", effect)

    def _bulk_delete_passphrases(self, tenant: Tenant, method: str, path: str, query: dict, payload: Any,
                                 pool: str) -> Reply:
        self._pool(tenant, pool)
        if not isinstance(payload, list) or not all(isinstance(i, str) for i in payload):
            raise ApiFailure(400, "GENERAL-003", "Malformed JSON request.")

        def effect() -> tuple[str, str] | None:
            rows = tenant.passphrases.get(pool, {})
            for passphrase_id in payload:
                rows.pop(passphrase_id, None)
            return None

        return self._accept(tenant, method, path, "DELETE_DPSK_PASSPHRASES", effect)

    # ---- identities -----------------------------------------------------------------------------

    def _list_identities(self, tenant: Tenant, method: str, path: str, query: dict, payload: Any,
                         group: str) -> Reply:
        if group not in tenant.identities:
            raise ApiFailure(404, "IDM-404", "Identity group not found")
        rows = sorted(tenant.identities[group].values(), key=lambda row: row["createdAt"])
        page = int(query.get("page", 0))
        size = min(int(query.get("size", DEFAULT_PAGE_SIZE)), self.max_page_size)
        content = rows[page * size:(page + 1) * size]
        return Reply(200, {"content": [dict(row) for row in content], "totalElements": len(rows),
                           "totalPages": math.ceil(len(rows) / size), "size": size, "number": page,
                           "numberOfElements": len(content), "first": page == 0,
                           "last": (page + 1) * size >= len(rows), "empty": not content})

    def _patch_identity(self, tenant: Tenant, method: str, path: str, query: dict, payload: dict, group: str,
                        identity: str) -> Reply:
        row = tenant.identities.get(group, {}).get(identity)
        if row is None:
            raise ApiFailure(404, "IDM-404", "Identity not found")
        for key in ("name", "displayName", "description", "email", "phoneNumber"):
            if key in payload:
                row[key] = payload[key]
        row["updatedAt"] = iso_now()
        return Reply(200, dict(row))

    def _delete_identity(self, tenant: Tenant, method: str, path: str, query: dict, payload: Any, group: str,
                         identity: str) -> Reply:
        if identity not in tenant.identities.get(group, {}):
            raise ApiFailure(404, "IDM-404", "Identity not found")

        def effect() -> tuple[str, str] | None:
            row = tenant.identities.get(group, {}).pop(identity, None)
            if row and row.get("dpskGuid"):
                for rows in tenant.passphrases.values():
                    rows.pop(row["dpskGuid"], None)
            return None

        return self._accept(tenant, method, path, "DELETE_PERSONA", effect)

    # ---- venues and networks --------------------------------------------------------------------

    def _query_venue_networks(self, tenant: Tenant, method: str, path: str, query: dict, payload: dict) -> Reply:
        venue_ids = (payload or {}).get("venueIds") or []
        data = [{"venueId": venue_id,
                 "networks": [{"networkId": n["id"], "isAllApGroups": True,
                               "allApGroupsRadioTypes": ["2.4-GHz", "5-GHz"]}
                              for n in tenant.networks.values() if venue_id in n["venue_ids"]]}
                for venue_id in venue_ids if venue_id in tenant.venues]
        return Reply(200, {"data": data, "totalCount": len(data)})

    def _network_pools(self, tenant: Tenant, method: str, path: str, query: dict, payload: Any,
                       network: str) -> Reply:
        if not self.faults.network_pools_endpoint:
            raise ApiFailure(404, "RCG-10016", "The requested endpoint was not found.")
        rows = [dict(tenant.pools[p]) for p in self._network(tenant, network)["pool_ids"] if p in tenant.pools]
        return Reply(200, {"data": rows, "totalCount": len(rows), "totalPages": 1, "page": 1})

    def _get_network(self, tenant: Tenant, method: str, path: str, query: dict, payload: Any, network: str) -> Reply:
        row = self._network(tenant, network)
        body = {"id": row["id"], "name": row["name"], "type": "dpsk" if row["pool_ids"] else "psk"}
        if row["pool_ids"]:
            body["dpskServiceProfileId"] = row["pool_ids"][0]
        return Reply(200, body)

    # ---- activities -----------------------------------------------------------------------------

    def _get_activity(self, tenant: Tenant, method: str, path: str, query: dict, payload: Any,
                      activity: str) -> Reply:
        found = tenant.activities.get(activity)
        if found is None or not found.polled:
            if found is not None:
                found.polled = True  # API.md §6.3: the first poll(s) may not find it yet
            raise ApiFailure(404, "ACT-404", "Activity not found")
        return Reply(200, found.row())

    def _query_activities(self, tenant: Tenant, method: str, path: str, query: dict, payload: dict) -> Reply:
        payload = payload or {}
        if (int(payload.get("page") or 0) < 1 or not payload.get("pageSize")
                or payload.get("sortField") != "startDatetime" or payload.get("sortOrder") not in ("ASC", "DESC")):
            raise ApiFailure(500, "GENERAL-500", "Internal Server Error")
        filters = payload.get("filters") or {}
        ids = filters.get("id")
        if isinstance(ids, dict):  # {"in": [...]} (API.md §6.3)
            raise ApiFailure(500, "GENERAL-500", "bad SQL grammar")
        rows = list(tenant.activities.values())
        if ids is not None:
            wanted = set(ids)
            rows = [a for a in rows if a.request_id in wanted]
        if filters.get("fromTime"):
            since = parse_time(filters["fromTime"])
            rows = [a for a in rows if parse_time(a.started) >= since]
        visible = [a for a in rows if a.polled]
        for activity in rows:
            activity.polled = True
        visible.sort(key=lambda a: a.started, reverse=payload["sortOrder"] == "DESC")
        return self._query_page([a.row() for a in visible], payload)

    def _accept(self, tenant: Tenant, method: str, path: str, use_case: str, effect: Any) -> Reply:
        """Answer 202 with a requestId; the effect runs when the activity completes."""
        failure = self.faults.activity_failure(method, path)
        if failure is not None:
            def effect() -> tuple[str, str]:
                return "SIM-FAULT", failure
        request_id = uuid_id()
        tenant.activities[request_id] = Activity(request_id, tenant.id, use_case, iso_now(),
                                                 time.monotonic() + self.activity_delay_s, effect)
        return Reply(202, {"requestId": request_id})

    def _complete_due_activities(self) -> None:
        if self.faults.activities_stuck:
            return
        now = time.monotonic()
        for tenant in self._tenants.values():
            for activity in tenant.activities.values():
                if activity.status == "INPROGRESS" and activity.due <= now:
                    problem = activity.effect()
                    activity.status = "FAIL" if problem else "SUCCESS"
                    activity.ended = iso_now()
                    if problem:
                        activity.errors = [{"code": problem[0], "message": problem[1]}]

    # ---- helpers --------------------------------------------------------------------------------

    def _tenant(self, tenant_id: str) -> Tenant:
        return self._tenants[tenant_id]

    def _pool(self, tenant: Tenant, pool_id: str) -> dict:
        if pool_id not in tenant.pools:
            raise ApiFailure(404, "DPSK-404", "DPSK pool not found")
        return tenant.pools[pool_id]

    def _pool_rows(self, tenant: Tenant, pool_id: str) -> dict[str, dict]:
        self._pool(tenant, pool_id)
        return tenant.passphrases[pool_id]

    def _network(self, tenant: Tenant, network_id: str) -> dict:
        if network_id not in tenant.networks:
            raise ApiFailure(404, "WIFI-404", "Network not found")
        return tenant.networks[network_id]

    def _query_page(self, rows: list[dict], payload: dict) -> Reply:
        """Convention A: 1-based page, pageSize clamped to the server's maximum, data/totalCount."""
        page = int(payload.get("page") or 1)
        size = min(int(payload.get("pageSize") or DEFAULT_PAGE_SIZE), self.max_page_size)
        data = rows[(page - 1) * size:page * size]
        return Reply(200, {"data": [dict(row) for row in data], "totalCount": len(rows),
                           "totalPages": math.ceil(len(rows) / size) if rows else 0, "page": page})

    def _insert_passphrase(self, tenant: Tenant, pool_id: str, fields: dict) -> str:
        """Store a new row and the identity RuckusONE creates with it (API.md §5.3)."""
        pool = tenant.pools[pool_id]
        passphrase_id, identity_id, now = hex_id(), uuid_id(), iso_now()
        row = {"id": passphrase_id, "createdDate": now, "lastModifiedDate": now,
               "identityId": identity_id, "identityGroupId": pool["identityGroupId"], "devices": [],
               "isReferenced": False}
        apply_fields(row, {key: value for key, value in fields.items() if key != "revocationReason"})
        if fields.get("revocationReason"):
            set_revocation(row, fields["revocationReason"])
        tenant.passphrases[pool_id][passphrase_id] = row
        identity = {"id": identity_id, "groupId": pool["identityGroupId"], "name": row.get("username") or identity_id,
                    "dpskGuid": passphrase_id, "dpskPassphrase": row.get("passphrase", ""), "revoked": False,
                    "createdAt": now, "updatedAt": now, "devices": [], "deviceCount": 0, "primary": True}
        if row.get("vlanId"):
            identity["vlan"] = row["vlanId"]
        tenant.identities.setdefault(pool["identityGroupId"], {})[identity_id] = identity
        return passphrase_id


def check_length(passphrase: Any, pool: dict) -> None:
    """A passphrase shorter than 8 (or the pool's length) is refused at once: 400 DPSK-032."""
    if passphrase is None:
        return
    if not isinstance(passphrase, str) or len(passphrase) < max(PASSPHRASE_MIN_CHARS, pool["passphraseLength"]):
        raise ApiFailure(400, "DPSK-032", "Passphrase is too short")


def validate_passphrase(passphrase: str | None, existing: Any) -> tuple[str, str] | None:
    """What the activity says about a passphrase: too long (with the value echoed) or already in the pool."""
    if passphrase is None:
        return None
    if len(passphrase) > PASSPHRASE_MAX_CHARS:
        detail = {"message": "Validation Error", "subErrors": [
            {"field": "passphrase", "rejectedValue": passphrase, "message": "Size must be between 8 and 63"}]}
        return "DPSK-10032", json.dumps(detail)
    if any(row.get("passphrase") == passphrase for row in existing):
        return "DPSK-10011", "The passphrase already exists in this DPSK pool"
    return None


def apply_fields(row: dict, changes: dict) -> None:
    """Set fields; None or "" removes one, as RuckusONE leaves unset fields out (API.md §1.6)."""
    for key, value in changes.items():
        if key == "revocationReason":
            set_revocation(row, value)
        elif value in (None, ""):
            row.pop(key, None)
        else:
            row[key] = int(value) if key in ("vlanId", "numberOfDevices") else value
    row["lastModifiedDate"] = iso_now()


def set_revocation(row: dict, reason: str | None) -> None:
    if reason:
        row["revocationReason"] = reason
        row["revocationDate"] = iso_now()
    else:
        row.pop("revocationReason", None)
        row.pop("revocationDate", None)
