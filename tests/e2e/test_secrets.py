"""Canary passphrases and the client secret never reach a terminal, a log line or the state files."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import CLIENT_SECRET, TENANT, Site

CANARIES = ("CANARY-unit-passphrase-91ab", "CANARY-changed-passphrase-33cd", "CANARY-orphan-passphrase-77ef")
TOO_LONG_CANARY = "CANARY-too-long-" + "x" * 60  # RuckusONE echoes a rejected value in its activity error


def every_output(site: Site) -> list[str]:
    """Run every command that reports something, in every mode, and collect what they print."""
    outputs: list[str] = []
    commands = [("sync", "--all", "--dry-run"), ("sync", "--all"), ("-vv", "sync", "--all"), ("flags", "list"),
                ("flags", "list", "--all"), ("status",), ("history",), ("config", "validate")]
    for command in commands:
        for prefix in ((), ("--json",)):
            result = site.cli(*prefix, *command)
            outputs += [result.stdout, result.stderr]
    for flag in site.cli_json("flags", "list", "--all")["flags"]:
        for prefix in ((), ("--json",)):
            result = site.cli(*prefix, "flags", "show", str(flag["id"]))
            outputs += [result.stdout, result.stderr]
    return outputs


def test_canaries_never_appear_in_output_or_state_files(site: Site) -> None:
    pools = site.seeded.unit_pool_ids
    site.sim.add_passphrase(TENANT, pools[0], CANARIES[0], "canary-one", vlan_id=100)
    site.sim.add_passphrase(TENANT, site.seeded.site_wide_pool_id, CANARIES[2], "canary-orphan", vlan_id=7)
    site.sim.add_passphrase(TENANT, pools[1], TOO_LONG_CANARY, "canary-too-long", vlan_id=101)
    outputs = every_output(site)
    row = next(r for r in site.unit(0) if r["passphrase"] == CANARIES[0])
    site.sim.update_passphrase(TENANT, pools[0], row["id"], passphrase=CANARIES[1])
    outputs += every_output(site)

    assert any("canary-too-long" in text for text in outputs), "the failed create is reported"
    assert CANARIES[1] in {r["passphrase"] for r in site.site_wide()}, "the canary really was synced"
    files = [Path(f"{site.db_path}{suffix}") for suffix in ("", "-wal", "-shm")]
    contents = [path.read_bytes().decode("latin-1") for path in files if path.exists()]
    assert contents, "the state file exists"
    for secret in (*CANARIES, TOO_LONG_CANARY, "x" * 60, CLIENT_SECRET):
        for text in outputs + contents:
            assert secret not in text
