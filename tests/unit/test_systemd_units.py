"""The systemd units in systemd/: what they promise the operator, checked line by line.

systemd ignores a directive it cannot parse with only a warning, so a misspelt hardening line
silently removes that protection. These tests pin the directives and values; .ci/systemd-verify
(run at the end when systemd-analyze exists) checks that systemd itself accepts them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT_DIR = ROOT / "systemd"
VERIFY_SCRIPT = ROOT / ".ci" / "systemd-verify"

PLAIN_SERVICE = "dpsk-orch-sync.service"
TEMPLATE_SERVICE = "dpsk-orch-sync@.service"
PLAIN_TIMER = "dpsk-orch-sync.timer"
TEMPLATE_TIMER = "dpsk-orch-sync@.timer"
NOTIFY_SERVICE = "dpsk-orch-notify-failure@.service"
SYNC_SERVICES = [PLAIN_SERVICE, TEMPLATE_SERVICE]
TIMERS = [PLAIN_TIMER, TEMPLATE_TIMER]
ALL_UNITS = [*SYNC_SERVICES, *TIMERS, NOTIFY_SERVICE]

BINARY = "/usr/local/bin/dpsk-orch"
METRICS_DIR = "/var/lib/prometheus/node-exporter"

# Directive -> the value it must have (one of its assignments, where a key repeats).
HARDENING: dict[str, str] = {
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter": "@system-service",
    "SystemCallArchitectures": "native",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "LockPersonality": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "MemoryDenyWriteExecute": "yes",
    "DynamicUser": "yes",
}
# Further sandboxing lines the units carry; they need a reason too.
EXTRA_HARDENING = {
    "AmbientCapabilities",
    "SystemCallErrorNumber",
    "ProtectProc",
    "RemoveIPC",
    "PrivateNetwork",
}


# --- a small parser for systemd unit files -------------------------------------------------


@dataclass(frozen=True)
class Directive:
    section: str
    key: str
    value: str
    line: int  # 1-based line of the key
    comment_above: str | None  # the comment line right above the key, if any


@dataclass(frozen=True)
class Unit:
    name: str
    directives: tuple[Directive, ...]

    def sections(self) -> set[str]:
        return {d.section for d in self.directives}

    def all(self, section: str, key: str) -> list[Directive]:
        return [d for d in self.directives if d.section == section and d.key == key]

    def values(self, section: str, key: str) -> list[str]:
        """Every assignment of a key, in order (systemd keys may repeat)."""
        return [d.value for d in self.all(section, key)]

    def value(self, section: str, key: str) -> str:
        """The effective value of a single-valued key: the last assignment wins."""
        found = self.values(section, key)
        assert found, f"{self.name}: [{section}] has no {key}="
        return found[-1]


def parse_unit(path: Path) -> Unit:
    """Parse a unit file: sections, repeated keys, comments, backslash continuations."""
    directives: list[Directive] = []
    section = ""
    previous_comment: str | None = None
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line_no = i + 1
        stripped = lines[i].strip()
        i += 1
        if not stripped:
            previous_comment = None
            continue
        if stripped[0] in "#;":
            previous_comment = stripped
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            previous_comment = None
            continue
        assert "=" in stripped, f"{path.name}:{line_no}: not a key=value line: {stripped!r}"
        assert section, f"{path.name}:{line_no}: directive outside any section"
        while stripped.endswith("\\") and i < len(lines):
            stripped = stripped[:-1] + " " + lines[i].strip()
            i += 1
        key, _, value = stripped.partition("=")
        directives.append(Directive(section, key.strip(), value.strip(), line_no, previous_comment))
        previous_comment = None
    return Unit(path.name, tuple(directives))


_SPAN_UNITS = {
    "us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip


def timespan_seconds(value: str) -> float:
    """A systemd time span ("15min", "1h 30min", "60") in seconds; a bare number is seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value.strip().lower())
    assert parts and "".join(n + u for n, u in parts) == re.sub(r"\s+", "", value.lower()), value
    return sum(float(number) * _SPAN_UNITS[unit or "s"] for number, unit in parts)


@pytest.fixture(scope="module")
def units() -> dict[str, Unit]:
    return {name: parse_unit(UNIT_DIR / name) for name in ALL_UNITS}


# --- every unit ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_UNITS)
def test_unit_file_is_shipped_and_parses(name: str, units: dict[str, Unit]) -> None:
    unit = units[name]
    kind = name.rsplit(".", 1)[1]
    assert {"Unit", kind.capitalize()} <= unit.sections()
    assert unit.value("Unit", "Description")


# --- the two sync services -------------------------------------------------------------------


@pytest.mark.parametrize("name", SYNC_SERVICES)
def test_service_runs_once_per_trigger_and_cannot_hang_forever(name: str, units: dict[str, Unit]) -> None:
    unit = units[name]
    assert unit.value("Service", "Type") == "oneshot"
    # Oneshot services have no start timeout by default: a hung run would block the timer.
    timeout = unit.all("Service", "TimeoutStartSec")
    assert timeout, "TimeoutStartSec must be explicit"
    assert 60 <= timespan_seconds(timeout[-1].value) <= 3600
    assert timeout[-1].comment_above, "TimeoutStartSec needs a comment saying why"


@pytest.mark.parametrize("name", SYNC_SERVICES)
def test_busy_run_is_success_but_partial_config_and_guard_exits_fail(
    name: str, units: dict[str, Unit]
) -> None:
    statuses = " ".join(units[name].values("Service", "SuccessExitStatus")).split()
    assert "75" in statuses
    assert not {"1", "2", "3"} & set(statuses)


@pytest.mark.parametrize("name", SYNC_SERVICES)
def test_service_keeps_state_and_reads_config_where_the_tool_expects(
    name: str, units: dict[str, Unit]
) -> None:
    unit = units[name]
    assert unit.value("Service", "StateDirectory") == "dpsk-orch"
    assert unit.value("Service", "ConfigurationDirectory") == "dpsk-orch"
    env = " ".join(unit.values("Service", "Environment")).split()
    assert "DPSK_ORCH_CONFIG=/etc/dpsk-orch/orchestrators.yaml" in env
    # One fixed (dynamic) user for all sync units, so the state files keep one owner.
    assert unit.value("Service", "User") == "dpsk-orch"


@pytest.mark.parametrize("name", SYNC_SERVICES)
def test_service_cannot_write_outside_state_directory(name: str, units: dict[str, Unit]) -> None:
    unit = units[name]
    assert unit.value("Service", "ProtectSystem") == "strict"
    assert unit.value("Service", "ProtectHome") == "yes"
    writable = " ".join(unit.values("Service", "ReadWritePaths")).split()
    # Only the node-exporter textfile directory, and a missing one must not fail the run.
    assert writable == [f"-{METRICS_DIR}"]
    for key in ("BindPaths", "ReadWriteDirectories", "LogsDirectory", "CacheDirectory"):
        assert not unit.values("Service", key), f"{key}= would widen what the service can write"


@pytest.mark.parametrize("name", SYNC_SERVICES)
def test_metrics_file_lands_in_the_writable_metrics_directory(name: str, units: dict[str, Unit]) -> None:
    args = units[name].value("Service", "ExecStart").split()
    assert "--metrics-file" in args
    metrics_file = args[args.index("--metrics-file") + 1]
    assert metrics_file.startswith(METRICS_DIR + "/")
    assert metrics_file.endswith(".prom")


@pytest.mark.parametrize("name", SYNC_SERVICES)
def test_files_the_service_creates_are_private(name: str, units: dict[str, Unit]) -> None:
    assert units[name].value("Service", "UMask") == "0077"


@pytest.mark.parametrize("name", SYNC_SERVICES)
def test_client_secret_arrives_as_a_systemd_credential(name: str, units: dict[str, Unit]) -> None:
    unit = units[name]
    credentials = unit.values("Service", "LoadCredential")
    assert "r1-main.secret:/etc/dpsk-orch/credentials/r1-main.secret" in credentials
    comment_block = _comment_block_above(UNIT_DIR / name, unit.all("Service", "LoadCredential")[0].line)
    assert "LoadCredentialEncrypted" in comment_block, "say how to keep the secret encrypted"
    assert "LoadCredential=" in comment_block, "say how to add another controller's secret"
    # The secret itself never sits in the unit or its environment.
    assert not [v for v in unit.values("Service", "Environment") if "SECRET" in v.upper()]


@pytest.mark.parametrize("name", SYNC_SERVICES)
def test_service_is_sandboxed(name: str, units: dict[str, Unit]) -> None:
    unit = units[name]
    for key, expected in HARDENING.items():
        assert expected in unit.values("Service", key), f"{name}: expected {key}={expected}"


@pytest.mark.parametrize("name", SYNC_SERVICES)
def test_service_has_no_capabilities_and_only_network_and_journal_sockets(
    name: str, units: dict[str, Unit]
) -> None:
    unit = units[name]
    assert unit.value("Service", "CapabilityBoundingSet") == ""
    families = unit.value("Service", "RestrictAddressFamilies").split()
    assert sorted(families) == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert not unit.values("Service", "PrivateNetwork") or unit.value("Service", "PrivateNetwork") == "no"


@pytest.mark.parametrize("name", [*SYNC_SERVICES, NOTIFY_SERVICE])
def test_every_hardening_directive_says_why(name: str, units: dict[str, Unit]) -> None:
    unit = units[name]
    hardening = set(HARDENING) | EXTRA_HARDENING
    seen = [d for d in unit.directives if d.section == "Service" and d.key in hardening]
    assert seen
    missing = [f"line {d.line}: {d.key}" for d in seen if not d.comment_above]
    assert not missing, f"{name}: hardening lines without their own comment: {missing}"
    # One comment per line: the comment right above belongs to that line alone.
    comments = [d.comment_above for d in seen]
    assert len(comments) == len(set(comments)) or all(
        d.comment_above != e.comment_above or d.line == e.line
        for d in seen
        for e in seen
        if abs(d.line - e.line) <= 2
    )


@pytest.mark.parametrize("name", SYNC_SERVICES)
def test_failed_run_starts_the_notify_unit(name: str, units: dict[str, Unit]) -> None:
    assert units[name].value("Unit", "OnFailure") == "dpsk-orch-notify-failure@%n.service"
    assert (UNIT_DIR / NOTIFY_SERVICE).is_file()


@pytest.mark.parametrize("name", SYNC_SERVICES)
def test_service_waits_for_the_network(name: str, units: dict[str, Unit]) -> None:
    unit = units[name]
    assert "network-online.target" in " ".join(unit.values("Unit", "Wants"))
    assert "network-online.target" in " ".join(unit.values("Unit", "After"))


@pytest.mark.parametrize("name", SYNC_SERVICES)
def test_service_runs_the_installed_binary_and_says_how_to_change_it(
    name: str, units: dict[str, Unit]
) -> None:
    exec_start = units[name].all("Service", "ExecStart")
    assert len(exec_start) == 1
    assert exec_start[0].value.startswith(BINARY + " sync ")
    comment_block = _comment_block_above(UNIT_DIR / name, exec_start[0].line)
    assert "pipx" in comment_block


def test_plain_service_syncs_every_orchestrator(units: dict[str, Unit]) -> None:
    exec_start = units[PLAIN_SERVICE].value("Service", "ExecStart")
    assert " sync --all" in exec_start
    assert "%i" not in exec_start


def test_template_service_syncs_only_its_instance(units: dict[str, Unit]) -> None:
    args = units[TEMPLATE_SERVICE].value("Service", "ExecStart").split()
    assert args[1:3] == ["sync", "%i"]
    assert "--all" not in args
    # Each instance has its own metrics file, so instances do not overwrite each other.
    assert "%i" in args[args.index("--metrics-file") + 1]


def test_template_and_plain_service_share_one_sandbox(units: dict[str, Unit]) -> None:
    """Only the command, description and log tag may differ: the template must not drift."""
    may_differ = {("Unit", "Description"), ("Service", "ExecStart"), ("Service", "SyslogIdentifier")}

    def settings(unit: Unit) -> list[tuple[str, str, str]]:
        return [(d.section, d.key, d.value) for d in unit.directives if (d.section, d.key) not in may_differ]

    assert settings(units[PLAIN_SERVICE]) == settings(units[TEMPLATE_SERVICE])


# --- timers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TIMERS)
def test_timer_catches_up_missed_runs_and_spreads_load(name: str, units: dict[str, Unit]) -> None:
    unit = units[name]
    assert unit.value("Timer", "Persistent") == "true"
    assert 0 < timespan_seconds(unit.value("Timer", "RandomizedDelaySec")) <= 300
    assert timespan_seconds(unit.value("Timer", "AccuracySec")) <= 60
    assert unit.values("Timer", "OnCalendar") == ["*:0/5"] or (
        unit.values("Timer", "OnBootSec") and unit.values("Timer", "OnUnitActiveSec")
    )


@pytest.mark.parametrize("name", TIMERS)
def test_timer_starts_at_boot_once_enabled(name: str, units: dict[str, Unit]) -> None:
    assert units[name].value("Install", "WantedBy") == "timers.target"


@pytest.mark.parametrize(
    ("timer", "service"),
    [(PLAIN_TIMER, PLAIN_SERVICE), (TEMPLATE_TIMER, "dpsk-orch-sync@%i.service")],
)
def test_timer_triggers_its_sync_service(timer: str, service: str, units: dict[str, Unit]) -> None:
    target = units[timer].values("Timer", "Unit")
    assert target in ([], [service]) if timer == PLAIN_TIMER else target == [service]
    assert (UNIT_DIR / service.replace("%i", "")).is_file()


# --- the failure notifier --------------------------------------------------------------------


def test_failure_notification_reaches_the_journal(units: dict[str, Unit]) -> None:
    unit = units[NOTIFY_SERVICE]
    assert unit.value("Service", "Type") == "oneshot"
    exec_start = unit.value("Service", "ExecStart")
    assert "%i" in exec_start, "the message must name the failed unit"
    assert "systemd-cat" in exec_start
    assert "--priority=err" in exec_start or "-p err" in exec_start
    assert unit.values("Service", "TimeoutStartSec")


def test_failure_notifier_does_not_fail_itself_on_a_notifier(units: dict[str, Unit]) -> None:
    """A notifier with OnFailure= pointing at itself would loop."""
    assert not units[NOTIFY_SERVICE].values("Unit", "OnFailure")


# --- README ----------------------------------------------------------------------------------


def test_readme_covers_install_credentials_timer_logs_and_template() -> None:
    readme = (UNIT_DIR / "README.md").read_text(encoding="utf-8")
    for needle in (
        "daemon-reload",
        "systemd-creds encrypt",
        "LoadCredential",
        "LoadCredentialEncrypted",
        "systemctl enable --now dpsk-orch-sync.timer",
        "journalctl -u dpsk-orch-sync.service",
        "dpsk-orch-sync@parkview.timer",
    ):
        assert needle in readme, needle


# --- systemd-analyze verify ------------------------------------------------------------------


def test_verify_script_is_executable() -> None:
    assert VERIFY_SCRIPT.is_file()
    assert os.access(VERIFY_SCRIPT, os.X_OK)


def test_verify_script_skips_cleanly_without_systemd_analyze(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not available")
    result = subprocess.run(
        [bash, str(VERIFY_SCRIPT)],
        env={"PATH": str(tmp_path)},  # an empty directory: no systemd-analyze on PATH
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "systemd-analyze not available; skipped" in result.stdout


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not on PATH"
)


@needs_systemd_analyze
def test_systemd_accepts_the_units() -> None:
    result = subprocess.run(
        [str(VERIFY_SCRIPT)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_systemd_analyze
def test_verify_catches_a_misspelt_hardening_directive(tmp_path: Path) -> None:
    for name in ALL_UNITS:
        shutil.copy(UNIT_DIR / name, tmp_path / name)
    broken = tmp_path / PLAIN_SERVICE
    text = broken.read_text(encoding="utf-8")
    assert "\nProtectClock=yes\n" in text
    broken.write_text(text.replace("\nProtectClock=yes\n", "\nProtectClok=yes\n"), encoding="utf-8")
    result = subprocess.run(
        [str(VERIFY_SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    if "skipped" in result.stdout:
        pytest.skip(result.stdout.strip())
    assert result.returncode != 0, result.stdout + result.stderr
    assert "ProtectClok" in result.stdout + result.stderr


# --- helpers ---------------------------------------------------------------------------------


def _comment_block_above(path: Path, line: int) -> str:
    """The contiguous comment lines right above a 1-based line, joined."""
    lines = path.read_text(encoding="utf-8").splitlines()
    block: list[str] = []
    i = line - 2
    while i >= 0 and lines[i].lstrip().startswith(("#", ";")):
        block.append(lines[i])
        i -= 1
    return "\n".join(reversed(block))
