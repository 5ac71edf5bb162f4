"""Keyed fingerprints of passphrases: tell passphrases apart without storing or showing them."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from dpsk_orch.constants import FINGERPRINT_SHORT_CHARS

KEY_BYTES = 32


def load_or_create_key(path: Path) -> bytes:
    """The fingerprint key beside the database: created once with mode 0600, then only read."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) < KEY_BYTES:
            raise ValueError(f"{path}: fingerprint key is truncated; restore it from backup") from None
        return key
    key = secrets.token_bytes(KEY_BYTES)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    return key


class Fingerprinter:
    """HMAC-SHA256 of a passphrase under the installation's key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "Fingerprinter(<key withheld>)"

    def of(self, passphrase: str) -> str:
        return hmac.digest(self._key, passphrase.encode(), "sha256").hex()  # one-shot: a few times faster than new()


def short(fingerprint: str | None) -> str:
    """The form shown to people, e.g. `#3f9a1c`."""
    return f"#{fingerprint[:FINGERPRINT_SHORT_CHARS]}" if fingerprint else ""
