"""dpsk-orch: keep a RuckusONE site-wide DPSK pool in step with the per-unit pools of a property."""

__version__ = "0.1.0"
