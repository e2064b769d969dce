"""fleetd raises its soft open-file limit towards the hard one (fleetd.limits)."""

from __future__ import annotations

import resource

import pytest

from fleetd.limits import WANTED, raise_open_files, raised

INF = resource.RLIM_INFINITY


@pytest.mark.parametrize(
    ("soft", "hard", "expected"),
    [
        (1024, 524288, WANTED),  # systemd's defaults for a service
        (1024, 4096, 4096),  # the hard limit caps it
        (1024, INF, WANTED),
        (100000, 524288, 100000),  # never lowered
        (INF, INF, INF),
        (1024, 1024, 1024),
    ],
)
def test_raised(soft: int, hard: int, expected: int) -> None:
    assert raised(soft, hard) == expected


def test_raise_open_files_sets_only_the_soft_limit() -> None:
    calls = []
    before, after = raise_open_files(lambda _: (1024, 8192), lambda kind, lim: calls.append(lim))
    assert (before, after) == (1024, 8192)
    assert calls == [(8192, 8192)]


def test_raise_open_files_leaves_a_high_enough_limit_alone() -> None:
    calls = []
    raise_open_files(lambda _: (WANTED, WANTED), lambda kind, lim: calls.append(lim))
    assert calls == []
