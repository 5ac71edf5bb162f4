"""Errors raised by the RuckusONE client. Their text never carries a request body or a secret."""

from __future__ import annotations


class R1Error(Exception):
    """A RuckusONE call failed: status, RuckusONE's error code and message, what was being done."""

    def __init__(self, action: str, status: int | None, code: str = "", message: str = "") -> None:
        self.action = action
        self.status = status
        self.code = code
        self.message = message
        detail = " ".join(part for part in (code, message) if part)
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{action}: {where}" + (f" ({detail})" if detail else ""))


class R1Unreachable(R1Error):
    """RuckusONE could not be reached at all (connection refused, DNS, TLS, repeated timeouts)."""


class AuthError(R1Error):
    """The token request was refused: wrong client id, secret or tenant."""


class IncompleteReadError(R1Error):
    """A paged read ended with fewer unique rows than the total RuckusONE declared."""

    def __init__(self, action: str, got: int, declared: int) -> None:
        super().__init__(action, None, "INCOMPLETE", f"read {got} of {declared} rows")
        self.got = got
        self.declared = declared

