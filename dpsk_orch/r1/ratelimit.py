"""A token bucket shared by every request of one client, so a run stays under RuckusONE's limit."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """Allows `rate_per_s` requests a second on average and `burst` at once; `pause` holds everyone."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._updated = time.monotonic()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one request may be sent."""
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate_per_s)

    def pause(self, seconds: float) -> None:
        """Send nothing for `seconds` (RuckusONE answered 429)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        self._tokens = 0.0
