"""The incremental engine's standing state on examples: what a step touches, and what it decides."""

from __future__ import annotations

from unittest.mock import patch

from fleetd.engine import standing as standing_module
from fleetd.engine.changes import Changes, Delta, UnitState, delta
from fleetd.engine.decision import Decision, Snapshot, UnitSpec
from fleetd.engine.scheduler import schedule
from fleetd.engine.standing import Standing, same_decision
from fleetd.model.machine import Machine
from fleetd.model.requirements import Requirements
from fleetd.model.resources import Resources
from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment, Unit

G = 1024**3
MACHINES = {f"{i:032x}": Machine(f"{i:032x}", capacity=Resources(4000, 8 * G)) for i in range(1, 21)}


def spec(name: str, **req: object) -> UnitSpec:
    return UnitSpec(Unit(name, "h1", TargetState.LAUNCHED), Requirements(**req))  # type: ignore[arg-type]


def placed_cluster(units: int = 200) -> tuple[Standing, Snapshot]:
    snapshot = Snapshot({s.unit.name: s for s in (spec(f"u{i:03d}.service") for i in range(units))},
                        dict(MACHINES), {})
    standing, plan = Standing.start(snapshot)
    assignments = {p.assignment.unit: p.assignment for p in plan.placements}
    return standing, Snapshot(dict(snapshot.units), dict(MACHINES), assignments)


def step(standing: Standing, after: Snapshot, units: frozenset[str] = frozenset(),
         machines: frozenset[str] = frozenset()) -> Decision:
    return standing.step(delta(after, Changes(units, machines), (), standing.held))


def test_one_new_unit_is_one_placement_and_no_machine_is_checked_again() -> None:
    standing, now = placed_cluster()
    now.units["new.service"] = spec("new.service")  # type: ignore[index]
    with patch.object(standing_module, "machine_evictions", wraps=standing_module.machine_evictions) as spy:
        plan = step(standing, now, units=frozenset({"new.service"}))
    assert spy.call_count == 0
    assert [p.assignment.unit for p in plan.placements] == ["new.service"]
    assert plan == schedule(now)


def test_a_lost_machine_is_the_only_one_checked_again_and_its_units_move() -> None:
    standing, now = placed_cluster()
    lost = next(iter(MACHINES))
    del now.machines[lost]  # type: ignore[attr-defined]
    with patch.object(standing_module, "machine_evictions", wraps=standing_module.machine_evictions) as spy:
        plan = step(standing, now, machines=frozenset({lost}))
    assert [c.args[1] for c in spy.call_args_list] == [lost]
    moved = {e.unit for e in plan.evictions}
    assert len(moved) == 10 and {e.reason for e in plan.evictions} == {f"machine {lost[:8]} went away"}
    assert {p.assignment.unit for p in plan.placements} == moved
    assert same_decision(plan, schedule(now))


def test_units_placed_out_of_name_order_are_moved_aside_in_name_order() -> None:
    """A full pass files a machine's units by name; so must the standing board, or a unit that
    replaces several would move them aside in another order (and say so in its reason)."""
    machine = Machine("a" * 32, capacity=Resources(4000, 8 * G))
    big = spec("b.service", resources=Resources(2000, G))
    small = spec("a.service", resources=Resources(100, G))
    before = Snapshot({"a.service": small, "b.service": big}, {machine.id: machine}, {})
    standing, plan = Standing.start(before)
    assert [p.assignment.unit for p in plan.placements] == ["b.service", "a.service"]  # largest first
    assignments = {p.assignment.unit: p.assignment for p in plan.placements}
    units = {**before.units, "c.service": spec("c.service", replaces=("[ab].service",))}
    after = Snapshot(units, {machine.id: machine}, assignments)
    plan = step(standing, after, units=frozenset({"c.service"}))
    assert plan == schedule(after)
    assert plan.placements[0].reason.endswith("moves a.service, b.service aside (Replaces)")


def test_a_delta_that_repeats_the_standing_state_changes_nothing() -> None:
    standing, now = placed_cluster(40)
    same = {n: UnitState(now.units[n], now.assignments.get(n)) for n in now.units}
    plan = standing.step(Delta(same, dict(MACHINES)))
    assert plan == Decision()


def test_a_held_unit_leaves_the_scheduler_view_and_comes_back_assigned_where_it_was() -> None:
    standing, now = placed_cluster(40)
    lost = next(iter(MACHINES))
    del now.machines[lost]  # type: ignore[attr-defined]
    held = frozenset(n for n, a in now.assignments.items() if a.machine == lost)
    waiting = standing.step(delta(now, Changes(machines=frozenset({lost})), held, standing.held))
    assert waiting == Decision()  # settling: nothing moves, nothing is pending
    released = standing.step(delta(now, Changes(), (), standing.held))
    assert {e.unit for e in released.evictions} == held == {p.assignment.unit for p in released.placements}


def test_a_new_global_unit_is_counted_on_every_machine() -> None:
    standing, now = placed_cluster(40)
    now.units["g.service"] = spec("g.service", is_global=True, resources=Resources(3900, 0))  # type: ignore[index]
    now.units["late.service"] = spec("late.service", resources=Resources(500, 0))  # type: ignore[index]
    plan = step(standing, now, units=frozenset({"g.service", "late.service"}))
    assert plan == schedule(now)
    assert [p.unit for p in plan.pending] == ["late.service"]
    assert plan.pending[0].reason.startswith("insufficient cpu")


def test_an_assignment_changed_behind_the_engines_back_is_updated_or_evicted() -> None:
    standing, now = placed_cluster(40)
    first, second = sorted(now.assignments)[:2]
    old = now.assignments[first]
    now.assignments[first] = Assignment(first, old.machine, "h0", TargetState.LOADED)  # type: ignore[index]
    now.assignments[second] = Assignment(second, "f" * 32, "h1", TargetState.LAUNCHED)  # type: ignore[index]
    plan = step(standing, now, units=frozenset({first, second}))
    assert same_decision(plan, schedule(now))
    assert [u.assignment.unit for u in plan.updates] == [first]
    assert [e.unit for e in plan.evictions] == [second]


def test_a_global_unit_removed_while_a_machine_is_checked_again_counts_nowhere() -> None:
    snapshot = Snapshot({"g.service": spec("g.service", is_global=True, resources=Resources(1000, 0)),
                         **{f"u{i}.service": spec(f"u{i}.service") for i in range(40)}}, dict(MACHINES), {})
    standing, plan = Standing.start(snapshot)
    assignments = {p.assignment.unit: p.assignment for p in plan.placements}
    now = Snapshot({n: s for n, s in snapshot.units.items() if n != "g.service"}, dict(MACHINES), assignments)
    del assignments["u0.service"]  # its machine is checked again, in the same pass
    assert same_decision(step(standing, now, units=frozenset({"g.service", "u0.service"})), schedule(now))
