"""Failed token attempts per client address: after too many in a window, the address is refused.

Owns the rule (`blocked_for`, pure) and the bookkeeping (`Lockout`, clock injected): a TCP
client that sent a wrong API token MAX_FAILURES times within WINDOW seconds gets 429 with
Retry-After for every request, its token unchecked, until the oldest of those failures is
WINDOW seconds old. A missing token is no attempt and never counts. At most MAX_CLIENTS
addresses are remembered (the ones that failed longest ago are forgotten first), so a flood
from many addresses cannot grow memory without bound.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MAX_FAILURES = 10
WINDOW = 60.0  # seconds
MAX_CLIENTS = 4096


@dataclass(frozen=True, slots=True)
class Policy:
    """How many failures an address may have within `window` seconds before it is refused."""

    max_failures: int = MAX_FAILURES
    window: float = WINDOW


def blocked_for(failures: Sequence[float], now: float, policy: Policy) -> float | None:
    """Seconds the address must wait, given its failure times (oldest first); None: it may try."""
    recent = [t for t in failures if now - t < policy.window]
    if len(recent) < policy.max_failures:
        return None
    return recent[-policy.max_failures] + policy.window - now


def retry_after_header(seconds: float) -> str:
    """Retry-After's value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


class Lockout:
    """The failure times of recent addresses, and whether one is refused now."""

    def __init__(self, policy: Policy = Policy(), clock: Callable[[], float] = time.monotonic,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.policy = policy
        self.clock = clock
        self.max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def blocked_for(self, client: str) -> float | None:
        """Seconds `client` must wait before its token is checked again; None if not refused."""
        failures = self._failures.get(client)
        return blocked_for(failures, self.clock(), self.policy) if failures else None

    def failed(self, client: str) -> None:
        """`client` sent a wrong token."""
        failures = self._failures.pop(client, None) or deque(maxlen=self.policy.max_failures)
        failures.append(self.clock())
        self._failures[client] = failures  # last in the dict: the most recent failure
        while len(self._failures) > self.max_clients:
            del self._failures[next(iter(self._failures))]

    def clients(self) -> int:
        """How many addresses are remembered."""
        return len(self._failures)
