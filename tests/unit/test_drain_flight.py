"""The leader's drain batches: units in flight until they run on their new machine (fake time)."""

from __future__ import annotations

from fleetd.engine.decision import Decision, Evict, Place
from fleetd.engine.drain_flight import DrainFlight
from fleetd.engine.view import LeaderView
from fleetd.model.states import SystemdState, TargetState, UnitState
from fleetd.model.unit import Assignment
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

OLD, NEW = "a" * 32, "b" * 32


def moved(unit: str, drain: bool = True) -> Decision:
    a = Assignment(unit, NEW, "h", TargetState.LAUNCHED)
    return Decision(evictions=(Evict(unit, OLD, "machine aaaaaaaa is draining", True, drain),),
                    placements=(Place(a, "least-loaded"),))


async def test_a_unit_in_flight_holds_a_slot_until_its_new_machine_runs_it() -> None:
    now = [0.0]
    registry = Registry(MemoryKV(), Keys("/t/"))
    model = LeaderView(registry.keys)
    flight = DrainFlight(2, lambda: now[0])
    flight.record(moved("x.service"))
    flight.record(moved("y.service", drain=False))  # an operator's move: not a drain
    model.assignments["x.service"] = Assignment("x.service", NEW, "h", TargetState.LAUNCHED)
    assert flight.slots() == 1
    await flight.settle(registry, model)
    assert flight.slots() == 1  # no state yet
    state = UnitState("x.service", NEW, "h", TargetState.LAUNCHED,
                      SystemdState("loaded", "activating", "start"))
    await registry.put_state(state, 0)
    await flight.settle(registry, model)
    assert flight.slots() == 1  # activating is not running yet
    await registry.put_state(UnitState("x.service", NEW, "h", TargetState.LAUNCHED,
                                       SystemdState("loaded", "active", "running")), 0)
    await flight.settle(registry, model)
    assert flight.slots() == 2 and flight.flying == {}


async def test_moved_again_gone_or_out_of_patience_no_longer_holds_the_drain() -> None:
    now = [0.0]
    registry = Registry(MemoryKV(), Keys("/t/"))
    model = LeaderView(registry.keys)
    flight = DrainFlight(3, lambda: now[0], patience=60.0)
    for unit in ("gone.service", "elsewhere.service", "slow.service"):
        flight.record(moved(unit))
    model.assignments["elsewhere.service"] = Assignment("elsewhere.service", OLD, "h",
                                                       TargetState.LAUNCHED)
    model.assignments["slow.service"] = Assignment("slow.service", NEW, "h", TargetState.LAUNCHED)
    await flight.settle(registry, model)
    assert list(flight.flying) == ["slow.service"]
    now[0] = 61.0
    await flight.settle(registry, model)
    assert flight.flying == {} and DrainFlight(0, lambda: 0.0).slots() is None
