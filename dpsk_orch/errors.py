"""Errors that end a command with exit code 2 (usage)."""


class UsageError(Exception):
    """The command asked for something that does not exist: an unknown orchestrator, pool or flag."""
