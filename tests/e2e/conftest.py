"""End-to-end fixtures: the simulator served over HTTP, a config that points at it, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dpsk_orch.cli import app
from dpsk_orch.simulator import SeededProperty, Simulator, serve_in_thread

TENANT = "tenant-e2e"
CLIENT_ID = "e2e-client"
CLIENT_SECRET = "client-secret-canary-7f3a"


@dataclass
class Site:
    """A running simulator with a seeded property and a config file for it."""

    sim: Simulator
    url: str
    seeded: SeededProperty
    config_path: Path
    db_path: Path
    tmp: Path

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """Run the real CLI in-process (typer's CliRunner): stdout and stderr kept apart."""
        runner = CliRunner()
        full_env = {"DPSK_ORCH_CONFIG": str(self.config_path), "DPSK_ORCH_DB": str(self.db_path),
                    "NO_COLOR": "1", **(env or {})}
        return runner.invoke(app, list(args), env=full_env, catch_exceptions=False)

    def cli_json(self, *args: str) -> dict:
        result = self.cli("--json", *args)
        return json.loads(result.stdout)

    def spawn(self, *args: str) -> subprocess.Popen:
        """The CLI as its own process (for kill and lock tests)."""
        env = {**os.environ, "DPSK_ORCH_CONFIG": str(self.config_path), "DPSK_ORCH_DB": str(self.db_path),
               "NO_COLOR": "1"}
        return subprocess.Popen([sys.executable, "-m", "dpsk_orch", *args], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def site_wide(self) -> list[dict]:
        return self.sim.passphrases(TENANT, self.seeded.site_wide_pool_id)

    def unit(self, index: int) -> list[dict]:
        return self.sim.passphrases(TENANT, self.seeded.unit_pool_ids[index])

    def writes(self) -> int:
        return self.sim.count(writes_only=True)

    def rewrite_config(self, **orchestrator_changes: Any) -> None:
        data = yaml.safe_load(self.config_path.read_text())
        data["orchestrators"]["parkview"].update(orchestrator_changes)
        self.config_path.write_text(yaml.safe_dump(data))


def write_config(tmp: Path, url: str, seeded: SeededProperty, discovery: bool = False) -> Path:
    secret_file = tmp / "r1.secret"
    secret_file.write_text(CLIENT_SECRET)
    secret_file.chmod(0o600)
    orchestrator: dict[str, Any] = {"controller": "sim", "venue_id": seeded.venue_id,
                                    "site_wide_pool": seeded.site_wide_pool_name}
    if discovery:
        orchestrator["discovery"] = {"enabled": True, "include": ["unit*dpsk"]}
    else:
        orchestrator["source_pools"] = list(seeded.unit_pool_names)
    config = {"version": 1,
              "controllers": {"sim": {"api_url": url, "tenant_id": TENANT, "client_id": CLIENT_ID,
                                      "client_secret_file": str(secret_file), "max_requests_per_minute": 2000,
                                      "concurrency": 8}},
              "orchestrators": {"parkview": orchestrator}}
    path = tmp / "orchestrators.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def make_site(tmp_path: Path, units: int, per_unit: int, sim_options: dict[str, Any] | None = None,
              **seed_options: Any) -> Iterator[Site]:
    sim = Simulator(**{"activity_delay_s": 0.02, **(sim_options or {})})
    sim.add_tenant(TENANT, CLIENT_ID, CLIENT_SECRET)
    seeded = sim.seed_property(TENANT, units=units, per_unit=per_unit, **seed_options)
    server = serve_in_thread(sim)
    try:
        yield Site(sim, server.url, seeded, write_config(tmp_path, server.url, seeded), tmp_path / "state.db",
                   tmp_path)
    finally:
        server.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A small property: 6 units x 3 passphrases."""
    yield from make_site(tmp_path, units=6, per_unit=3)
