"""Benchmark: how long a real `dpsk-orch sync` takes against the simulator, and how close it gets to the floor.

Not a pytest module (no test_ functions, not named test_*). Run it by hand:

    python tests/perf/bench_sync.py                 # the full benchmark (a long run; see README.md)
    python tests/perf/bench_sync.py --quick         # small sizes, a smoke check in seconds
    python tests/perf/bench_sync.py --json-out bench.json
    python tests/perf/bench_sync.py --in-process --only large --profile /tmp/prof   # where the time goes

Each property gets a fresh simulator served over HTTP (`serve_in_thread`), seeded with `seed_property`,
and a config that lists the unit pools explicitly in `source_pools` (no discovery, so only sync is
measured). Each run is the real CLI in its own process,

    python -m dpsk_orch -c CONFIG --db DB --json sync --all

so wall time includes interpreter start and imports. `--in-process` calls `dpsk_orch.app.run_sync`
instead (no process start; lets `--profile` see the client side).

Per run it reports: passphrases, requests the simulator received and how many were writes, 429s
(replies with status 429 in `sim.requests`), wall time, the floor

    floor = max(requests / rate_per_second, requests * latency / concurrency)

where rate_per_second is the lower of the simulator's limit and the client's own
`max_requests_per_minute` (the client paces itself even when the server has no limit), and wall/floor.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import os
import platform
import pstats
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dpsk_orch.simulator import Simulator, serve_in_thread
from dpsk_orch.simulator.core import RequestRecord

TENANT = "tenant-bench"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-not-for-production"

# What the benchmark's config asks of the client (config.py allows 1..2000 and 1..64).
CLIENT_MAX_REQUESTS_PER_MINUTE = 2000  # RuckusONE's documented per-tenant limit (API.md §8.3)
CLIENT_CONCURRENCY = 8  # the config default (DEFAULT_CONCURRENCY)

# The simulator's token bucket for the rate-limited property. API.md §8.3 documents 2000 calls a minute
# per tenant as a token bucket but not its depth. 100 is the simulator's default and the only vendor
# figure near it is the Tenant-Management API's "each second 100 calls will be returned"; a bucket
# that deep lets the client's own 20-token burst through and absorbs scheduling jitter, but not a
# client that ignores the limit.
SIM_RATE_LIMIT_PER_MINUTE = 2000
SIM_RATE_LIMIT_BURST = 100
SIM_LATENCY_S = 0.050
SIM_ACTIVITY_DELAY_S = 0.05  # the simulator's default: an accepted write takes effect 50 ms later

DEFAULT_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class PropertySpec:
    """One seeded property and the syncs run against it, in order."""

    name: str
    units: int
    per_unit: int
    latency_s: float
    rate_limit_per_minute: int | None
    rate_limit_burst: int
    runs: tuple[str, ...]  # labels; the first is the first sync, the rest are no-change syncs


FULL = (
    PropertySpec("limited", 200, 4, SIM_LATENCY_S, SIM_RATE_LIMIT_PER_MINUTE, SIM_RATE_LIMIT_BURST,
                 ("first sync", "no-change sync")),
    PropertySpec("large", 2000, 10, 0.0, None, SIM_RATE_LIMIT_BURST, ("first sync", "no-change sync")),
)
QUICK = (
    PropertySpec("limited", 20, 4, SIM_LATENCY_S, SIM_RATE_LIMIT_PER_MINUTE, SIM_RATE_LIMIT_BURST,
                 ("first sync", "no-change sync")),
    PropertySpec("large", 200, 10, 0.0, None, SIM_RATE_LIMIT_BURST, ("first sync", "no-change sync")),
)


@dataclass
class RunFigures:
    scenario: str
    run: str
    units: int
    per_unit: int
    passphrases: int
    latency_ms: float
    sim_rate_limit_per_minute: int | None
    sim_rate_limit_burst: int | None
    client_max_requests_per_minute: int
    client_concurrency: int
    mode: str  # "cli" or "in-process"
    status: str = "ok"  # ok, timeout, failed
    exit_code: int | None = None
    requests: int = 0  # received by the simulator
    writes: int = 0
    status_429: int = 0
    wall_s: float = 0.0
    sync_duration_s: float | None = None  # the CLI's own duration_s (sync only, no start-up)
    first_to_last_request_s: float = 0.0
    cli_cpu_s: float | None = None  # user+sys CPU of the CLI process (None in-process)
    bench_cpu_s: float = 0.0  # CPU of this process meanwhile: the simulator's threads (+ the sync, in-process)
    floor_s: float = 0.0
    floor_rate_s: float = 0.0
    floor_latency_s: float = 0.0
    ratio: float | None = None
    client_requests: int | None = None  # what the client counted (SyncResult.requests)
    client_throttled: int | None = None
    counts: dict[str, int] = field(default_factory=dict)  # actions done, from the CLI JSON
    by_kind: dict[str, int] = field(default_factory=dict)  # requests received, by endpoint
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---- request classification --------------------------------------------------------------------

KINDS: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (kind, method, re.compile(pattern)) for kind, method, pattern in (
        ("token", "POST", r"^/oauth2/token/"),
        ("pool query", "POST", r"^/dpskServices/query$"),
        ("passphrase query", "POST", r"^/dpskServices/[^/]+/passphrases/query$"),
        ("passphrase create", "POST", r"^/dpskServices/[^/]+/passphrases$"),
        ("passphrase patch", "PATCH", r"^/dpskServices/[^/]+/passphrases(/[^/]+)?$"),
        ("passphrase delete", "DELETE", r"^/dpskServices/[^/]+/passphrases$"),
        ("identity patch", "PATCH", r"^/identityGroups/[^/]+/identities/[^/]+$"),
        ("identity delete", "DELETE", r"^/identityGroups/[^/]+/identities/[^/]+$"),
        ("activity query", "POST", r"^/activities/query$"),
        ("activity get", "GET", r"^/activities/[^/]+$"),
    ))


def request_kind(record: RequestRecord) -> str:
    for kind, method, pattern in KINDS:
        if record.method == method and pattern.search(record.path):
            return kind
    return f"other {record.method}"


# ---- set-up ------------------------------------------------------------------------------------

def write_config(directory: Path, api_url: str, site_wide_pool: str, unit_pools: tuple[str, ...]) -> Path:
    """A config with the unit pools listed explicitly; the secret in a 0600 file beside it."""
    secret_file = directory / "r1.secret"
    secret_file.write_text(CLIENT_SECRET)
    secret_file.chmod(0o600)
    config = {
        "version": 1,
        "state": {"db": "state.db"},
        "controllers": {"sim": {
            "api_url": api_url, "tenant_id": TENANT, "client_id": CLIENT_ID, "client_secret_file": "r1.secret",
            "max_requests_per_minute": CLIENT_MAX_REQUESTS_PER_MINUTE, "concurrency": CLIENT_CONCURRENCY}},
        "orchestrators": {"bench": {
            "controller": "sim", "site_wide_pool": site_wide_pool, "source_pools": list(unit_pools),
            "username_template": "{username} [{pool_name}]"}},
    }
    path = directory / "orchestrators.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def clean_env() -> dict[str, str]:
    """The environment for the CLI: no DPSK_ORCH_* settings or systemd id leaking in from the shell."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("DPSK_ORCH_") and key != "INVOCATION_ID"}
    env["NO_COLOR"] = "1"
    return env


# ---- one run -----------------------------------------------------------------------------------

def run_cli(config_path: Path, db_path: Path, timeout_s: float) -> tuple[str, int | None, dict | None, str]:
    """The real CLI in its own process: (status, exit code, parsed JSON or None, stderr tail)."""
    command = [sys.executable, "-m", "dpsk_orch", "-c", str(config_path), "--db", str(db_path), "--json",
               "sync", "--all"]
    process = subprocess.Popen(command, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)  # only the process group this function started
        try:
            stdout, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        return "timeout", process.returncode, None, stderr[-2000:]
    try:
        document = json.loads(stdout)
    except ValueError:
        return "failed", process.returncode, None, (stderr or stdout)[-2000:]
    return "ok", process.returncode, document, stderr[-2000:]


def run_in_process(config_path: Path, db_path: Path, profile_path: Path | None,
                   no_client_limit: bool = False) -> tuple[str, int, dict, str]:
    """`app.run_sync` in this process (optionally under cProfile): the same work without process start.

    no_client_limit (a diagnostic, not a real configuration): the client's max_requests_per_minute is
    lifted past what the config allows, so time hidden behind the client's own pacing shows up."""
    from dpsk_orch import app as work
    from dpsk_orch.config import load_config
    from dpsk_orch.render import sync_result_json
    from dpsk_orch.sync.run import SyncOptions

    config = load_config(config_path, clean_env())
    orchestrators = work.select_orchestrators(config, [], True)
    store = work.open_store(db_path)
    profiler = cProfile.Profile() if profile_path else None
    original_settings = work.client_settings
    if no_client_limit:  # diagnostic: let the client send as fast as it can, to expose CPU costs
        work.client_settings = lambda *a: dataclasses.replace(original_settings(*a), max_requests_per_minute=10**9)
    try:
        if profiler:
            profiler.enable()
        results = work.run_sync(config, orchestrators, store, SyncOptions())
    finally:
        if profiler:
            profiler.disable()
        work.client_settings = original_settings
        store.close()
    if profiler and profile_path:
        profiler.dump_stats(profile_path)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
        print(f"--- profile (cumulative, top 30), saved to {profile_path} ---\n{text.getvalue()}")
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(20)
        print(f"--- profile (own time, top 20) ---\n{text.getvalue()}")
    code = work.overall_exit_code([result.exit_code for result in results])
    return "ok", code, {"orchestrators": [sync_result_json(result) for result in results]}, ""


def measure(spec: PropertySpec, label: str, sim: Simulator, config_path: Path, db_path: Path,
            args: argparse.Namespace, profile_path: Path | None) -> RunFigures:
    figures = RunFigures(
        scenario=f"{spec.name} {spec.units}x{spec.per_unit}", run=label, units=spec.units, per_unit=spec.per_unit,
        passphrases=spec.units * spec.per_unit, latency_ms=spec.latency_s * 1000,
        sim_rate_limit_per_minute=spec.rate_limit_per_minute,
        sim_rate_limit_burst=spec.rate_limit_burst if spec.rate_limit_per_minute else None,
        client_max_requests_per_minute=CLIENT_MAX_REQUESTS_PER_MINUTE, client_concurrency=CLIENT_CONCURRENCY,
        mode=("in-process, no client limit" if args.no_client_limit else "in-process") if args.in_process
        else "cli")
    if args.no_client_limit:
        figures.client_max_requests_per_minute = 0  # 0: lifted (diagnostic)
    sim.reset_requests()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = time.process_time()
    started = time.monotonic()
    if args.in_process:
        status, code, document, stderr = run_in_process(config_path, db_path, profile_path, args.no_client_limit)
    else:
        status, code, document, stderr = run_cli(config_path, db_path, args.timeout)
    figures.wall_s = time.monotonic() - started
    figures.bench_cpu_s = time.process_time() - cpu_before
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if not args.in_process:
        figures.cli_cpu_s = (children_after.ru_utime - children_before.ru_utime
                             + children_after.ru_stime - children_before.ru_stime)
    figures.status, figures.exit_code = status, code
    records = list(sim.requests)
    figures.requests = len(records)
    figures.writes = sum(1 for r in records if r.is_write)
    figures.status_429 = sum(1 for r in records if r.status == 429)
    figures.by_kind = dict(Counter(request_kind(r) for r in records).most_common())
    if records:
        figures.first_to_last_request_s = records[-1].at - records[0].at
    if document:
        result = document["orchestrators"][0]
        figures.counts = dict(result.get("counts") or {})
        figures.client_requests = result.get("requests")
        figures.client_throttled = result.get("throttled")
        figures.sync_duration_s = result.get("duration_s")
        figures.errors = list(result.get("errors") or [])[:10]
    elif stderr:
        figures.errors = [stderr.strip().splitlines()[-1] if stderr.strip() else "no output"]
    rates = [] if args.no_client_limit else [CLIENT_MAX_REQUESTS_PER_MINUTE / 60.0]
    if spec.rate_limit_per_minute:
        rates.append(spec.rate_limit_per_minute / 60.0)
    figures.floor_rate_s = figures.requests / min(rates) if rates else 0.0
    figures.floor_latency_s = figures.requests * spec.latency_s / CLIENT_CONCURRENCY
    figures.floor_s = max(figures.floor_rate_s, figures.floor_latency_s)
    figures.ratio = figures.wall_s / figures.floor_s if figures.floor_s else None
    if label != spec.runs[0] and figures.writes:
        figures.notes.append(f"NOT A NO-OP: the no-change sync sent {figures.writes} writes")
    if status == "ok" and code != 0:
        figures.notes.append(f"exit code {code}")
    if status == "timeout":
        figures.notes.append(f"stopped after {args.timeout:.0f}s; figures are what the simulator saw until then")
    return figures


def run_property(spec: PropertySpec, args: argparse.Namespace) -> list[RunFigures]:
    sim = Simulator(latency_s=spec.latency_s, rate_limit_per_minute=spec.rate_limit_per_minute,
                    rate_limit_burst=spec.rate_limit_burst, activity_delay_s=SIM_ACTIVITY_DELAY_S)
    sim.add_tenant(TENANT, CLIENT_ID, CLIENT_SECRET)
    seeding = time.monotonic()
    seeded = sim.seed_property(TENANT, units=spec.units, per_unit=spec.per_unit)
    log(f"[{spec.name}] seeded {spec.units} x {spec.per_unit} in {time.monotonic() - seeding:.1f}s")
    server = serve_in_thread(sim)
    results: list[RunFigures] = []
    try:
        with tempfile.TemporaryDirectory(prefix="dpsk-orch-bench-") as directory:
            config_path = write_config(Path(directory), server.url, seeded.site_wide_pool_name,
                                       seeded.unit_pool_names)
            db_path = Path(directory) / "state.db"
            for index, label in enumerate(spec.runs):
                profile_path = None
                if args.profile and args.in_process:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    profile_path = args.profile / f"{spec.name}-{index + 1}.pstats"
                log(f"[{spec.name}] {label} ...")
                figures = measure(spec, label, sim, config_path, db_path, args, profile_path)
                results.append(figures)
                log(f"[{spec.name}] {label}: {figures.requests} requests, {figures.writes} writes, "
                    f"{figures.status_429} x 429, {figures.wall_s:.1f}s ({figures.status})")
                if figures.status != "ok":
                    log(f"[{spec.name}] skipping the rest of this property after a {figures.status} run")
                    break
            sim.settle()
            site_wide = len(sim.passphrases(TENANT, seeded.site_wide_pool_id))
            if results and results[0].status == "ok" and site_wide != spec.units * spec.per_unit:
                results[-1].notes.append(f"site-wide pool holds {site_wide}, expected {spec.units * spec.per_unit}")
    finally:
        server.stop()
    return results


# ---- output ------------------------------------------------------------------------------------

COLUMNS = (
    ("scenario", "scenario", "<"), ("run", "run", "<"), ("passphrases", "pp", ">"), ("requests", "requests", ">"),
    ("writes", "writes", ">"), ("status_429", "429s", ">"), ("wall", "wall s", ">"), ("sync", "sync s", ">"),
    ("floor", "floor s", ">"), ("ratio", "wall/floor", ">"), ("status", "status", "<"),
)


def table(rows: list[RunFigures]) -> str:
    cells = [{
        "scenario": f"{r.scenario} lat={r.latency_ms:g}ms "
                    + (f"lim={r.sim_rate_limit_per_minute}/min b={r.sim_rate_limit_burst}"
                       if r.sim_rate_limit_per_minute else "no limit"),
        "run": r.run, "passphrases": str(r.passphrases), "requests": str(r.requests), "writes": str(r.writes),
        "status_429": str(r.status_429), "wall": f"{r.wall_s:.1f}",
        "sync": "-" if r.sync_duration_s is None else f"{r.sync_duration_s:.1f}",
        "floor": f"{r.floor_s:.1f}", "ratio": "-" if r.ratio is None else f"{r.ratio:.2f}",
        "status": r.status if r.exit_code in (0, None) else f"{r.status} exit={r.exit_code}",
    } for r in rows]
    widths = {key: max(len(title), *(len(c[key]) for c in cells)) for key, title, _ in COLUMNS}
    lines = ["  ".join(f"{title:{align}{widths[key]}}" for key, title, align in COLUMNS),
             "  ".join("-" * widths[key] for key, _, _ in COLUMNS)]
    lines += ["  ".join(f"{c[key]:{align}{widths[key]}}" for key, _, align in COLUMNS) for c in cells]
    return "\n".join(lines)


def details(rows: list[RunFigures]) -> str:
    lines = []
    for r in rows:
        lines.append(f"{r.scenario} / {r.run}:")
        lines.append(f"  requests by kind: {', '.join(f'{k} {v}' for k, v in r.by_kind.items()) or 'none'}")
        lines.append(f"  actions: {', '.join(f'{k}={v}' for k, v in sorted(r.counts.items())) or 'none'}"
                     f"; client counted {r.client_requests} requests, {r.client_throttled} throttled")
        lines.append(f"  floor parts: rate {r.floor_rate_s:.1f}s, latency/concurrency {r.floor_latency_s:.1f}s; "
                     f"first->last request {r.first_to_last_request_s:.1f}s")
        cli_cpu = "-" if r.cli_cpu_s is None else f"{r.cli_cpu_s:.1f}s"
        lines.append(f"  CPU: CLI process {cli_cpu}, benchmark process (simulator"
                     f"{' + sync' if r.mode.startswith('in-process') else ''}) {r.bench_cpu_s:.1f}s")
        lines.extend(f"  note: {note}" for note in r.notes)
        lines.extend(f"  error: {error}" for error in r.errors)
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine()}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (20x4 and 200x10): a smoke check")
    parser.add_argument("--json-out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--only", choices=("limited", "large"), help="run one property only")
    parser.add_argument("--size", metavar="UNITSxPER", help="override the property size, e.g. 500x10")
    parser.add_argument("--in-process", action="store_true", help="app.run_sync in this process, not the CLI")
    parser.add_argument("--profile", type=Path, help="with --in-process: cProfile each sync, .pstats into DIR")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"stop a CLI run after this many seconds (default {DEFAULT_TIMEOUT_S:.0f})")
    parser.add_argument("--no-client-limit", action="store_true",
                        help="diagnostic, with --in-process: lift the client's own 2000/min pacing (beyond what "
                             "the config allows) to expose CPU costs it hides")
    args = parser.parse_args(argv)
    if (args.profile or args.no_client_limit) and not args.in_process:
        parser.error("--profile and --no-client-limit need --in-process")
    specs = [spec for spec in (QUICK if args.quick else FULL) if args.only in (None, spec.name)]
    if args.size:
        units, _, per_unit = args.size.lower().partition("x")
        specs = [dataclasses.replace(spec, units=int(units), per_unit=int(per_unit)) for spec in specs]
    rows: list[RunFigures] = []
    for spec in specs:
        rows.extend(run_property(spec, args))
    print(table(rows))
    print()
    print(details(rows))
    info = machine()
    print(f"\nmachine: nproc={info['nproc']} python={info['python']} {info['platform']}")
    print(f"client: max_requests_per_minute={CLIENT_MAX_REQUESTS_PER_MINUTE} concurrency={CLIENT_CONCURRENCY}; "
          f"simulator activity_delay={SIM_ACTIVITY_DELAY_S * 1000:g}ms")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({
            "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": info,
            "quick": args.quick, "scenarios": [asdict(r) for r in rows]}, indent=2) + "\n")
        print(f"figures written to {args.json_out}")
    problems = [r for r in rows if r.status != "ok" or any(n.startswith("NOT A NO-OP") for n in r.notes)]
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
