"""The Prometheus textfile written by `sync --metrics-file`: valid exposition format, written atomically,
and values that say what the run did."""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dpsk_orch import metrics
from dpsk_orch.cli import app
from dpsk_orch.metrics import metrics_text, write_metrics
from dpsk_orch.simulator import Simulator, serve_in_thread
from dpsk_orch.simulator.server import write_simulator_config
from dpsk_orch.state import FlagSpec, StateStore
from dpsk_orch.sync.apply import ApplyReport
from dpsk_orch.sync.plan import Action, Plan
from dpsk_orch.sync.run import SyncResult

NOW_S = 1764800000.25  # a timestamp that `%g` would round to 1.7648e+09

# ---- a strict parser of the text exposition format (0.0.4) -----------------------------------

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|NaN)")


class ExpositionError(ValueError):
    pass


@dataclass
class Family:
    name: str
    type: str | None = None
    help: str | None = None
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


def parse_exposition(text: str) -> dict[str, Family]:
    """Families by name; ExpositionError (with the line number) for anything the format does not allow."""
    if text == "":
        return {}
    if not text.endswith("\n"):
        raise ExpositionError("the text must end with a newline")
    families: dict[str, Family] = {}
    finished: set[str] = set()
    current: str | None = None
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        try:
            name = parse_line(line, families)
        except ExpositionError as error:
            raise ExpositionError(f"line {number}: {error}: {line!r}") from None
        if name != current:
            if name in finished:
                raise ExpositionError(f"line {number}: lines of {name} are not all together")
            if current is not None:
                finished.add(current)
            current = name
    return families


def parse_line(line: str, families: dict[str, Family]) -> str:
    """Parse one line into `families`; return the family it belongs to."""
    if line.startswith("#"):
        return parse_comment(line, families)
    name, labels, value = parse_sample(line)
    family = families.get(name)
    if family is None or family.type is None:
        raise ExpositionError(f"sample of {name} before its TYPE")
    if any(existing == labels for existing, _ in family.samples):
        raise ExpositionError(f"duplicate series {name}{labels}")
    family.samples.append((labels, value))
    return name


def parse_comment(line: str, families: dict[str, Family]) -> str:
    match = re.fullmatch(r"# (HELP|TYPE) (\S+) (.*)", line)
    if not match:
        raise ExpositionError("a comment other than HELP or TYPE")
    keyword, name, rest = match.groups()
    if not METRIC_NAME.fullmatch(name):
        raise ExpositionError(f"bad metric name {name}")
    family = families.setdefault(name, Family(name))
    if family.samples:
        raise ExpositionError(f"{keyword} of {name} after its samples")
    if keyword == "TYPE":
        if family.type is not None or rest not in TYPES:
            raise ExpositionError(f"second or unknown TYPE for {name}")
        family.type = rest
    else:
        if family.help is not None:
            raise ExpositionError(f"second HELP for {name}")
        family.help = unescape(rest, {"\\": "\\", "n": "\n"})
    return name


def parse_sample(line: str) -> tuple[str, dict[str, str], float]:
    match = METRIC_NAME.match(line)
    if not match:
        raise ExpositionError("no metric name")
    name, position = match.group(), match.end()
    labels: dict[str, str] = {}
    if line[position:position + 1] == "{":
        labels, position = parse_labels(line, position + 1)
    parts = line[position:].split(" ")
    if len(parts) not in (2, 3) or parts[0] != "":
        raise ExpositionError("expected one space, a value and an optional timestamp")
    if not FLOAT.fullmatch(parts[1]):
        raise ExpositionError(f"bad value {parts[1]}")
    if len(parts) == 3 and not re.fullmatch(r"-?\d+", parts[2]):
        raise ExpositionError(f"bad timestamp {parts[2]}")
    return name, labels, float(parts[1])


def parse_labels(line: str, position: int) -> tuple[dict[str, str], int]:
    """Labels from just after `{` to just after `}`: name="value" pairs, comma separated."""
    labels: dict[str, str] = {}
    while line[position:position + 1] != "}":
        match = LABEL_NAME.match(line, position)
        if not match or line[match.end():match.end() + 2] != '="':
            raise ExpositionError(f"bad label at column {position}")
        value, position = parse_label_value(line, match.end() + 2)
        if match.group() in labels:
            raise ExpositionError(f"label {match.group()} twice")
        labels[match.group()] = value
        if line[position:position + 1] == ",":
            position += 1
        elif line[position:position + 1] != "}":
            raise ExpositionError(f"expected , or }} at column {position}")
    return labels, position + 1


def parse_label_value(line: str, position: int) -> tuple[str, int]:
    """A label value from just after its opening quote; return it unescaped and the index after its quote."""
    chars = []
    while position < len(line):
        char = line[position]
        if char == '"':
            return "".join(chars), position + 1
        if char == "\\":
            escaped = line[position + 1:position + 2]
            if escaped not in ("\\", '"', "n"):
                raise ExpositionError(f"bad escape \\{escaped}")
            chars.append("\n" if escaped == "n" else escaped)
            position += 2
            continue
        chars.append(char)
        position += 1
    raise ExpositionError("unterminated label value")


def unescape(text: str, escapes: dict[str, str]) -> str:
    out, index = [], 0
    while index < len(text):
        if text[index] == "\\":
            escaped = text[index + 1:index + 2]
            if escaped not in escapes:
                raise ExpositionError(f"bad escape \\{escaped}")
            out.append(escapes[escaped])
            index += 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def value_of(families: dict[str, Family], name: str, **labels: str) -> float:
    matches = [value for sample_labels, value in families[name].samples if sample_labels == labels]
    assert len(matches) == 1, f"{name}{labels}: {len(matches)} samples"
    return matches[0]


# ---- the parser itself is strict --------------------------------------------------------------

@pytest.mark.parametrize("text", [
    'x{a="1"} 1\n',                                          # no TYPE
    "# TYPE x gauge\nx 1",                                   # no final newline
    '# TYPE x gauge\nx{a="\\t"} 1\n',                        # bad escape
    '# TYPE x gauge\nx{a="1} 1\n',                           # unterminated label value
    "# TYPE x gauge\nx one\n",                               # value not a float
    '# TYPE x gauge\nx{a="1"} 1\nx{a="1"} 2\n',              # duplicate series
    "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx 2\n",       # a family split up
    "# TYPE 1x gauge\n1x 1\n",                               # bad metric name
    "# TYPE x gauge\nx  1\n",                                # two spaces
    "# TYPE x gauge\n\nx 1\n",                               # blank line
])
def test_parser_rejects_what_the_format_forbids(text: str) -> None:
    with pytest.raises(ExpositionError):
        parse_exposition(text)


def test_parser_reads_escaped_labels_and_special_values() -> None:
    families = parse_exposition('# HELP x a \\\\ b\n# TYPE x gauge\nx{a="q\\"b\\\\c\\nd",b=""} +Inf\nx NaN\n')
    assert families["x"].help == "a \\ b"
    assert families["x"].samples[0] == ({"a": 'q"b\\c\nd', "b": ""}, math.inf)


# ---- a made-up result ---------------------------------------------------------------------------

def action(kind: str, number: int = 0) -> Action:
    return Action(kind=kind, pool_id="p1", pool_name="Unit101DPSK", username=f"resident{number}",
                  fingerprint=f"{number:064x}", reason="test")


def made_up_result(name: str = "parkview", exit_code: int = 0) -> SyncResult:
    """3 creates (one failed), 1 update, 1 adopt; 2 orphan flags and 1 removal raised; 2 orphans still open."""
    creates = [action("create", n) for n in range(3)]
    actions = (*creates, action("update", 3), action("adopt", 4))
    flags = (FlagSpec("orphan", "orphan:a"), FlagSpec("orphan", "orphan:b"), FlagSpec("removal", "removal:c"))
    report = ApplyReport()
    for item in actions:
        report.record(item, ok=item is not creates[2], message="" if item is not creates[2] else "HTTP 500")
    return SyncResult(name, dry_run=False, exit_code=exit_code, run_id=7, plan=Plan(name, actions, flags),
                      report=report, duration_s=12.3456, requests=42, throttled=3, open_flags={"orphan": 2})


def test_values_say_what_the_run_did() -> None:
    families = parse_exposition(metrics_text([made_up_result()], now_s=NOW_S))
    who = {"orchestrator": "parkview"}
    assert value_of(families, "dpsk_orch_last_run_timestamp_seconds", **who) == NOW_S
    assert value_of(families, "dpsk_orch_last_success_timestamp_seconds", **who) == NOW_S
    assert value_of(families, "dpsk_orch_last_exit_code", **who) == 0
    assert value_of(families, "dpsk_orch_run_duration_seconds", **who) == 12.346
    assert value_of(families, "dpsk_orch_requests", **who) == 42
    assert value_of(families, "dpsk_orch_throttled_responses", **who) == 3
    actions = {labels["kind"]: value for labels, value in families["dpsk_orch_actions"].samples}
    assert actions == {"create": 2, "failed_create": 1, "update": 1, "adopt": 1, "revoke": 0, "unrevoke": 0,
                       "delete": 0}
    flags = {labels["kind"]: value for labels, value in families["dpsk_orch_open_flags"].samples}
    assert flags == {"orphan": 2, "removal": 0, "conflict": 0, "missing_vlan": 0, "target_missing": 0,
                     "pool_gone": 0}


def test_every_family_has_help_and_type_gauge() -> None:
    families = parse_exposition(metrics_text([made_up_result(), made_up_result("elm-street", 1)], now_s=NOW_S))
    assert set(families) == {f"dpsk_orch_{name}" for name in metrics.FAMILIES}
    for family in families.values():
        assert family.type == "gauge" and family.help
        assert {labels["orchestrator"] for labels, _ in family.samples} <= {"parkview", "elm-street"}


def test_timestamps_keep_every_digit() -> None:
    text = metrics_text([made_up_result()], now_s=NOW_S)
    assert 'dpsk_orch_last_run_timestamp_seconds{orchestrator="parkview"} 1764800000.25\n' in text
    assert "e+09" not in text


def test_label_values_are_escaped() -> None:
    families = parse_exposition(metrics_text([made_up_result('odd "name"\\ with\nnewline')], now_s=NOW_S))
    assert value_of(families, "dpsk_orch_last_exit_code", orchestrator='odd "name"\\ with\nnewline') == 0


def test_no_results_make_an_empty_but_valid_file() -> None:
    assert metrics_text([], now_s=NOW_S) == ""
    assert parse_exposition("") == {}


def test_a_run_that_was_never_recorded_reports_no_open_flags() -> None:
    result = SyncResult("parkview", dry_run=False, exit_code=75, errors=["unreachable"])
    families = parse_exposition(metrics_text([result], now_s=NOW_S))
    assert "dpsk_orch_open_flags" not in families
    assert "dpsk_orch_last_success_timestamp_seconds" not in families
    assert value_of(families, "dpsk_orch_last_exit_code", orchestrator="parkview") == 75


# ---- last success: from the run history, else from the file it replaces ------------------------

def test_a_failed_run_keeps_the_last_success_from_the_run_history(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    ok_run = store.save_run_start("parkview", "sync", "manual", None)
    store.save_run_end(ok_run, "ok", 0, {}, [], 10, 0)
    ended_at = store.load_runs("parkview", 1)[0]["ended_at"]
    failed_run = store.save_run_start("parkview", "sync", "manual", None)
    store.save_run_end(failed_run, "partial", 1, {}, ["boom"], 10, 0)
    discover_run = store.save_run_start("parkview", "discover", "manual", None)
    store.save_run_end(discover_run, "ok", 0, {}, [], 1, 0)
    path = tmp_path / "dpsk-orch.prom"
    assert write_metrics(path, [made_up_result(exit_code=1)], store=store, now_s=NOW_S)
    store.close()
    families = parse_exposition(path.read_text())
    expected = datetime.fromisoformat(ended_at.replace("Z", "+00:00")).timestamp()
    assert value_of(families, "dpsk_orch_last_success_timestamp_seconds", orchestrator="parkview") == expected
    assert value_of(families, "dpsk_orch_last_exit_code", orchestrator="parkview") == 1


def test_a_failed_run_keeps_the_last_success_of_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "dpsk-orch.prom"
    write_metrics(path, [made_up_result(), made_up_result("elm-street")], now_s=NOW_S)
    write_metrics(path, [made_up_result(exit_code=1), made_up_result("elm-street", 0)], now_s=NOW_S + 300)
    families = parse_exposition(path.read_text())
    assert value_of(families, "dpsk_orch_last_success_timestamp_seconds", orchestrator="parkview") == NOW_S
    assert value_of(families, "dpsk_orch_last_success_timestamp_seconds", orchestrator="elm-street") == NOW_S + 300
    assert value_of(families, "dpsk_orch_last_run_timestamp_seconds", orchestrator="parkview") == NOW_S + 300


def test_a_run_that_never_succeeded_has_no_last_success(tmp_path: Path) -> None:
    path = tmp_path / "dpsk-orch.prom"
    write_metrics(path, [made_up_result(exit_code=3)], now_s=NOW_S)
    assert "dpsk_orch_last_success_timestamp_seconds" not in parse_exposition(path.read_text())


# ---- atomic writing -----------------------------------------------------------------------------

def test_written_by_rename_from_a_temp_file_in_the_same_directory(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "textfile" / "dpsk-orch.prom"
    path.parent.mkdir()
    path.write_text("old\n")
    renames: list[tuple[Path, Path, str]] = []
    real_replace = os.replace

    def spy(source: str, target: str) -> None:
        renames.append((Path(source), Path(target), Path(target).read_text()))
        real_replace(source, target)

    monkeypatch.setattr(metrics.os, "replace", spy)
    assert write_metrics(path, [made_up_result()], now_s=NOW_S)
    [(source, target, before)] = renames
    assert source.parent == target.parent == path.parent
    assert not source.name.endswith(".prom")  # the node exporter only reads *.prom
    assert before == "old\n"  # the old file stayed whole until the rename
    assert sorted(p.name for p in path.parent.iterdir()) == ["dpsk-orch.prom"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by node-exporter despite UMask=0077
    parse_exposition(path.read_text())


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "dpsk-orch.prom"
    path.write_text("old\n")

    def fail(source: str, target: str) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(metrics.os, "replace", fail)
    monkeypatch.setattr(metrics.logger, "propagate", True)
    assert write_metrics(path, [made_up_result()], now_s=NOW_S) is False
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["dpsk-orch.prom"]
    assert "cannot write the metrics file" in caplog.text


def test_an_interrupted_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(source: str, target: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(metrics.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_metrics(tmp_path / "dpsk-orch.prom", [made_up_result()], now_s=NOW_S)
    assert list(tmp_path.iterdir()) == []


# ---- through the CLI ----------------------------------------------------------------------------

@pytest.fixture
def sim_config(tmp_path: Path) -> Iterator[Path]:
    """A running simulator (3 units x 2 passphrases) and the config `dpsk-orch simulator` would write."""
    sim = Simulator(activity_delay_s=0.01)
    sim.add_tenant("tenant-metrics", "metrics-client", "metrics-secret")
    seeded = sim.seed_property("tenant-metrics", units=3, per_unit=2, with_orphan=True)
    server = serve_in_thread(sim)
    try:
        yield write_simulator_config(tmp_path / "sim", server.url, seeded, "metrics-client", "metrics-secret")
    finally:
        server.stop()


def test_sync_metrics_file_from_the_cli(sim_config: Path, tmp_path: Path) -> None:
    path = tmp_path / "textfile" / "dpsk-orch.prom"
    runner = CliRunner()
    dry = runner.invoke(app, ["-c", str(sim_config), "sync", "--dry-run", "--metrics-file", str(path)],
                        env={"NO_COLOR": "1"})
    assert dry.exit_code == 0, dry.output
    assert not path.exists()  # a dry run is not a run: it writes no metrics
    result = runner.invoke(app, ["-c", str(sim_config), "sync", "--metrics-file", str(path)], env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    families = parse_exposition(path.read_text())
    assert value_of(families, "dpsk_orch_last_exit_code", orchestrator="parkview") == 0
    assert value_of(families, "dpsk_orch_actions", orchestrator="parkview", kind="create") == 6
    assert value_of(families, "dpsk_orch_open_flags", orchestrator="parkview", kind="orphan") == 1
    assert value_of(families, "dpsk_orch_requests", orchestrator="parkview") > 0


def test_last_success_comes_from_the_run_history_when_the_metrics_file_was_lost(tmp_path: Path) -> None:
    sim = Simulator(activity_delay_s=0.01)
    sim.add_tenant("tenant-metrics", "metrics-client", "metrics-secret")
    seeded = sim.seed_property("tenant-metrics", units=2, per_unit=1)
    server = serve_in_thread(sim)
    try:
        config = write_simulator_config(tmp_path / "sim", server.url, seeded, "metrics-client", "metrics-secret")
        path = tmp_path / "textfile" / "dpsk-orch.prom"
        command = ["-c", str(config), "sync", "--metrics-file", str(path)]
        runner = CliRunner()
        assert runner.invoke(app, command, env={"NO_COLOR": "1"}).exit_code == 0
        succeeded_at = value_of(parse_exposition(path.read_text()), "dpsk_orch_last_success_timestamp_seconds",
                                orchestrator="parkview")
        path.unlink()  # e.g. a fresh textfile directory
        sim.fail_requests("POST", r"^/venues/wifiNetworks/query$", status=403)

        failed = runner.invoke(app, command, env={"NO_COLOR": "1"})
    finally:
        server.stop()

    assert failed.exit_code == 1
    families = parse_exposition(path.read_text())
    assert value_of(families, "dpsk_orch_last_exit_code", orchestrator="parkview") == 1
    last_success = value_of(families, "dpsk_orch_last_success_timestamp_seconds", orchestrator="parkview")
    assert abs(last_success - succeeded_at) < 2
