"""`python -m dpsk_orch` runs the CLI."""

from dpsk_orch.cli import app

app(prog_name="dpsk-orch")
