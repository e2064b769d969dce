"""`[X-Fleet] RescheduleOnFailure=`: a unit that fails on its machine is placed on another (pure).

Owns the three options and their checks: RescheduleOnFailure (default false),
RescheduleAttempts (a whole number 0..MAX_ATTEMPTS, default 3) and RescheduleDelay (a duration
such as 10s, 500ms, 2m; default 10s), and the delay before each attempt: RescheduleDelay,
doubled for every attempt before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleetd.errors import InvalidRequirements

KEYS = ("RescheduleOnFailure", "RescheduleAttempts", "RescheduleDelay")
MAX_ATTEMPTS = 100
DEFAULT_ATTEMPTS = 3
DEFAULT_DELAY = 10.0
MAX_DELAY = 24 * 3600.0
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True, slots=True)
class Reschedule:
    """How often, and how patiently, a failed unit is placed on another machine."""

    attempts: int = DEFAULT_ATTEMPTS
    delay: float = DEFAULT_DELAY

    def wait_before(self, attempt: int) -> float:
        """Seconds from the failure to attempt number `attempt` (1-based): delay * 2^(n-1)."""
        return self.delay * 2 ** (attempt - 1)


def parse(enabled: bool, attempts: str | None, delay: str | None) -> Reschedule | None:
    """The rule (None when RescheduleOnFailure is off); bad values are refused even then."""
    count = _attempts(attempts)
    seconds = _delay(delay)
    return Reschedule(attempts=count, delay=seconds) if enabled else None


def _attempts(value: str | None) -> int:
    if value is None:
        return DEFAULT_ATTEMPTS
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_ATTEMPTS:
        raise InvalidRequirements(
            f'RescheduleAttempts must be a whole number from 0 to {MAX_ATTEMPTS}, not "{value}"')
    return int(value)


def _delay(value: str | None) -> float:
    if value is None:
        return DEFAULT_DELAY
    match = _DURATION.fullmatch(value)
    seconds = float(match.group(1)) * _SECONDS[match.group(2)] if match else -1.0
    if not 0 <= seconds <= MAX_DELAY:
        raise InvalidRequirements(
            f'RescheduleDelay must be a duration such as 10s, 500ms or 2m (at most 24h), not "{value}"')
    return seconds
