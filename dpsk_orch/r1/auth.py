"""OAuth2 client-credentials tokens: fetched once, refreshed before expiry and once after a 401."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dpsk_orch.constants import DEFAULT_TOKEN_LIFETIME_S, TOKEN_MAX_AGE_S, TOKEN_REFRESH_MARGIN_S


@dataclass(frozen=True)
class Token:
    value: str
    refresh_at: float  # time.monotonic() after which the token is renewed before use


def refresh_delay_s(expires_in_s: float | None) -> float:
    """Seconds a token may be used: min(expires_in - margin, 45 min); 3600 s assumed when absent."""
    lifetime = expires_in_s if expires_in_s and expires_in_s > 0 else DEFAULT_TOKEN_LIFETIME_S
    return max(0.0, min(lifetime - TOKEN_REFRESH_MARGIN_S, TOKEN_MAX_AGE_S))


class TokenSource:
    """Hands out a valid bearer token; concurrent callers share one fetch, and one re-auth per 401."""

    def __init__(self, fetch: Callable[[], Awaitable[tuple[str, float | None]]]) -> None:
        self._fetch = fetch
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def get(self) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() >= self._token.refresh_at:
                value, expires_in = await self._fetch()
                self.fetch_count += 1
                self._token = Token(value, time.monotonic() + refresh_delay_s(expires_in))
            return self._token.value

    def invalidate(self, rejected: str) -> None:
        """Forget `rejected` (RuckusONE answered 401 to it) unless another caller already replaced it."""
        if self._token is not None and self._token.value == rejected:
            self._token = None
