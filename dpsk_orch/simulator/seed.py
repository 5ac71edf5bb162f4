"""A seeded property: a venue, a site-wide pool, and one DPSK pool and network per unit."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dpsk_orch.simulator.core import Simulator

PASSPHRASE_ALPHABET = string.ascii_letters + string.digits
FIRST_UNIT_NUMBER = 101


@dataclass(frozen=True)
class SeededProperty:
    tenant_id: str
    venue_id: str
    site_wide_pool_id: str
    site_wide_pool_name: str
    unit_pool_ids: tuple[str, ...]
    unit_pool_names: tuple[str, ...]


def unit_pool_name(index: int) -> str:
    return f"Unit{FIRST_UNIT_NUMBER + index}DPSK"


def random_passphrase(rng: random.Random, length: int = 14) -> str:
    return "".join(rng.choice(PASSPHRASE_ALPHABET) for _ in range(length))


def seed_property(sim: Simulator, tenant_id: str, units: int, per_unit: int, site_wide_name: str = "SiteWideDPSK",
                  venue_name: str = "Parkview Apartments", vlan_base: int = 100, with_orphan: bool = False,
                  with_missing_vlan: bool = False, with_shared_passphrase: bool = False,
                  seed: int = 0) -> SeededProperty:
    """Unit i gets pool `Unit{101+i}DPSK` on its own network, VLAN vlan_base+i, `per_unit` passphrases.

    with_orphan: an unmanaged entry already in the site-wide pool. with_missing_vlan: the first passphrase
    of the last unit has no VLAN. with_shared_passphrase: the second unit's first passphrase repeats the
    first unit's string.
    """
    rng = random.Random(seed)
    venue_id = sim.add_venue(tenant_id, venue_name)
    site_wide_id = sim.add_pool(tenant_id, site_wide_name)
    sim.add_network(tenant_id, "Residents", [venue_id], [site_wide_id])
    pool_ids, names = [], []
    first_strings: list[str] = []
    for index in range(units):
        name = unit_pool_name(index)
        pool_id = sim.add_pool(tenant_id, name)
        sim.add_network(tenant_id, f"{name}-wifi", [venue_id], [pool_id])
        for number in range(per_unit):
            passphrase = random_passphrase(rng)
            if with_shared_passphrase and index == 1 and number == 0 and first_strings:
                passphrase = first_strings[0]
            vlan = None if with_missing_vlan and index == units - 1 and number == 0 else vlan_base + index
            sim.add_passphrase(tenant_id, pool_id, passphrase, f"unit{FIRST_UNIT_NUMBER + index}-resident{number + 1}",
                               vlan_id=vlan)
            if number == 0:
                first_strings.append(passphrase)
        pool_ids.append(pool_id)
        names.append(name)
    if with_orphan:
        sim.add_passphrase(tenant_id, site_wide_id, random_passphrase(rng), "lobby-kiosk", vlan_id=vlan_base - 1)
    return SeededProperty(tenant_id, venue_id, site_wide_id, site_wide_name, tuple(pool_ids), tuple(names))
