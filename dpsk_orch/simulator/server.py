"""The simulator on the wire: a threaded HTTP/1.1 server on 127.0.0.1, or an httpx transport in-process."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import yaml

from dpsk_orch.simulator.core import Reply, Simulator
from dpsk_orch.simulator.seed import SeededProperty

SIM_TENANT = "sim-tenant"
SIM_CLIENT_ID = "sim-client"
SIM_CLIENT_SECRET = "sim-secret-not-for-production"
SHUTDOWN_POLL_S = 0.02  # how often the serving thread checks for stop(); the stdlib's 0.5 s makes stop() slow


class SimulatorTransport(httpx.AsyncBaseTransport):
    """Hands httpx requests straight to a Simulator, with its latency; a dropped reply raises as httpx would."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        if self.sim.latency_s:
            await asyncio.sleep(self.sim.latency_s)
        reply = self.sim.handle(request.method, request.url.path, dict(request.url.params),
                                {key.lower(): value for key, value in request.headers.items()}, body)
        if reply.drop:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.Response(reply.status, headers=reply_headers(reply), content=reply.content())


def reply_headers(reply: Reply) -> dict[str, str]:
    return {"Content-Type": "application/json", **reply.headers}


@dataclass
class RunningServer:
    url: str
    port: int
    _server: ThreadingHTTPServer
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_in_thread(sim: Simulator, port: int = 0) -> RunningServer:
    """Serve `sim` on 127.0.0.1:`port` (0: a free port) from a background thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(sim))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_S},
                              name="dpsk-orch-simulator", daemon=True)
    thread.start()
    actual_port = server.server_address[1]
    return RunningServer(f"http://127.0.0.1:{actual_port}", actual_port, server, thread)


def handler_for(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes: without this, 40 ms a request

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if sim.latency_s:
                time.sleep(sim.latency_s)
            reply = sim.handle(self.command, url.path, dict(parse_qsl(url.query)),
                               {key.lower(): value for key, value in self.headers.items()}, body)
            if reply.drop:
                self.close_connection = True
                return
            content = reply.content()
            self.send_response(reply.status)
            for key, value in reply_headers(reply).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's name)
            """Quiet: the simulator's request log is `Simulator.requests`."""

    return Handler


def write_simulator_config(directory: Path, api_url: str, seeded: SeededProperty, client_id: str,
                           client_secret: str) -> Path:
    """A config like a real one for a seeded property: discovery on the venue, the secret in a 0600 file."""
    directory.mkdir(parents=True, exist_ok=True)
    secret_file = directory / "r1.secret"
    secret_file.write_text(client_secret)
    secret_file.chmod(0o600)
    config = {
        "version": 1,
        "state": {"db": "state.db"},
        "controllers": {"simulator": {"api_url": api_url, "tenant_id": seeded.tenant_id, "client_id": client_id,
                                      "client_secret_file": "r1.secret"}},
        "orchestrators": {"parkview": {
            "controller": "simulator", "venue_id": seeded.venue_id, "site_wide_pool": seeded.site_wide_pool_name,
            "discovery": {"enabled": True, "include": ["Unit*DPSK"]},
            "username_template": "{username} [{pool_name}]",
        }},
    }
    path = directory / "orchestrators.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def run_simulator_command(port: int, units: int, per_unit: int, latency_ms: int, rate_limit_per_minute: int | None,
                          write_config: Path | None, print_fn: Callable[[str], None]) -> None:
    """`dpsk-orch simulator`: seed a property, print how to reach it, serve until Ctrl-C."""
    sim = Simulator(latency_s=latency_ms / 1000, rate_limit_per_minute=rate_limit_per_minute)
    sim.add_tenant(SIM_TENANT, SIM_CLIENT_ID, SIM_CLIENT_SECRET)
    seeded = sim.seed_property(SIM_TENANT, units=units, per_unit=per_unit, with_orphan=True,
                               with_missing_vlan=units > 2, with_shared_passphrase=units > 2)
    server = serve_in_thread(sim, port)
    print_fn(f"RuckusONE simulator at {server.url}")
    print_fn(f"  tenant_id: {SIM_TENANT}   client_id: {SIM_CLIENT_ID}")
    print_fn(f"  venue_id: {seeded.venue_id}   site-wide pool: {seeded.site_wide_pool_name}")
    print_fn(f"  {units} unit pools ({seeded.unit_pool_names[0]} ...) x {per_unit} passphrases")
    if write_config is not None:
        path = write_simulator_config(write_config, server.url, seeded, SIM_CLIENT_ID, SIM_CLIENT_SECRET)
        print_fn(f"  config written: {path}   try: dpsk-orch -c {path} sync --dry-run")
    print_fn("Ctrl-C stops it.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
