"""Read the site-wide pool and every source pool, concurrently, each marked complete or not."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from dpsk_orch.config import PoolRef
from dpsk_orch.r1.client import R1Client
from dpsk_orch.r1.errors import R1Error
from dpsk_orch.r1.records import Passphrase, Pool

logger = logging.getLogger(__name__)


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
        logger.debug("pool %s: read incomplete (%s)", pool.name, error)
        return PoolRead(pool, (), str(error), fallback_vlan)
    logger.debug("pool %s: %d passphrases", pool.name, len(rows))
    return PoolRead(pool, tuple(rows), None, fallback_vlan)


async def fetch_snapshot(r1: R1Client, target: Pool, sources: list[tuple[Pool, int | None]],
                         scope: frozenset[str] | None = None,
                         unsettled_mapping_ids: frozenset[int] = frozenset()) -> Snapshot:
    """Read the site-wide pool and all sources (pool, fallback VLAN) at once. A pool that is not read (a
    pool_gone one, say) is never judged: its mappings stay and raise no removal flags."""
    reads = await asyncio.gather(
        fetch_pool_read(r1, target),
        *(fetch_pool_read(r1, pool, vlan) for pool, vlan in sources))
    logger.info("read the site-wide pool %s (%s) and %d source pools (%d passphrases, %d read incompletely)",
                target.name, describe_read(reads[0]), len(sources), sum(len(r.passphrases) for r in reads[1:]),
                sum(1 for r in reads[1:] if not r.is_complete))
    return Snapshot(reads[0], tuple(reads[1:]), scope, unsettled_mapping_ids)


def describe_read(read: PoolRead) -> str:
    return f"{len(read.passphrases)} passphrase(s)" if read.is_complete else "read incomplete"
