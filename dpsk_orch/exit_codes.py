"""The exit codes users and systemd rely on (INTERFACE.md)."""

OK = 0  # everything planned was applied (open flags may remain)
PARTIAL = 1  # some reads or actions failed; nothing was lost, the next run retries
USAGE = 2  # usage or config error; nothing was called
BLOCKED = 3  # a safety guard held deletes back; review, then --allow-deletes
UNREACHABLE = 75  # busy: another run holds the lock, or RuckusONE could not be reached (EX_TEMPFAIL)
