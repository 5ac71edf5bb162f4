"""Logging set-up: rich on a terminal; plain lines with syslog priority prefixes under systemd or a pipe.

Log records never carry a passphrase or a secret: callers log ids, usernames and short fingerprints.
"""

from __future__ import annotations

import logging
import os
import sys

from rich.console import Console
from rich.logging import RichHandler

LOGGER_NAME = "dpsk_orch"

# sd-daemon(3) priority prefixes, understood by journald on stderr.
SYSLOG_PREFIXES = {logging.DEBUG: "<7>", logging.INFO: "<6>", logging.WARNING: "<4>", logging.ERROR: "<3>",
                   logging.CRITICAL: "<2>"}


class SyslogPrefixFormatter(logging.Formatter):
    """`<6>message`: one event per line, no colour, no wrapping."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = SYSLOG_PREFIXES.get(record.levelno, "<6>")
        text = super().format(record).replace("\n", " ")
        return f"{prefix}{text}"


def is_interactive() -> bool:
    """A person at a terminal (and not systemd's journal, which also may look like one)."""
    return sys.stderr.isatty() and not os.environ.get("JOURNAL_STREAM")


def colour_wanted(no_color_flag: bool) -> bool:
    return not no_color_flag and "NO_COLOR" not in os.environ and is_interactive()


def setup_logging(verbosity: int, quiet: bool, no_color: bool) -> logging.Logger:
    """Configure the package logger once per process: -q errors only, -v info, -vv debug."""
    level = logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    logger.setLevel(level)
    logger.propagate = False
    if is_interactive():
        console = Console(stderr=True, no_color=not colour_wanted(no_color))
        handler: logging.Handler = RichHandler(console=console, show_path=False, show_time=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(SyslogPrefixFormatter("%(message)s"))
    logger.addHandler(handler)
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
