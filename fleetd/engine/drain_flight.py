"""Draining one batch at a time: the units that left a draining machine and do not run yet.

A drain moves at most `batch` units at once: the leader lets the next units leave only when
those in flight run on their new machine (its agent reports them active), moved again, are
gone, or have taken longer than `patience` seconds (a unit that fails there must not hold the
drain forever). `slots` is the scheduler's input (`Snapshot.drain_slots`); `settle` reads the
in-flight units' states (one key each, at most `batch` reads a pass, only while a drain is
under way); `record` notes the units a committed pass moved off draining machines.
"""

from __future__ import annotations

from collections.abc import Callable

from fleetd.engine.decision import Decision
from fleetd.engine.view import LeaderView
from fleetd.registry import codec
from fleetd.registry.store import Registry

PATIENCE = 120.0
POLL = 0.5  # how often the leader looks while units are in flight


class DrainFlight:
    """Units moved off draining machines that are not running on their new machine yet."""

    def __init__(self, batch: int, clock: Callable[[], float], patience: float = PATIENCE) -> None:
        self.batch = batch
        self.clock = clock
        self.patience = patience
        self.flying: dict[str, tuple[str, float]] = {}  # unit -> (new machine, since)

    def slots(self) -> int | None:
        """How many more units may leave draining machines now (None: no limit)."""
        return None if self.batch <= 0 else max(0, self.batch - len(self.flying))

    async def settle(self, registry: Registry, model: LeaderView) -> None:
        """Forget the units that arrived, moved again, are gone or ran out of patience."""
        now = self.clock()
        for unit, (machine, since) in list(self.flying.items()):
            placed = model.assignments.get(unit)
            if placed is None or placed.machine != machine or now - since > self.patience:
                del self.flying[unit]
                continue
            found = await registry.kv.get(registry.keys.state(unit, machine))
            state = codec.decode_state(unit, machine, found.value) if found is not None else None
            if state is not None and state.systemd.active == "active":
                del self.flying[unit]

    def record(self, plan: Decision) -> None:
        drained = {e.unit for e in plan.evictions if e.drain}
        now = self.clock()
        for place in plan.placements:
            if place.assignment.unit in drained:
                self.flying[place.assignment.unit] = (place.assignment.machine, now)
