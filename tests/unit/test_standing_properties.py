"""The incremental engine decides what a full pass decides (hypothesis, random sequences of changes).

A random cluster (the scheduler property tests' strategies: metadata operators, Conflicts,
MachineOf, Replaces, Global, resources, Policy, SpreadBy, stale assignments) is placed by a full
pass that keeps its standing state. Then, step after step, a few random changes land in the model:
units added, removed, stopped or given a new file or requirements, machines that join, leave or
change metadata and capacity, assignments written or deleted behind the engine's back, machines
held by the departure rules and released. Each step the standing state takes the delta (built by
the engine's own `changes.delta`) and must decide exactly what `schedule` decides on the same
restricted snapshot, constraint for constraint: the same evictions (in any order), placements,
updates and pending units, with the same reasons. The plan is then applied as a commit would.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import given
from hypothesis import strategies as st
from test_scheduler_properties import (  # the scheduler property tests' strategies
    CLUSTER_POLICY,
    FAST,
    GONE,
    HASHES,
    MACHINE_IDS,
    STATES,
    UNIT_NAMES,
    applied,
    machines,
    requirements,
    snapshots,
)

from fleetd.engine.changes import Changes, delta
from fleetd.engine.decision import Decision, Evict, Snapshot, UnitSpec
from fleetd.engine.departures import Holds, held_units, restrict
from fleetd.engine.scheduler import schedule
from fleetd.engine.standing import Standing, same_decision
from fleetd.model.unit import Assignment, Unit

OPS = ("unit", "unit", "remove", "state", "machine", "leave", "assign", "unassign", "hold", "release")


@dataclass
class Model:
    """What the leader's model holds: every unit, live machines, assignments (held ones too)."""

    units: dict[str, UnitSpec]
    machines: dict
    assignments: dict[str, Assignment]
    policy: str
    holding: set[str] = field(default_factory=set)  # machines whose units are held
    touched: set[str] = field(default_factory=set)
    touched_machines: set[str] = field(default_factory=set)

    def snapshot(self) -> Snapshot:
        return Snapshot(self.units, self.machines, self.assignments, self.policy)

    def holds(self) -> Holds:
        self.holding -= set(self.machines)  # a machine that is back is not held
        return Holds(machines=frozenset(self.holding))

    def held(self) -> frozenset[str]:
        on: dict[str, set[str]] = {}
        for name, a in self.assignments.items():
            on.setdefault(a.machine, set()).add(name)
        return held_units(self.holds(), on, self.units)[0]

    def commit(self, plan: Decision) -> None:
        self.assignments = applied(self.snapshot(), plan)

    def take(self) -> Changes:
        taken = Changes(frozenset(self.touched), frozenset(self.touched_machines))
        self.touched, self.touched_machines = set(), set()
        return taken


def change(draw: st.DrawFn, model: Model) -> None:
    """One random change to the model, noted as the model notes changes."""
    op = draw(st.sampled_from(OPS))
    names = sorted(model.units)
    if op == "unit":
        name = draw(st.sampled_from(UNIT_NAMES))
        model.units[name] = UnitSpec(Unit(name, draw(HASHES), draw(STATES)), draw(requirements(name)))
        model.touched.add(name)
    elif op in ("remove", "state") and names:
        name = draw(st.sampled_from(names))
        if op == "remove":
            del model.units[name]
        else:
            spec = model.units[name]
            model.units[name] = replace(spec, unit=Unit(name, draw(HASHES), draw(STATES)))
        model.touched.add(name)
    elif op == "machine":
        found = draw(machines())  # new records for some ids: joins and changes
        model.machines.update(found)
        model.touched_machines |= set(found)
    elif op == "leave" and model.machines:
        gone = draw(st.sampled_from(sorted(model.machines)))
        del model.machines[gone]
        model.touched_machines.add(gone)
    elif op == "assign":
        name = draw(st.sampled_from((*UNIT_NAMES, GONE)))
        machine = draw(st.sampled_from(MACHINE_IDS))
        model.assignments[name] = Assignment(name, machine, draw(HASHES), draw(STATES))
        model.touched.add(name)
    elif op == "unassign" and model.assignments:
        name = draw(st.sampled_from(sorted(model.assignments)))
        del model.assignments[name]
        model.touched.add(name)
    elif op == "hold":
        model.holding |= set(MACHINE_IDS) - set(model.machines) if draw(st.booleans()) else \
            {draw(st.sampled_from(MACHINE_IDS))}
    elif op == "release":
        model.holding.clear()


def canonical(plan: Decision) -> Decision:
    def order(e: Evict) -> tuple[str, str, str]:
        return e.unit, e.machine, e.reason
    return replace(plan, evictions=tuple(sorted(plan.evictions, key=order)))


def full_pass(model: Model) -> Decision:
    return schedule(restrict(model.snapshot(), model.holds())[0])


@FAST
@given(snapshots(), st.data())
def test_incremental_passes_decide_what_a_full_pass_decides(start: Snapshot, data: st.DataObject) -> None:
    model = Model(dict(start.units), dict(start.machines), dict(start.assignments), start.policy)
    held = model.held()
    standing, plan = Standing.start(restrict(model.snapshot(), model.holds())[0], held)
    assert plan == full_pass(model)
    model.commit(plan)
    for _ in range(data.draw(st.integers(1, 8))):
        for _ in range(data.draw(st.integers(1, 3))):
            change(data.draw, model)
        if data.draw(st.booleans()):  # the echo of the engine's own writes changes nothing
            model.touched |= {a.assignment.unit for a in plan.placements} | {e.unit for e in plan.evictions}
        held = model.held()
        step = delta(model.snapshot(), model.take(), held, standing.held)
        incremental, plan = standing.step(step), full_pass(model)
        assert canonical(incremental) == canonical(plan)
        assert same_decision(incremental, plan)
        model.commit(plan)


@FAST
@given(snapshots(), CLUSTER_POLICY)
def test_starting_is_a_full_pass(snapshot: Snapshot, policy: str) -> None:
    """Leadership start (and every cross-check) builds the standing state with a full pass."""
    snapshot = replace(snapshot, policy=policy)
    assert Standing.start(snapshot)[1] == schedule(snapshot)
