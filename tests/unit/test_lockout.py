"""Failed token attempts per address (fleetd.api.lockout): the rule as a table, the bookkeeping
with a fake clock."""

from __future__ import annotations

import pytest

from fleetd.api.lockout import Lockout, Policy, blocked_for, retry_after_header

THREE_IN_10 = Policy(max_failures=3, window=10.0)


@pytest.mark.parametrize(
    ("failures", "now", "expected"),
    [
        ((), 0.0, None),
        ((1.0, 2.0), 3.0, None),  # under the limit
        ((1.0, 2.0, 3.0), 3.0, 8.0),  # the third: wait until the first is 10 s old
        ((1.0, 2.0, 3.0), 10.5, 0.5),
        ((1.0, 2.0, 3.0), 11.0, None),  # the first left the window
        ((1.0, 2.0, 3.0, 9.0), 11.5, 0.5),  # 2, 3, 9 are recent: wait for 2 to leave
        ((0.0, 20.0, 21.0), 22.0, None),  # an old failure does not count
        ((5.0, 5.0, 5.0), 5.0, 10.0),
    ],
)
def test_blocked_for(failures: tuple[float, ...], now: float, expected: float | None) -> None:
    assert blocked_for(failures, now, THREE_IN_10) == expected


@pytest.mark.parametrize(("seconds", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.9, "60")])
def test_retry_after_header(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_address_is_refused_after_too_many_failures_then_let_in_again() -> None:
    clock = Clock()
    lockout = Lockout(THREE_IN_10, clock)
    for _ in range(2):
        lockout.failed("10.0.0.1")
        clock.now += 1
    assert lockout.blocked_for("10.0.0.1") is None
    lockout.failed("10.0.0.1")
    assert lockout.blocked_for("10.0.0.1") == 8.0
    assert lockout.blocked_for("10.0.0.2") is None  # per address
    clock.now += 8
    assert lockout.blocked_for("10.0.0.1") is None


def test_memory_is_bounded_and_the_oldest_failures_are_forgotten_first() -> None:
    clock = Clock()
    lockout = Lockout(Policy(max_failures=2, window=60.0), clock, max_clients=3)
    for address in ("a", "b", "c"):
        lockout.failed(address)
    lockout.failed("a")  # a failed again: now the most recent
    lockout.failed("d")  # b is forgotten
    assert lockout.clients() == 3
    assert lockout.blocked_for("a") is not None
    lockout.failed("b")
    assert lockout.blocked_for("b") is None  # its first failure was forgotten
