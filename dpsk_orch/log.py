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
    """A person at a terminal: stderr is a TTY and is not systemd's journal stream."""
    return _is_tty(sys.stderr) and not stderr_is_journal()


def stderr_is_journal() -> bool:
    """True when stderr is the stream systemd connected to the journal.

    systemd sets JOURNAL_STREAM to "DEVICE:INODE" of that stream (systemd.exec(5)); the variable is also
    inherited by everything a service starts, so it counts only when it names our stderr. When stderr
    cannot be examined (no file descriptor), the variable alone decides.
    """
    value = os.environ.get("JOURNAL_STREAM")
    if not value:
        return False
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return True
    return value == f"{stat.st_dev}:{stat.st_ino}"


def _is_tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def colour_wanted(no_color_flag: bool) -> bool:
    """Colour only for a person at a terminal, unless --no-color or NO_COLOR (set and not empty) say no."""
    return not no_color_flag and not os.environ.get("NO_COLOR") and is_interactive()


def setup_logging(verbosity: int, quiet: bool, no_color: bool) -> logging.Logger:
    """Configure the package logger once per process: -q errors only, -v info, -vv debug."""
    level = logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    logger.setLevel(level)
    logger.propagate = False
    logger.addHandler(make_handler(no_color))
    return logger


def make_handler(no_color: bool) -> logging.Handler:
    """Rich on a terminal (no escape codes at all under --no-color or NO_COLOR); else syslog-prefixed lines."""
    if is_interactive():
        console = Console(stderr=True, color_system="auto" if colour_wanted(no_color) else None)
        return RichHandler(console=console, show_path=False, show_time=False)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SyslogPrefixFormatter("%(message)s"))
    return handler


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
