"""Prometheus textfile-collector metrics, written atomically (temp file + rename) after a sync.

One series per orchestrator (and kind). The node exporter reads every `*.prom` file in its textfile
directory; a file replaced by rename is never seen half written.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

from dpsk_orch.flags import FLAG_KINDS
from dpsk_orch.log import get_logger
from dpsk_orch.state import StateStore
from dpsk_orch.sync.plan import WRITE_KINDS
from dpsk_orch.sync.run import SyncResult

PREFIX = "dpsk_orch"
LAST_SUCCESS = "last_success_timestamp_seconds"
# name -> (type, help). The order here is the order in the file.
FAMILIES: dict[str, tuple[str, str]] = {
    "last_run_timestamp_seconds": ("gauge", "When the last sync of the orchestrator ended (Unix time)."),
    LAST_SUCCESS: ("gauge", "When the last sync with exit code 0 ended (Unix time), from the run history."),
    "last_exit_code": ("gauge", "Exit code of the last sync: 0 ok, 1 partial, 2 config, 3 blocked, 75 busy."),
    "run_duration_seconds": ("gauge", "Duration of the last sync."),
    "actions": ("gauge", "Actions of the last sync by kind (failed_* did not succeed)."),
    "open_flags": ("gauge", "Open flags by kind after the last sync."),
    "requests": ("gauge", "RuckusONE requests the last sync sent."),
    "throttled_responses": ("gauge", "429 responses the last sync received."),
}
Sample = tuple[str, dict[str, str], float]  # (family, labels, value)
logger = get_logger()


def metrics_text(results: list[SyncResult], now_s: float | None = None,
                 last_success_s: Mapping[str, float] | None = None) -> str:
    """The exposition text for one run's results. `last_success_s` gives, per orchestrator, when its last
    successful sync ended, for those that did not succeed this time (a run with exit 0 counts as now)."""
    now_s = time.time() if now_s is None else now_s
    samples: list[Sample] = []
    for result in results:
        samples += result_samples(result, now_s, (last_success_s or {}).get(result.orchestrator))
    return render_families(samples)


def result_samples(result: SyncResult, now_s: float, last_success_s: float | None) -> list[Sample]:
    """Every sample of one orchestrator's sync."""
    who = {"orchestrator": result.orchestrator}
    if result.exit_code == 0:
        last_success_s = now_s
    samples: list[Sample] = [("last_run_timestamp_seconds", who, now_s)]
    if last_success_s is not None:
        samples.append((LAST_SUCCESS, who, last_success_s))
    samples += [("last_exit_code", who, result.exit_code), ("run_duration_seconds", who, round(result.duration_s, 3))]
    samples += [("actions", {**who, "kind": kind}, count) for kind, count in sorted(action_counts(result).items())]
    if result.run_id is not None:  # open flags are counted only once the run is recorded
        samples += [("open_flags", {**who, "kind": kind}, count)
                    for kind, count in sorted(with_zeros(result.open_flags, FLAG_KINDS).items())]
    samples += [("requests", who, result.requests), ("throttled_responses", who, result.throttled)]
    return samples


def action_counts(result: SyncResult) -> dict[str, int]:
    """Actions by kind, the writes always present (0 when none), flags left out (they have open_flags)."""
    counts = {kind: count for kind, count in result.counts().items() if not kind.startswith("flag_")}
    return with_zeros(counts, WRITE_KINDS)


def with_zeros(counts: Mapping[str, int], kinds: Iterable[str]) -> dict[str, int]:
    return {**dict.fromkeys(kinds, 0), **counts}


def render_families(samples: list[Sample]) -> str:
    """HELP and TYPE once per family, then its samples; families without samples are left out."""
    lines = []
    for family, (metric_type, help_text) in FAMILIES.items():
        mine = [sample for sample in samples if sample[0] == family]
        if mine:
            lines += [f"# HELP {PREFIX}_{family} {escape_help(help_text)}", f"# TYPE {PREFIX}_{family} {metric_type}"]
            lines += [f"{PREFIX}_{family}{{{label_text(labels)}}} {format_value(value)}" for _, labels, value in mine]
    return "\n".join(lines) + "\n" if lines else ""


def label_text(labels: Mapping[str, str]) -> str:
    return ",".join(f'{key}="{escape(value)}"' for key, value in labels.items())


def escape(text: str) -> str:
    """A label value: backslash, double quote and newline escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text: backslash and newline escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Integers as integers, other floats in full precision (never `1.73326e+09` for a timestamp)."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


# ---- last success -----------------------------------------------------------------------------

def load_last_success_times(store: StateStore, names: Iterable[str]) -> dict[str, float]:
    """When each orchestrator's last sync with exit code 0 ended, from the run history (Unix time)."""
    times = {}
    for name in names:
        row = next(store.db.query(
            "SELECT MAX(ended_at) AS ended_at FROM runs WHERE orchestrator = ? AND command = 'sync' "
            "AND exit_code = 0 AND ended_at IS NOT NULL", [name]))
        if row["ended_at"]:
            times[name] = datetime.fromisoformat(row["ended_at"].replace("Z", "+00:00")).timestamp()
    return times


LAST_SUCCESS_LINE = re.compile(
    rf'^{PREFIX}_{LAST_SUCCESS}\{{orchestrator="((?:[^"\\]|\\.)*)"\}} (\S+)$', re.MULTILINE)


def read_last_success_times(path: Path) -> dict[str, float]:
    """The last-success times a previous run wrote to `path` (none if it is missing or unreadable)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return {}
    times = {}
    for match in LAST_SUCCESS_LINE.finditer(text):
        try:
            times[unescape(match.group(1))] = float(match.group(2))
        except ValueError:
            continue
    return times


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


# ---- writing ----------------------------------------------------------------------------------

def write_metrics(path: Path, results: list[SyncResult], store: StateStore | None = None,
                  now_s: float | None = None) -> bool:
    """Replace `path` atomically so the node exporter never reads half a file. The last success of an
    orchestrator that failed this run comes from `store`'s run history, else from the file being replaced.
    A file that cannot be written is logged as an error, not raised: the sync's exit code stands."""
    names = [result.orchestrator for result in results]
    last_success = read_last_success_times(path)
    if store is not None:
        last_success.update(load_last_success_times(store, names))
    try:
        replace_file(path, metrics_text(results, now_s, last_success))
    except OSError as error:
        logger.error("cannot write the metrics file %s: %s", path, error)
        return False
    return True


def replace_file(path: Path, text: str) -> None:
    """Write `text` to a temp file beside `path` (same file system), fsync, mode 0644, rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # node-exporter runs as another user; the service's umask is 0077
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
