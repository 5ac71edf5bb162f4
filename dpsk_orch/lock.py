"""One run at a time per state file: an exclusive, non-blocking flock beside the database."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class LockHeld(Exception):
    """Another dpsk-orch run holds the lock of this state file."""


@contextmanager
def exclusive_run_lock(db_path: Path) -> Iterator[None]:
    """Hold `<db>.lock` for the duration, or raise LockHeld at once."""
    lock_path = Path(f"{db_path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(f"another dpsk-orch run holds {lock_path}") from None
        yield
    finally:
        os.close(descriptor)
