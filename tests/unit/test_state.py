"""The state file: permissions, schema versions, uniqueness, flag bookkeeping, the run lock."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from dpsk_orch.lock import LockHeld, exclusive_run_lock
from dpsk_orch.state import SCHEMA_VERSION, FlagSpec, StateError, StateStore


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def new_mapping(store: StateStore, source: str, target: str | None) -> int:
    return store.save_new_mapping("parkview", source_pool_id="p1", source_passphrase_id=source,
                                  source_fingerprint="f" * 64, vlan_id=101, target_username="alice",
                                  target_passphrase_id=target)


def test_state_file_wal_shm_and_key_are_private(tmp_path):
    db = tmp_path / "state" / "state.db"
    store = StateStore(db)
    new_mapping(store, "s1", "t1")
    for path in (db, tmp_path / "state" / "state.db-wal", tmp_path / "state" / "state.db-shm",
                 tmp_path / "state" / "state.db.key"):
        assert path.exists(), path
        assert mode(path) == 0o600, path
    store.close()


def test_fingerprint_key_is_created_once_and_fingerprints_stay_stable(tmp_path):
    first = StateStore(tmp_path / "state.db")
    value = first.fingerprints.of("abcdefgh")
    first.close()
    again = StateStore(tmp_path / "state.db")
    assert again.fingerprints.of("abcdefgh") == value
    assert value != "abcdefgh" and len(value) == 64


def test_newer_schema_is_refused_with_a_clear_message(tmp_path):
    db = tmp_path / "state.db"
    StateStore(db).close()
    with sqlite3.connect(db) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StateError, match="newer dpsk-orch"):
        StateStore(db)


def test_a_target_passphrase_belongs_to_one_mapping_only(tmp_path):
    store = StateStore(tmp_path / "state.db")
    new_mapping(store, "s1", "t1")
    with pytest.raises(sqlite3.IntegrityError):
        new_mapping(store, "s2", "t1")
    with pytest.raises(sqlite3.IntegrityError):
        new_mapping(store, "s1", "t9")
    assert [m.source_passphrase_id for m in store.load_mappings("parkview")] == ["s1"]


def test_pending_creates_do_not_collide_on_unknown_targets(tmp_path):
    store = StateStore(tmp_path / "state.db")
    new_mapping(store, "s1", None)
    new_mapping(store, "s2", None)
    assert len(store.load_mappings("parkview")) == 2


def test_flags_are_raised_once_refreshed_then_cleared_only_in_judged_pools(tmp_path):
    store = StateStore(tmp_path / "state.db")
    removal = FlagSpec(kind="removal", key="removal:s1", pool_id="p1")
    other = FlagSpec(kind="removal", key="removal:s9", pool_id="p2")
    assert store.save_flags("parkview", [removal, other], {"p1", "p2"}) == (2, 0)
    assert store.save_flags("parkview", [removal, other], {"p1", "p2"}) == (0, 0)
    assert store.save_flags("parkview", [], {"p1"}) == (0, 1)  # p2 was not judged: its flag stays
    open_keys = [flag.key for flag in store.load_flags("parkview")]
    assert open_keys == ["removal:s9"]
    events = store.load_flag_events(store.load_flags("parkview", include_closed=True)[0].id)
    assert [e["event"] for e in events] == ["raised", "cleared"]


def test_dry_run_store_cannot_write(tmp_path):
    db = tmp_path / "state.db"
    StateStore(db).close()
    before = db.read_bytes()
    store = StateStore(db, read_only=True)
    with pytest.raises(sqlite3.OperationalError):
        new_mapping(store, "s1", "t1")
    store.close()
    assert db.read_bytes() == before


def test_second_run_lock_is_refused_at_once(tmp_path):
    db = tmp_path / "state.db"
    with exclusive_run_lock(db), pytest.raises(LockHeld), exclusive_run_lock(db):
        pass
    with exclusive_run_lock(db):
        pass  # released after the first holder left
