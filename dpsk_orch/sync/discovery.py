"""Find an orchestrator's source pools: the DPSK pools active on its venue's networks, filtered by globs."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from dataclasses import dataclass, field

from dpsk_orch.config import Config, OrchestratorConfig
from dpsk_orch.r1.client import R1Client
from dpsk_orch.r1.errors import R1Error
from dpsk_orch.r1.records import Pool
from dpsk_orch.state import FlagSpec, StateStore, invocation_id, run_trigger
from dpsk_orch.sync.snapshot import PoolNotFound, resolve_pool

DISCOVERY_ORIGIN = "discovery"
logger = logging.getLogger(__name__)


@dataclass
class DiscoveryResult:
    orchestrator: str
    dry_run: bool
    networks_scanned: int = 0
    pools_seen: int = 0
    matched: list[Pool] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    run_id: int | None = None
    requests: int = 0  # RuckusONE requests the discovery sent

    @property
    def is_complete(self) -> bool:
        return not self.errors


def matches_globs(name: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """Case-insensitive: included by some `include` glob and by no `exclude` glob."""
    lowered = name.lower()
    return (any(fnmatch.fnmatchcase(lowered, glob.lower()) for glob in include)
            and not any(fnmatch.fnmatchcase(lowered, glob.lower()) for glob in exclude))


def site_wide_pool_ids(config: Config, pools: list[Pool]) -> set[str]:
    """The site-wide pools of every orchestrator in the config: never a source of anyone."""
    ids = set()
    for orchestrator in config.orchestrators.values():
        try:
            ids.add(resolve_pool(orchestrator.site_wide_pool, pools).id)
        except PoolNotFound:
            continue
    return ids


def select_sources(orchestrator: OrchestratorConfig, venue_pools: list[Pool], excluded_ids: set[str]) -> list[Pool]:
    """The venue's pools that are this orchestrator's sources (pure: no I/O)."""
    rules = orchestrator.discovery
    return sorted((pool for pool in venue_pools if pool.id not in excluded_ids
                   and matches_globs(pool.name, rules.include, rules.exclude)), key=lambda pool: pool.name.lower())


async def fetch_venue_pools(r1: R1Client, venue_id: str, pools: list[Pool]) -> tuple[int, list[Pool], list[str]]:
    """(networks scanned, pools active on the venue, errors). Each network is read concurrently."""
    network_ids = await r1.fetch_venue_network_ids(venue_id)
    answers = await asyncio.gather(*(r1.fetch_network(network_id) for network_id in network_ids),
                                   return_exceptions=True)
    errors = [str(answer) for answer in answers if isinstance(answer, R1Error)]
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, R1Error):
            raise answer
    pool_ids = {pool_id for answer in answers if not isinstance(answer, BaseException) for pool_id in answer.pool_ids}
    by_id = {pool.id: pool for pool in pools}
    return len(network_ids), [by_id[pool_id] for pool_id in sorted(pool_ids) if pool_id in by_id], errors


async def discover(config: Config, orchestrator: OrchestratorConfig, store: StateStore, r1: R1Client,
                   dry_run: bool, pools: list[Pool] | None = None) -> DiscoveryResult:
    """Discover and (unless dry_run) record the sources; a pool that is gone becomes one pool_gone flag.

    A discovery with any failed network read adds what it found but judges nothing gone.
    """
    result = DiscoveryResult(orchestrator.name, dry_run)
    requests_before = r1.stats.requests
    if not dry_run:
        result.run_id = store.save_run_start(orchestrator.name, "discover", run_trigger(), invocation_id())
    try:
        pools = pools if pools is not None else await r1.fetch_pools()
        explicit = {ref.id or ref.name for ref in orchestrator.source_pools}
        excluded = site_wide_pool_ids(config, pools)
        scanned, venue_pools, result.errors = await fetch_venue_pools(r1, orchestrator.venue_id or "", pools)
    except R1Error as error:
        result.errors.append(str(error))
        result.requests = r1.stats.requests - requests_before
        _record(store, result)
        return result
    result.requests = r1.stats.requests - requests_before
    result.networks_scanned, result.pools_seen = scanned, len(venue_pools)
    logger.info("venue %s: %d networks, %d DPSK pools on them", orchestrator.venue_id, scanned, len(venue_pools))
    result.matched = [pool for pool in select_sources(orchestrator, venue_pools, excluded)
                      if pool.id not in explicit and pool.name not in explicit]
    tracked = {p.pool_id: p.name for p in store.load_source_pools(orchestrator.name) if p.origin == DISCOVERY_ORIGIN}
    matched_ids = {pool.id for pool in result.matched}
    result.added = [pool.name for pool in result.matched if pool.id not in tracked]
    gone_ids = [pool_id for pool_id in tracked if pool_id not in matched_ids] if result.is_complete else []
    result.gone = [tracked[pool_id] for pool_id in gone_ids]
    if not dry_run:
        store.save_source_pools(orchestrator.name, [(p.id, p.name, p.identity_group_id) for p in result.matched],
                                DISCOVERY_ORIGIN, gone=gone_ids)
        store.save_flags(orchestrator.name, [pool_gone_flag(pool_id, tracked[pool_id]) for pool_id in gone_ids], None)
        _record(store, result)
    return result


def pool_gone_flag(pool_id: str, name: str) -> FlagSpec:
    return FlagSpec(kind="pool_gone", key=f"pool_gone:{pool_id}", pool_id=pool_id, pool_name=name,
                    detail="a discovered source pool is gone (deleted, moved off the venue, or no longer matching); "
                           "its site-wide passphrases stay until a person decides")


def _record(store: StateStore, result: DiscoveryResult) -> None:
    if result.run_id is None:
        return
    store.save_discovery_run(result.run_id, result.networks_scanned, result.pools_seen, result.added, result.gone)
    counts = {"networks": result.networks_scanned, "pools_seen": result.pools_seen, "sources": len(result.matched),
              "added": len(result.added), "gone": len(result.gone)}
    status, code = ("ok", 0) if result.is_complete else ("partial", 1)
    store.save_run_end(result.run_id, status, code, counts, result.errors, result.requests, 0)
