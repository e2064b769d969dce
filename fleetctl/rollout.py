"""The rolling update's planner (pure): which units change in which batch, and how a batch is doing.

`plan` splits the units to update into those changed in place without waiting (not launched)
and batches of at most N launched units. `judge` reads what the machines report for one batch
(GET /state: hash, systemd active state) and decides: still waiting, healthy (every unit reports
the new hash, active, for at least min-healthy seconds without a break) or failed (a unit with
the new hash is `failed`). `versions` says which unit ends on which content after a stop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Target:
    """A unit the update covers: its name, stored content hash and whether it is launched."""

    name: str
    hash: str
    launched: bool


@dataclass(frozen=True)
class Plan:
    in_place: tuple[str, ...]
    batches: tuple[tuple[str, ...], ...]
    current: tuple[str, ...]  # already on the new content: left alone


def plan(targets: Sequence[Target], new_hash: str, batch: int) -> Plan:
    """In-place units, then launched units in batches of `batch` (>= 1), in the given order."""
    changing = [t for t in targets if t.hash != new_hash]
    launched = [t.name for t in changing if t.launched]
    size = max(batch, 1)
    return Plan(
        in_place=tuple(t.name for t in changing if not t.launched),
        batches=tuple(tuple(launched[i : i + size]) for i in range(0, len(launched), size)),
        current=tuple(t.name for t in targets if t.hash == new_hash),
    )


@dataclass(frozen=True)
class Seen:
    """One machine's report of a unit: the content hash it runs and systemd's active state."""

    hash: str
    active: str


class Status(Enum):
    WAITING = "waiting"
    HEALTHY = "healthy"
    FAILED = "failed"


@dataclass(frozen=True)
class Verdict:
    status: Status
    healthy_since: Mapping[str, float]  # unit -> when it was first seen new and active, unbroken
    failed: tuple[str, ...] = ()


def judge(
    batch: Sequence[str],
    want: str,
    seen: Mapping[str, Sequence[Seen]],
    healthy_since: Mapping[str, float],
    now: float,
    min_healthy: float,
) -> Verdict:
    """The batch's state after one observation at time `now`."""
    failed = tuple(n for n in batch if any(s.hash == want and s.active == "failed" for s in seen.get(n, ())))
    if failed:
        return Verdict(Status.FAILED, {}, failed)
    since = {n: healthy_since.get(n, now) for n in batch if _up(seen.get(n, ()), want)}
    healthy = len(since) == len(batch) and all(now - t >= min_healthy for t in since.values())
    return Verdict(Status.HEALTHY if healthy else Status.WAITING, since)


def _up(reports: Sequence[Seen], want: str) -> bool:
    return bool(reports) and all(s.hash == want and s.active == "active" for s in reports)


def pending(batch: Sequence[str], verdict: Verdict) -> list[str]:
    """Units of the batch not (yet) seen healthy."""
    return [n for n in batch if n not in verdict.healthy_since]


def batch_line(index: int, total: int, names: Sequence[str], to: str) -> str:
    return f"batch {index}/{total}: updating {', '.join(names)} to {to[:7]}"


def versions(names: Sequence[str], stored: Mapping[str, str], new: str) -> list[str]:
    """`Unit X is on <hash7> (new|previous)` per unit, from the hashes stored now."""
    return [f"Unit {n} is on {stored.get(n, '')[:7]} "
            f"({'new' if stored.get(n) == new else 'previous'} version)" for n in names]
