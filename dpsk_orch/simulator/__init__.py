"""The built-in RuckusONE simulator: for tests, `dpsk-orch demo` and `dpsk-orch simulator`."""

from dpsk_orch.simulator.core import Reply, RequestRecord, Simulator
from dpsk_orch.simulator.seed import SeededProperty
from dpsk_orch.simulator.server import SimulatorTransport, run_simulator_command, serve_in_thread

__all__ = ["Reply", "RequestRecord", "SeededProperty", "Simulator", "SimulatorTransport", "run_simulator_command",
           "serve_in_thread"]
