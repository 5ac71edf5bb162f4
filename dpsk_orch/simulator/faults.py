"""Faults the simulator can be told to inject: each a rule that fires a number of times, or forever."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Countdown:
    """Fires `times` times, or forever when `times` is None."""

    times: int | None

    def fire(self) -> bool:
        """Use one firing; False once spent."""
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


@dataclass
class Rule(Countdown):
    """Matches requests by method (None: any) and a regex on the path."""

    method: str | None = None
    path_regex: str = ".*"

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and re.search(self.path_regex, path) is not None


@dataclass
class StatusRule(Rule):
    status: int = 500


@dataclass
class PageRule(Countdown):
    """A fault on one page of one pool's passphrase query."""

    pool_id: str = ""
    page: int = 1
    short: bool = False  # True: one row missing from the page; False: HTTP 500


@dataclass
class ActivityFailRule(Rule):
    message: str = "simulated failure"


@dataclass
class Faults:
    """Every fault in force. `Simulator.clear_faults()` replaces this with a fresh one."""

    failing: list[StatusRule] = field(default_factory=list)
    pages: list[PageRule] = field(default_factory=list)
    dropping: list[Rule] = field(default_factory=list)
    failing_activities: list[ActivityFailRule] = field(default_factory=list)
    activities_stuck: bool = False
    network_pools_endpoint: bool = True

    def status_for(self, method: str, path: str) -> int | None:
        for rule in self.failing:
            if rule.matches(method, path) and rule.fire():
                return rule.status
        return None

    def page_fault(self, pool_id: str, page: int) -> PageRule | None:
        for rule in self.pages:
            if rule.pool_id == pool_id and rule.page == page and rule.fire():
                return rule
        return None

    def drops(self, method: str, path: str) -> bool:
        return any(rule.matches(method, path) and rule.fire() for rule in self.dropping)

    def activity_failure(self, method: str, path: str) -> str | None:
        for rule in self.failing_activities:
            if rule.matches(method, path) and rule.fire():
                return rule.message
        return None
