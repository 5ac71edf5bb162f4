"""Prometheus textfile-collector metrics, written atomically (temp file + rename) after a sync."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from dpsk_orch.sync.run import SyncResult

PREFIX = "dpsk_orch"


def metrics_text(results: list[SyncResult], now_s: float | None = None) -> str:
    """The exposition text for one run's results, one series per orchestrator (and kind)."""
    now_s = time.time() if now_s is None else now_s
    families: dict[str, tuple[str, str, list[str]]] = {
        "last_run_timestamp_seconds": ("gauge", "When the last sync of the orchestrator ended.", []),
        "last_success_timestamp_seconds": ("gauge", "When the last sync with exit code 0 ended.", []),
        "last_exit_code": ("gauge", "Exit code of the last sync.", []),
        "run_duration_seconds": ("gauge", "Duration of the last sync.", []),
        "actions": ("gauge", "Actions of the last sync by kind (failed_* did not succeed).", []),
        "open_flags": ("gauge", "Open flags by kind after the last sync.", []),
        "requests": ("gauge", "RuckusONE requests the last sync sent.", []),
        "throttled_responses": ("gauge", "429 responses the last sync received.", []),
    }

    def add(family: str, labels: dict[str, str], value: float) -> None:
        label_text = ",".join(f'{key}="{escape(text)}"' for key, text in labels.items())
        families[family][2].append(f"{PREFIX}_{family}{{{label_text}}} {value:g}")

    for result in results:
        who = {"orchestrator": result.orchestrator}
        add("last_run_timestamp_seconds", who, now_s)
        if result.exit_code == 0:
            add("last_success_timestamp_seconds", who, now_s)
        add("last_exit_code", who, result.exit_code)
        add("run_duration_seconds", who, round(result.duration_s, 3))
        for kind, count in sorted(result.counts().items()):
            if not kind.startswith("flag_"):
                add("actions", {**who, "kind": kind}, count)
        for kind, count in sorted(result.open_flags.items()):
            add("open_flags", {**who, "kind": kind}, count)
        add("requests", who, result.requests)
        add("throttled_responses", who, result.throttled)
    lines = []
    for family, (metric_type, help_text, samples) in families.items():
        if samples:
            lines += [f"# HELP {PREFIX}_{family} {help_text}", f"# TYPE {PREFIX}_{family} {metric_type}", *samples]
    return "\n".join(lines) + "\n"


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_metrics(path: Path, results: list[SyncResult]) -> None:
    """Replace `path` atomically so the node exporter never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(metrics_text(results))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
