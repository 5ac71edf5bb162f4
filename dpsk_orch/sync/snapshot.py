"""Read the site-wide pool and every source pool, concurrently, each marked complete or not."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from dpsk_orch.config import PoolRef
from dpsk_orch.r1.client import R1Client
from dpsk_orch.r1.errors import R1Error
from dpsk_orch.r1.records import Passphrase, Pool


@dataclass(frozen=True)
class PoolRead:
    """One pool as read this run. `error` is None only for a complete read."""

    pool: Pool
    passphrases: tuple[Passphrase, ...] = field(default=(), repr=False)
    error: str | None = None
    fallback_vlan: int | None = None

    @property
    def is_complete(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Snapshot:
    """What RuckusONE holds now, as far as one orchestrator cares."""

    target: PoolRead
    sources: tuple[PoolRead, ...]
    gone_pool_ids: frozenset[str] = frozenset()  # tracked source pools that no longer exist
    scope: frozenset[str] | None = None  # --pool: only these source pool ids are acted on
    unsettled_mapping_ids: frozenset[int] = frozenset()  # creates of a dead run that may still land

    @property
    def is_complete(self) -> bool:
        return self.target.is_complete and all(read.is_complete for read in self.sources)

    def in_scope(self, pool_id: str) -> bool:
        return self.scope is None or pool_id in self.scope


class PoolNotFound(Exception):
    """A pool named in the config does not exist in RuckusONE."""


def resolve_pool(ref: PoolRef, pools: list[Pool]) -> Pool:
    """The pool a config entry means: by id, or by exact name (one match, else PoolNotFound)."""
    if ref.id:
        matches = [pool for pool in pools if pool.id == ref.id]
    else:
        matches = [pool for pool in pools if pool.name == ref.name]
    if len(matches) != 1:
        problem = "no pool" if not matches else f"{len(matches)} pools"
        raise PoolNotFound(f"{problem} called {ref.label()} in RuckusONE")
    return matches[0]


async def fetch_pool_read(r1: R1Client, pool: Pool, fallback_vlan: int | None = None) -> PoolRead:
    """A complete read of one pool, or a PoolRead that says why not (never a partial list)."""
    try:
        rows = await r1.fetch_passphrases(pool.id, pool.name)
    except R1Error as error:
        return PoolRead(pool, (), str(error), fallback_vlan)
    return PoolRead(pool, tuple(rows), None, fallback_vlan)


async def fetch_snapshot(r1: R1Client, target: Pool, sources: list[tuple[Pool, int | None]],
                         gone_pool_ids: frozenset[str] = frozenset(),
                         scope: frozenset[str] | None = None,
                         unsettled_mapping_ids: frozenset[int] = frozenset()) -> Snapshot:
    """Read the site-wide pool and all sources (pool, fallback VLAN) at once."""
    reads = await asyncio.gather(
        fetch_pool_read(r1, target),
        *(fetch_pool_read(r1, pool, vlan) for pool, vlan in sources))
    return Snapshot(reads[0], tuple(reads[1:]), gone_pool_ids, scope, unsettled_mapping_ids)
