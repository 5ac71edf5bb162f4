"""The state file: mappings, flags, pools and run history in SQLite. Never a plaintext passphrase.

One `StateStore` per process. Every logical change is one transaction (`with store.db.atomic():`
inside each `save_*`). Files are created mode 0600: the database, its -wal and -shm, and the
fingerprint key beside it.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from dpsk_orch.constants import SQLITE_BUSY_TIMEOUT_MS
from dpsk_orch.fingerprint import KEY_BYTES, Fingerprinter, load_or_create_key

SCHEMA_VERSION = 1

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE source_pools (
        orchestrator TEXT NOT NULL,
        pool_id TEXT NOT NULL,
        name TEXT NOT NULL,
        identity_group_id TEXT,
        origin TEXT NOT NULL,             -- config | discovery
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        gone_at TEXT,
        PRIMARY KEY (orchestrator, pool_id)
    );
    CREATE TABLE mappings (
        id INTEGER PRIMARY KEY,
        orchestrator TEXT NOT NULL,
        source_pool_id TEXT NOT NULL,
        source_passphrase_id TEXT NOT NULL,
        source_fingerprint TEXT NOT NULL,
        vlan_id INTEGER,
        target_passphrase_id TEXT,
        target_username TEXT NOT NULL,
        identity_id TEXT,
        identity_name TEXT,              -- the name dpsk-orch last gave the identity; NULL = not yet
        managed INTEGER NOT NULL DEFAULT 1,   -- 0 = kept in the site-wide pool, no longer managed
        intent TEXT,                     -- create | update | delete, recorded before the write
        intent_request_id TEXT,
        intent_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (orchestrator, source_passphrase_id),
        UNIQUE (orchestrator, target_passphrase_id)
    );
    CREATE TABLE flags (
        id INTEGER PRIMARY KEY,
        orchestrator TEXT NOT NULL,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        status TEXT NOT NULL,            -- open | resolved | ignored
        pool_id TEXT,
        pool_name TEXT,
        username TEXT,
        vlan_id INTEGER,
        fingerprint TEXT,
        source_passphrase_id TEXT,
        target_passphrase_id TEXT,
        mapping_id INTEGER REFERENCES mappings(id) ON DELETE SET NULL,
        detail TEXT NOT NULL DEFAULT '',
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        resolved_at TEXT,
        resolution TEXT,
        UNIQUE (orchestrator, key)
    );
    CREATE TABLE flag_events (
        id INTEGER PRIMARY KEY,
        flag_id INTEGER NOT NULL REFERENCES flags(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        event TEXT NOT NULL,             -- raised | reopened | cleared | resolved | attempted
        actor TEXT NOT NULL,
        action TEXT,
        result TEXT
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        orchestrator TEXT NOT NULL,
        command TEXT NOT NULL,           -- sync | discover | resolve
        trigger TEXT NOT NULL,
        invocation_id TEXT,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL,            -- running | ok | partial | blocked | failed
        exit_code INTEGER,
        counts TEXT NOT NULL DEFAULT '{}',
        errors TEXT NOT NULL DEFAULT '[]',
        requests INTEGER NOT NULL DEFAULT 0,
        throttled INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE run_actions (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        pool_name TEXT,
        username TEXT,
        vlan_before INTEGER,
        vlan_after INTEGER,
        fingerprint TEXT,
        result TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE discovery_runs (
        run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
        networks_scanned INTEGER NOT NULL,
        pools_seen INTEGER NOT NULL,
        added TEXT NOT NULL,
        gone TEXT NOT NULL
    );
    CREATE INDEX mappings_by_pool ON mappings (orchestrator, source_pool_id);
    CREATE INDEX flags_by_status ON flags (orchestrator, status, kind);
    CREATE INDEX runs_by_orchestrator ON runs (orchestrator, id);
    """,
}


IN_MEMORY = Path(":memory:")  # an empty store that creates no file, with a throw-away fingerprint key


class StateError(Exception):
    """The state file cannot be used (newer schema, unreadable, not a database)."""


def invocation_id() -> str | None:
    """The systemd invocation this process runs under (INVOCATION_ID), if any."""
    return os.environ.get("INVOCATION_ID") or None


def run_trigger() -> str:
    """What started this run, as recorded: "systemd" (a timer or unit) or "manual"."""
    return "systemd" if invocation_id() else "manual"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Mapping:
    """One source passphrase and the site-wide passphrase dpsk-orch made (or will make) from it."""

    id: int
    orchestrator: str
    source_pool_id: str
    source_passphrase_id: str
    source_fingerprint: str
    vlan_id: int | None
    target_passphrase_id: str | None
    target_username: str
    identity_id: str | None = None
    identity_name: str | None = None
    managed: bool = True
    intent: str | None = None
    intent_request_id: str | None = None
    intent_at: str | None = None


@dataclass(frozen=True)
class FlagSpec:
    """A flag as the planner raises it; `key` makes it the same flag from run to run."""

    kind: str
    key: str
    pool_id: str | None = None
    pool_name: str | None = None
    username: str | None = None
    vlan_id: int | None = None
    fingerprint: str | None = None
    source_passphrase_id: str | None = None
    target_passphrase_id: str | None = None
    mapping_id: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class Flag(FlagSpec):
    id: int = 0
    orchestrator: str = ""
    status: str = "open"
    first_seen: str = ""
    last_seen: str = ""
    resolved_at: str | None = None
    resolution: str | None = None


@dataclass(frozen=True)
class SourcePool:
    orchestrator: str
    pool_id: str
    name: str
    identity_group_id: str | None
    origin: str
    first_seen: str
    last_seen: str
    gone_at: str | None = None


def _from_row(cls: type, row: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    values = {key: value for key, value in row.items() if key in names}
    if "managed" in values:
        values["managed"] = bool(values["managed"])
    return cls(**values)


def create_private_file(path: Path) -> None:
    """Create `path` with mode 0600 if it does not exist, and tighten it if it does."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(descriptor)
    os.chmod(path, 0o600)


class StateStore:
    """The state file of one installation."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        if path == IN_MEMORY:
            self.db = sqlite_utils.Database(memory=True)
            self._migrate()
            self.fingerprints = Fingerprinter(secrets.token_bytes(KEY_BYTES))
            return
        previous_umask = os.umask(0o077)  # SQLite creates -wal and -shm with this umask
        try:
            if not read_only:
                create_private_file(path)
            try:
                self.db = sqlite_utils.Database(self._connect(path, read_only))
                self.db.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                self.db.execute("PRAGMA foreign_keys = ON")
                if not read_only:
                    self.db.enable_wal()
                    self.db.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
            except sqlite3.DatabaseError as error:
                raise StateError(f"{path}: not a usable dpsk-orch state file ({error})") from None
            for suffix in ("-wal", "-shm"):
                sidecar = Path(f"{path}{suffix}")
                if sidecar.exists():
                    os.chmod(sidecar, 0o600)
            self.fingerprints = Fingerprinter(load_or_create_key(Path(f"{path}.key")))
        finally:
            os.umask(previous_umask)

    @staticmethod
    def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
        timeout_s = SQLITE_BUSY_TIMEOUT_MS / 1000
        if read_only:
            return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_s,
                                   isolation_level=None)
        return sqlite3.connect(path, timeout=timeout_s, isolation_level=None)

    def close(self) -> None:
        self.db.close()

    # ---- schema ------------------------------------------------------------------------------

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path} was written by a newer dpsk-orch (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); upgrade dpsk-orch or point --db elsewhere")
        if self.read_only and version < SCHEMA_VERSION:
            raise StateError(f"{self.path} needs an upgrade (schema {version} -> {SCHEMA_VERSION}); "
                             "run once without --dry-run")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.db.atomic():
                for statement in split_sql(MIGRATIONS[target]):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {target}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One logical change: everything inside commits together or not at all."""
        with self.db.atomic():
            yield

    # ---- mappings ----------------------------------------------------------------------------

    def load_mappings(self, orchestrator: str) -> list[Mapping]:
        rows = self.db.query("SELECT * FROM mappings WHERE orchestrator = ? ORDER BY id", [orchestrator])
        return [_from_row(Mapping, row) for row in rows]

    def load_mapping(self, mapping_id: int) -> Mapping | None:
        rows = list(self.db.query("SELECT * FROM mappings WHERE id = ?", [mapping_id]))
        return _from_row(Mapping, rows[0]) if rows else None

    def save_new_mapping(self, orchestrator: str, *, source_pool_id: str, source_passphrase_id: str,
                         source_fingerprint: str, vlan_id: int | None, target_username: str,
                         target_passphrase_id: str | None, identity_id: str | None = None,
                         intent: str | None = None) -> int:
        now = utc_now()
        with self.db.atomic():
            return self.db.table("mappings").insert({
                "orchestrator": orchestrator, "source_pool_id": source_pool_id,
                "source_passphrase_id": source_passphrase_id, "source_fingerprint": source_fingerprint,
                "vlan_id": vlan_id, "target_passphrase_id": target_passphrase_id,
                "target_username": target_username, "identity_id": identity_id, "managed": 1,
                "intent": intent, "intent_at": now if intent else None,
                "created_at": now, "updated_at": now,
            }).last_pk

    def save_mapping_changes(self, mapping_id: int, **changes: Any) -> None:
        """Update some columns of one mapping in its own transaction."""
        self.save_many_mapping_changes([(mapping_id, changes)])

    def save_many_mapping_changes(self, updates: Iterable[tuple[int, dict[str, Any]]]) -> None:
        """Several mapping updates as one transaction (one logical change of many rows)."""
        now = utc_now()
        with self.db.atomic():
            for mapping_id, changes in updates:
                values = {**changes, "updated_at": now}
                if "managed" in values:
                    values["managed"] = int(values["managed"])
                self.db.table("mappings").update(mapping_id, values)

    def save_target_owner(self, orchestrator: str, target_passphrase_id: str, mapping_id: int | None) -> None:
        """Free a site-wide passphrase of every mapping but `mapping_id` (None: of all), in the transaction of
        the change that gives it its new owner: a site-wide passphrase belongs to one mapping."""
        self.db.execute(
            """UPDATE mappings SET target_passphrase_id = NULL, identity_id = NULL, identity_name = NULL,
                   updated_at = ? WHERE orchestrator = ? AND target_passphrase_id = ? AND id IS NOT ?""",
            [utc_now(), orchestrator, target_passphrase_id, mapping_id])

    def save_intent(self, mapping_ids: Iterable[int], intent: str | None) -> None:
        """Record (or clear, with None) what is about to be done to these mappings."""
        stamp = utc_now() if intent else None
        self.save_many_mapping_changes(
            (mapping_id, {"intent": intent, "intent_at": stamp, "intent_request_id": None})
            for mapping_id in mapping_ids)

    def delete_mappings(self, mapping_ids: Iterable[int]) -> None:
        with self.db.atomic():
            for mapping_id in mapping_ids:
                self.db.execute("DELETE FROM mappings WHERE id = ?", [mapping_id])

    # ---- source pools ------------------------------------------------------------------------

    def load_source_pools(self, orchestrator: str, include_gone: bool = False) -> list[SourcePool]:
        where = "" if include_gone else " AND gone_at IS NULL"
        rows = self.db.query(
            f"SELECT * FROM source_pools WHERE orchestrator = ?{where} ORDER BY name", [orchestrator])
        return [_from_row(SourcePool, row) for row in rows]

    def save_source_pools(self, orchestrator: str, seen: Iterable[tuple[str, str, str | None]], origin: str,
                          gone: Iterable[str] = ()) -> None:
        """Record pools seen now (id, name, identity group) and mark `gone` pool ids as gone."""
        now = utc_now()
        with self.db.atomic():
            for pool_id, name, group_id in seen:
                self.db.execute(
                    """INSERT INTO source_pools (orchestrator, pool_id, name, identity_group_id, origin,
                           first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (orchestrator, pool_id) DO UPDATE SET name = excluded.name,
                           identity_group_id = excluded.identity_group_id, last_seen = excluded.last_seen,
                           gone_at = NULL""",
                    [orchestrator, pool_id, name, group_id, origin, now, now])
            for pool_id in gone:
                self.db.execute(
                    "UPDATE source_pools SET gone_at = ? WHERE orchestrator = ? AND pool_id = ?",
                    [now, orchestrator, pool_id])

    # ---- flags -------------------------------------------------------------------------------

    def load_flags(self, orchestrator: str | None = None, kind: str | None = None,
                   include_closed: bool = False) -> list[Flag]:
        clauses, params = [], []
        if orchestrator:
            clauses.append("orchestrator = ?")
            params.append(orchestrator)
        if kind:
            clauses.append("kind = ?")
            params.append(kind)
        if not include_closed:
            clauses.append("status = 'open'")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return [_from_row(Flag, row) for row in self.db.query(f"SELECT * FROM flags {where} ORDER BY id", params)]

    def load_flag(self, flag_id: int) -> Flag | None:
        rows = list(self.db.query("SELECT * FROM flags WHERE id = ?", [flag_id]))
        return _from_row(Flag, rows[0]) if rows else None

    def load_flag_events(self, flag_id: int) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM flag_events WHERE flag_id = ? ORDER BY id", [flag_id]))

    def save_flags(self, orchestrator: str, raised: Iterable[FlagSpec], cleared_scope: set[str] | None,
                   actor: str = "dpsk-orch") -> tuple[int, int]:
        """Open or refresh `raised` flags; close open flags in `cleared_scope` that were not raised.

        `cleared_scope` holds the pool ids (and "" for pool-less flags) this run judged; flags of
        other pools stay as they are. Ignored flags stay ignored. Returns (new, cleared).
        """
        now = utc_now()
        new = cleared = 0
        raised_keys: set[str] = set()
        with self.db.atomic():
            for spec in raised:
                raised_keys.add(spec.key)
                existing = list(self.db.query(
                    "SELECT id, status FROM flags WHERE orchestrator = ? AND key = ?", [orchestrator, spec.key]))
                values = {k: v for k, v in asdict(spec).items()}
                if not existing:
                    flag_id = self.db.table("flags").insert({
                        **values, "orchestrator": orchestrator, "status": "open",
                        "first_seen": now, "last_seen": now}).last_pk
                    self._flag_event(flag_id, now, "raised", actor)
                    new += 1
                elif existing[0]["status"] == "resolved":
                    self.db.table("flags").update(existing[0]["id"], {
                        **values, "status": "open", "last_seen": now, "resolved_at": None, "resolution": None})
                    self._flag_event(existing[0]["id"], now, "reopened", actor)
                    new += 1
                else:
                    self.db.table("flags").update(existing[0]["id"], {**values, "last_seen": now})
            if cleared_scope is not None:
                for flag in self.load_flags(orchestrator):
                    if flag.key not in raised_keys and (flag.pool_id or "") in cleared_scope:
                        self.db.table("flags").update(flag.id, {
                            "status": "resolved", "resolved_at": now, "resolution": "cleared: no longer true"})
                        self._flag_event(flag.id, now, "cleared", actor)
                        cleared += 1
        return new, cleared

    def save_flag_resolution(self, flag_id: int, status: str, actor: str, action: str, result: str) -> None:
        now = utc_now()
        with self.db.atomic():
            self.db.table("flags").update(flag_id, {"status": status, "resolved_at": now, "resolution": action})
            self._flag_event(flag_id, now, "resolved", actor, action, result)

    def save_flag_attempt(self, flag_id: int, actor: str, action: str, result: str) -> None:
        """A resolution that did its part but left the flag open (a retry, a failed delete)."""
        with self.db.atomic():
            self._flag_event(flag_id, utc_now(), "attempted", actor, action, result)

    def _flag_event(self, flag_id: int, at: str, event: str, actor: str, action: str | None = None,
                    result: str | None = None) -> None:
        self.db.table("flag_events").insert(
            {"flag_id": flag_id, "at": at, "event": event, "actor": actor, "action": action, "result": result})

    # ---- runs --------------------------------------------------------------------------------

    def save_run_start(self, orchestrator: str, command: str, trigger: str, invocation_id: str | None) -> int:
        with self.db.atomic():
            return self.db.table("runs").insert({
                "orchestrator": orchestrator, "command": command, "trigger": trigger,
                "invocation_id": invocation_id, "started_at": utc_now(), "status": "running",
            }).last_pk

    def save_run_end(self, run_id: int, status: str, exit_code: int, counts: dict[str, int],
                     errors: list[str], requests: int, throttled: int) -> None:
        with self.db.atomic():
            self.db.table("runs").update(run_id, {
                "ended_at": utc_now(), "status": status, "exit_code": exit_code,
                "counts": json.dumps(counts, sort_keys=True), "errors": json.dumps(errors),
                "requests": requests, "throttled": throttled})

    def save_run_actions(self, run_id: int, actions: Iterable[dict[str, Any]]) -> None:
        with self.db.atomic():
            self.db.table("run_actions").insert_all({**action, "run_id": run_id} for action in actions)

    def save_discovery_run(self, run_id: int, networks_scanned: int, pools_seen: int,
                           added: list[str], gone: list[str]) -> None:
        with self.db.atomic():
            self.db.table("discovery_runs").insert({
                "run_id": run_id, "networks_scanned": networks_scanned, "pools_seen": pools_seen,
                "added": json.dumps(added), "gone": json.dumps(gone)})

    def load_runs(self, orchestrator: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        where, params = ("WHERE r.orchestrator = ?", [orchestrator]) if orchestrator else ("", [])
        rows = self.db.query(
            f"""SELECT r.*, d.networks_scanned, d.pools_seen, d.added AS pools_added, d.gone AS pools_gone
                FROM runs r LEFT JOIN discovery_runs d ON d.run_id = r.id {where}
                ORDER BY r.id DESC LIMIT ?""", [*params, limit])
        return [decode_run(row) for row in rows]

    def load_run_actions(self, run_id: int) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM run_actions WHERE run_id = ? ORDER BY id", [run_id]))

    def count_mappings(self, orchestrator: str) -> dict[str, int]:
        row = next(self.db.query(
            """SELECT COUNT(*) AS total, SUM(managed = 1 AND target_passphrase_id IS NOT NULL) AS managed,
                      SUM(managed = 0) AS kept, SUM(intent IS NOT NULL) AS pending
               FROM mappings WHERE orchestrator = ?""", [orchestrator]))
        return {key: int(value or 0) for key, value in row.items()}


def decode_run(row: dict[str, Any]) -> dict[str, Any]:
    run = dict(row)
    run["counts"] = json.loads(run["counts"] or "{}")
    run["errors"] = json.loads(run["errors"] or "[]")
    for key in ("pools_added", "pools_gone"):
        if run.get(key) is not None:
            run[key] = json.loads(run[key])
    return run


def split_sql(script: str) -> list[str]:
    """The statements of a migration script (none of ours contains a ';' inside a literal)."""
    lines = [line.split("--")[0] for line in script.splitlines()]
    return [statement.strip() for statement in "\n".join(lines).split(";") if statement.strip()]
