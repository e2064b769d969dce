"""Units that failed on their machine (RescheduleOnFailure=true): when to place them elsewhere.

Agents write failed/<unit>/<machine> with the file hash that failed. `judge` (pure) reads those
records against the units' current files: the machines that failed a unit's current version
are barred for it; a unit failed on the machine it is placed on moves once
`RescheduleDelay * 2^(n-1)` seconds have passed since the n-th failure was first seen, while
fewer than `RescheduleAttempts` moves were made; after that it stays failed and its pending
reason says why. Records of units that are gone or have a new file are stale (deleted).
`FailureMemory` keeps, between passes, when this leader first saw each record (monotonic
seconds): a new leader starts the delays afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from fleetd.engine.decision import Snapshot, UnitSpec
from fleetd.model.unit import Assignment, Unit

Key = tuple[str, str]  # (unit, machine)
Seen = tuple[str, str, str]  # (unit, machine, failed hash)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the failure records mean for the next pass."""

    failed: Mapping[str, frozenset[str]] = field(default_factory=dict)  # unit -> machines barred
    move_now: frozenset[str] = frozenset()  # units to take off the machine that failed them
    gave_up: Mapping[str, str] = field(default_factory=dict)  # unit -> why it stays failed
    due: float | None = None  # when a delay ends next
    stale: tuple[Key, ...] = ()

    @property
    def key(self) -> tuple[object, ...]:
        """What a pass depends on (an unchanged key decides nothing new)."""
        return (tuple(sorted(self.move_now)), tuple(sorted(self.gave_up.items())),
                tuple(sorted((u, tuple(sorted(m))) for u, m in self.failed.items())), self.stale)


def judge(records: Mapping[str, Mapping[str, str]], units: Mapping[str, Unit],
          specs: Mapping[str, UnitSpec], assignments: Mapping[str, Assignment],
          seen: Mapping[Seen, float], now: float) -> Verdict:
    """The verdict at `now` over `records` (unit -> machine -> failed hash). `units` says each
    unit's current file (a record for another one is stale); `specs` its rule."""
    failed, move_now, gave_up, stale, due = {}, set(), {}, [], []
    for unit, by_machine in sorted(records.items()):
        digest = units[unit].hash if unit in units else None
        current = {m for m, failed_hash in by_machine.items() if failed_hash == digest}
        stale += [(unit, m) for m in sorted(by_machine) if m not in current]
        spec = specs.get(unit)
        if not current or spec is None:
            continue
        failed[unit] = frozenset(current)
        placed = assignments.get(unit)
        rule = spec.requirements.reschedule
        if placed is None or placed.machine not in current or rule is None:
            continue
        if len(current) > rule.attempts:
            gave_up[unit] = _gave_up(current, rule.attempts, placed.machine)
            continue
        at = seen.get((unit, placed.machine, spec.unit.hash), now) + rule.wait_before(len(current))
        if now >= at:
            move_now.add(unit)
        else:
            due.append(at)
    return Verdict(failed=failed, move_now=frozenset(move_now), gave_up=gave_up,
                   due=min(due, default=None), stale=tuple(stale))


def _gave_up(machines: set[str], attempts: int, here: str) -> str:
    shown = ", ".join(m[:8] for m in sorted(machines))
    return (f"failed on {len(machines)} machine(s) ({shown}); RescheduleAttempts={attempts} used "
            f"up: it stays failed on {here[:8]} until its unit file changes")


def apply(snapshot: Snapshot, verdict: Verdict) -> Snapshot:
    """The snapshot with the verdict as scheduler inputs."""
    return replace(snapshot, failed=verdict.failed, reschedule_now=verdict.move_now,
                   gave_up=verdict.gave_up)


class FailureMemory:
    """When this leader first saw each failure record (per failed file hash)."""

    def __init__(self) -> None:
        self.seen: dict[Seen, float] = {}

    def verdict(self, records: Mapping[str, Mapping[str, str]], units: Mapping[str, Unit],
                specs: Mapping[str, UnitSpec], assignments: Mapping[str, Assignment],
                now: float) -> Verdict:
        present = {(u, m, h) for u, by_machine in records.items() for m, h in by_machine.items()}
        self.seen = {k: t for k, t in self.seen.items() if k in present}
        for key in present - self.seen.keys():
            self.seen[key] = now
        return judge(records, units, specs, assignments, self.seen, now)
