"""`dpsk-orch demo`: the main job, start to finish, against the built-in simulator. No account needed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dpsk_orch import app as work
from dpsk_orch.config import load_config
from dpsk_orch.render import Renderer
from dpsk_orch.simulator import SeededProperty, Simulator, serve_in_thread
from dpsk_orch.simulator.server import write_simulator_config
from dpsk_orch.sync.run import SyncOptions

DEMO_TENANT = "tenant-demo"
DEMO_CLIENT_ID = "demo-client"
DEMO_UNITS = 20
DEMO_PER_UNIT = 4


def change_units(sim: Simulator, seeded: SeededProperty) -> list[str]:
    """What residents and managers do between two syncs: a move-in, a VLAN move, a move-out."""
    first, second, third = seeded.unit_pool_ids[:3]
    sim.add_passphrase(DEMO_TENANT, first, "demo-new-resident-passphrase", "newresident",
                       vlan_id=sim.passphrases(DEMO_TENANT, first)[0]["vlanId"])
    moved = sim.passphrases(DEMO_TENANT, second)[1]  # [0] shares its string with the first unit
    sim.update_passphrase(DEMO_TENANT, second, moved["id"], vlanId=moved["vlanId"] + 1000)
    gone = sim.passphrases(DEMO_TENANT, third)[0]
    sim.delete_passphrase(DEMO_TENANT, third, gone["id"])
    names = seeded.unit_pool_names
    return [f"{names[0]}: a new resident moved in",
            f"{names[1]}: {moved['username']} moved to VLAN {moved['vlanId'] + 1000}",
            f"{names[2]}: {gone['username']} moved out (the passphrase was deleted)"]


def run_demo(renderer: Renderer) -> int:
    """Seed a property, then discover, dry-run, sync, change, sync again, and show flags and status."""
    sim = Simulator(activity_delay_s=0.05)
    client_secret = os.urandom(12).hex()
    sim.add_tenant(DEMO_TENANT, DEMO_CLIENT_ID, client_secret)
    seeded = sim.seed_property(DEMO_TENANT, units=DEMO_UNITS, per_unit=DEMO_PER_UNIT, with_orphan=True,
                               with_missing_vlan=True, with_shared_passphrase=True)
    server = serve_in_thread(sim)
    try:
        with tempfile.TemporaryDirectory(prefix="dpsk-orch-demo-") as directory:
            config = load_config(write_simulator_config(Path(directory), server.url, seeded, DEMO_CLIENT_ID,
                                                               client_secret))
            orchestrators = list(config.orchestrators.values())
            store = work.open_store(config.state_db)
            try:
                step = _stepper(renderer)
                step(f"A simulated property: {DEMO_UNITS} units x {DEMO_PER_UNIT} passphrases, one unmanaged "
                     "site-wide entry, one passphrase without a VLAN, two units sharing a passphrase.")
                step("discover: find the unit pools on the venue's networks")
                renderer.discovery_results(work.run_discovery(config, orchestrators, store, dry_run=False))
                step("sync --dry-run: what the first sync would do (nothing is changed)")
                renderer.sync_results(work.run_sync(config, orchestrators, store, SyncOptions(dry_run=True)))
                step("sync: the first real sync")
                first = work.run_sync(config, orchestrators, store, SyncOptions())
                renderer.sync_results(first)
                step("Changes at the units:\n  " + "\n  ".join(change_units(sim, seeded)))
                step("sync: the second sync picks them up (the move-out becomes a removal flag)")
                second = work.run_sync(config, orchestrators, store, SyncOptions())
                renderer.sync_results(second)
                step("flags list: what needs a person")
                renderer.flags(store.load_flags())
                step("status")
                renderer.status(work.status_rows(store, [o.name for o in orchestrators]))
            finally:
                store.close()
    finally:
        server.stop()
    renderer.line(f"\nRuckusONE calls made: {sim.count()} ({sim.count(writes_only=True)} writes). "
                  "Try it yourself: `dpsk-orch simulator --port 8765` and the README's walkthrough.")
    return work.overall_exit_code([result.exit_code for result in first + second])


def _stepper(renderer: Renderer):
    count = iter(range(1, 100))

    def step(text: str) -> None:
        renderer.line(f"\n[bold]{next(count)}. {text}[/bold]")

    return step
