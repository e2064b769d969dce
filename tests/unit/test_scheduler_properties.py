"""The scheduler's promises over random snapshots (hypothesis).

Random machines (metadata with a numeric key, capacities with unknown dimensions), random units
(metadata operators, Conflicts, MachineOf, Replaces, Global, resources, Policy, SpreadBy; only
combinations the API accepts) and random existing assignments, stale ones included. After the
plan is applied: every assignment satisfies its unit's rules, every new placement fits, nothing
is lost or duplicated, a second pass has nothing to do, and the plan does not depend on dict order.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetd.engine.scheduler import Decision, Snapshot, UnitSpec, schedule
from fleetd.errors import InvalidRequirements
from fleetd.model.globals import globals_on
from fleetd.model.machine import Machine
from fleetd.model.metadata import parse_metadata
from fleetd.model.names import parse_name
from fleetd.model.requirements import (
    Requirements,
    conflicts,
    machine_id_matches,
    metadata_matches,
    replaces,
    validate_requirements,
)
from fleetd.model.resources import Resources
from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment, Unit

G = 1024**3
MACHINE_IDS = tuple(f"{i}{i}{i}{i}aaaa" + "0" * 24 for i in range(1, 6))
UNIT_NAMES = (
    "a.service", "b.service", "c.service", "d.service", "e.service",
    "web@1.service", "web@2.service", "web@3.service", "web@.service",
    "g1.service", "g2.service",
)
GONE = "gone.service"
GLOBS = ("a.service", "b.service", "web@*.service", "g*.service", "[a-c].service", "*", "e.service")
EXPRESSIONS = (
    "zone=a", "zone=b", "zone!=a", "zone in (a, b)", "zone not in (c)",
    "disk=ssd", "disk=hdd", "cores>=2", "cores<4", "cores>1",
)
DESIRED = (TargetState.LAUNCHED, TargetState.LAUNCHED, TargetState.LOADED, TargetState.INACTIVE)
METADATA = (("zone", ("a", "b", "c")), ("disk", ("ssd", "hdd")), ("cores", ("1", "2", "4", "8")))

# Strategies built once: hypothesis validates a strategy the first time it is drawn from.
FEW = st.integers(0, 4).map(lambda n: n == 0)  # True one time in five
BOOLS = st.booleans()
HASHES = st.sampled_from(("h1", "h2"))
STATES = st.sampled_from(DESIRED)
MACHINE_ID = st.sampled_from(MACHINE_IDS)
WANTED_ID = st.sampled_from((*MACHINE_IDS, "deadbeef"))
HAS_KEY = st.integers(0, 3).map(bool)  # a machine has each metadata key three times in four
VALUES = {key: st.sampled_from(values) for key, values in METADATA}
CAPACITY_CPU = st.sampled_from((0, 1000, 2000, 4000))  # 0: unknown
CAPACITY_MEMORY = st.sampled_from((0, G, 2 * G, 4 * G))
DEMAND_CPU = st.sampled_from((0, 0, 250, 500, 1000, 2000, 3000))
DEMAND_MEMORY = st.sampled_from((0, 0, G // 4, G // 2, G, 2 * G, 3 * G))
PEER = {name: st.sampled_from([n for n in UNIT_NAMES if n != name]) for name in UNIT_NAMES}
EXPRESSION_LISTS = st.lists(st.sampled_from(EXPRESSIONS), max_size=2)
GLOB_LISTS = st.lists(st.sampled_from(GLOBS), min_size=1, max_size=2, unique=True)
POLICY = st.sampled_from((None, None, "binpack", "spread"))
SPREAD_BY = st.sampled_from((None, None, "zone", "disk"))
MACHINE_LISTS = st.lists(MACHINE_ID, min_size=1, max_size=4, unique=True)  # no machines: rules tests
NAME_LISTS = st.lists(st.sampled_from(UNIT_NAMES), max_size=len(UNIT_NAMES), unique=True)
CLUSTER_POLICY = st.sampled_from(("binpack", "spread"))


@st.composite
def machines(draw: st.DrawFn) -> dict[str, Machine]:
    found = {}
    for mid in draw(MACHINE_LISTS):
        metadata = {key: draw(VALUES[key]) for key, _ in METADATA if draw(HAS_KEY)}
        capacity = Resources(cpu=draw(CAPACITY_CPU), memory=draw(CAPACITY_MEMORY))
        found[mid] = Machine(id=mid, metadata=metadata, capacity=capacity)
    return found


def _sanitized(req: Requirements) -> Requirements:
    """Drop options until the API would accept the combination (validate_requirements)."""
    empty = {"machine_of": (), "replaces": (), "conflicts": (), "is_global": False, "machine_id": None}
    for field in (None, *empty):
        if field is not None:
            req = _replace(req, **{field: empty[field]})
        try:
            validate_requirements(req)
        except InvalidRequirements:
            continue
        return req
    raise AssertionError("unreachable: no option left")


def _replace(req: Requirements, **changes: object) -> Requirements:
    values = {f: getattr(req, f) for f in Requirements.__slots__}  # type: ignore[attr-defined]
    values.update(changes)
    return Requirements(**values)  # type: ignore[arg-type]


@st.composite
def requirements(draw: st.DrawFn, name: str) -> Requirements:
    machine_id = None
    if draw(FEW):
        mid = draw(WANTED_ID)
        machine_id = mid[:8] if draw(BOOLS) else mid
    req = Requirements(
        machine_id=machine_id,
        machine_of=(draw(PEER[name]),) if draw(FEW) else (),
        metadata=parse_metadata(draw(EXPRESSION_LISTS)),
        conflicts=tuple(draw(GLOB_LISTS)) if draw(FEW) else (),
        is_global=name.startswith("g") or (draw(FEW) and draw(FEW)),
        replaces=tuple(draw(GLOB_LISTS)) if draw(FEW) else (),
        policy=draw(POLICY),
        spread_by=draw(SPREAD_BY),
        resources=Resources(cpu=draw(DEMAND_CPU), memory=draw(DEMAND_MEMORY)),
    )
    return _sanitized(req)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    found = draw(machines())
    live = st.sampled_from(sorted(found))  # machines() draws at least one
    names = draw(NAME_LISTS)
    units = {}
    for name in names:
        units[name] = UnitSpec(Unit(name, draw(HASHES), draw(STATES)), draw(requirements(name)))
    assignments = {}
    for name in draw(st.lists(st.sampled_from((*names, GONE)), unique=True)):
        # mostly a live machine; one that is not in `found` makes a stale assignment
        machine = draw(live) if draw(HAS_KEY) else draw(MACHINE_ID)
        assignments[name] = Assignment(name, machine, draw(HASHES), draw(STATES))
    return Snapshot(units, found, assignments, draw(CLUSTER_POLICY))


def applied(snapshot: Snapshot, plan: Decision) -> dict[str, Assignment]:
    """The assignments after the plan: evictions, then updates and placements."""
    result = dict(snapshot.assignments)
    for evict in plan.evictions:
        assert result.pop(evict.unit).machine == evict.machine
    for change in (*(u.assignment for u in plan.updates), *(p.assignment for p in plan.placements)):
        result[change.unit] = change
    return result


def residents(assignments: Mapping[str, Assignment], machine: str) -> list[str]:
    return sorted(u for u, a in assignments.items() if a.machine == machine)


def running_globals(snapshot: Snapshot, machine: str, units: list[str]) -> tuple[str, ...]:
    active = {n: s.requirements for n, s in snapshot.units.items() if s.requirements.is_global and s.active}
    resident = {u: snapshot.units[u].requirements for u in units}
    return globals_on(snapshot.machines[machine], active, resident)


def demand(snapshot: Snapshot, names: list[str] | tuple[str, ...]) -> Resources:
    return sum((snapshot.units[n].requirements.resources for n in names), Resources())


# SCHEDULER_EXAMPLES=8000 for a longer hunt (about 3 minutes per test).
FAST = settings(
    max_examples=int(os.environ.get("SCHEDULER_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FAST
@given(snapshots())
def test_every_assignment_satisfies_its_rules(snapshot: Snapshot) -> None:
    """(a) MachineID, metadata, MachineOf, Conflicts and Replaces hold for every assignment after the
    plan; global units run where `globals_on` says (assigned units win), and a new placement never
    keeps a global unit off a machine where it would otherwise run."""
    plan = schedule(snapshot)
    final = applied(snapshot, plan)
    placed = {p.assignment.unit for p in plan.placements}
    for name, assignment in final.items():
        spec, machine = snapshot.units[name], snapshot.machines[assignment.machine]
        req = spec.requirements
        assert spec.active and not req.is_global and not parse_name(name).is_template
        assert (assignment.hash, assignment.desired) == (spec.unit.hash, spec.unit.desired)
        assert machine_id_matches(req, machine.id) and metadata_matches(req, machine.metadata)
        for peer in req.machine_of:
            assert peer in final and final[peer].machine == machine.id, (name, peer)
        for other in residents(final, machine.id):
            other_req = snapshot.units[other].requirements
            assert not conflicts(name, req, other, other_req), (name, other)
            assert not replaces(other, other_req, name, req), (other, name)
    for mid in snapshot.machines:
        here = residents(final, mid)
        before = [u for u in here if u not in placed]
        # New placements never stop a global unit that would run on the machine without them.
        assert running_globals(snapshot, mid, here) == running_globals(snapshot, mid, before)


@FAST
@given(snapshots())
def test_new_placements_fit(snapshot: Snapshot) -> None:
    """(b) In each known dimension a placed unit uses, its machine is within capacity after the
    plan, global units running there included. Existing units are never moved for capacity, so a
    machine may stay over-committed; then nothing that needs the over-committed dimension lands there."""
    plan = schedule(snapshot)
    final = applied(snapshot, plan)
    for place in plan.placements:
        machine = snapshot.machines[place.assignment.machine]
        here = residents(final, machine.id)
        used = demand(snapshot, here) + demand(snapshot, running_globals(snapshot, machine.id, here))
        needs = snapshot.units[place.assignment.unit].requirements.resources
        for dimension in ("cpu", "memory"):
            capacity = getattr(machine.capacity, dimension)
            if capacity and getattr(needs, dimension):
                assert getattr(used, dimension) <= capacity, (place, dimension, here)


@FAST
@given(snapshots())
def test_second_pass_has_nothing_to_do(snapshot: Snapshot) -> None:
    """(c) Scheduling the plan's result again evicts, places and updates nothing."""
    plan = schedule(snapshot)
    again = schedule(Snapshot(snapshot.units, snapshot.machines, applied(snapshot, plan), snapshot.policy))
    assert again.is_empty, again
    # Reasons may change wording (later placements used room), the pending units may not.
    assert [p.unit for p in again.pending] == [p.unit for p in plan.pending]


@FAST
@given(snapshots())
def test_plan_does_not_depend_on_dict_order(snapshot: Snapshot) -> None:
    """(d) Units, machines, assignments and metadata in reverse insertion order: the same plan."""
    def reversed_dict(mapping: Mapping[str, object]) -> dict[str, object]:
        return dict(reversed(list(mapping.items())))

    machines = {
        mid: Machine(id=mid, metadata=reversed_dict(m.metadata), capacity=m.capacity)  # type: ignore[arg-type]
        for mid, m in reversed(list(snapshot.machines.items()))
    }
    shuffled = Snapshot(
        reversed_dict(snapshot.units),  # type: ignore[arg-type]
        machines,
        reversed_dict(snapshot.assignments),  # type: ignore[arg-type]
        snapshot.policy,
    )
    assert schedule(shuffled) == schedule(snapshot)


@FAST
@given(snapshots())
def test_nothing_lost_or_duplicated(snapshot: Snapshot) -> None:
    """(e) Every active, non-global, non-template unit is assigned once or pending, never both;
    nothing else is assigned; every action has a reason."""
    plan = schedule(snapshot)
    final = applied(snapshot, plan)
    pending = [p.unit for p in plan.pending]
    assert len(pending) == len(set(pending))
    assert len({p.assignment.unit for p in plan.placements}) == len(plan.placements)
    assert len({e.unit for e in plan.evictions}) == len(plan.evictions)
    reasons = [a.reason for a in plan.pending] + [a.reason for a in plan.placements]
    reasons += [a.reason for a in plan.evictions] + [a.reason for a in plan.updates]
    assert all(reasons)
    # The unlimited stand-in for an unknown capacity never shows (4611686018427387.904 CPU, 4E memory).
    assert not any("4611686" in reason or "4E" in reason for reason in reasons)
    for name, spec in snapshot.units.items():
        if not spec.active or spec.requirements.is_global:
            assert name not in final and name not in pending
        elif parse_name(name).is_template:
            assert name in pending and name not in final
        else:
            assert (name in final) != (name in pending), name
    for update in plan.updates:
        assert update.assignment.machine == snapshot.assignments[update.assignment.unit].machine


def _scoring_every_machine(snapshot: Snapshot) -> Decision:
    """The plan with the shortcut of `placement._quick` turned off: every machine is scored."""
    with patch("fleetd.engine.placement._quick", return_value=None):
        return schedule(snapshot)


@FAST
@given(snapshots())
def test_policy_orders_pick_what_scoring_every_machine_picks(snapshot: Snapshot) -> None:
    """(f) Walking the policy orders (fleetd.engine.order) is only a faster way to the same plan."""
    assert schedule(snapshot) == _scoring_every_machine(snapshot)


def _large_snapshot(seed: int, policy: str) -> Snapshot:
    """Dozens of machines of mixed (some unknown) capacities, hundreds of units with demands and
    metadata rules, a few already placed: the walks skip machines, stop early and break ties."""
    rng = random.Random(seed)
    machines = {}
    for i in range(40):
        mid = f"{i:04d}" + "b" * 28
        cap = Resources(cpu=rng.choice((0, 2000, 4000, 8000)), memory=rng.choice((0, 4 * G, 8 * G, 16 * G)))
        machines[mid] = Machine(id=mid, metadata={"zone": rng.choice("abc")}, capacity=cap)
    units, assignments = {}, {}
    for i in range(400):
        name = f"u{i:03d}.service"
        rules = parse_metadata([rng.choice(("zone=a", "zone!=b", "zone in (a, c)"))]) if rng.random() < 0.3 \
            else parse_metadata([])
        demand = Resources(cpu=rng.choice((0, 100, 250, 500, 1000)), memory=rng.choice((0, G // 4, G, 2 * G)))
        req = Requirements(metadata=rules, resources=demand,
                           policy=rng.choice((None, None, "spread", "binpack")))
        units[name] = UnitSpec(Unit(name, "h1", TargetState.LAUNCHED), req)
        if rng.random() < 0.1:
            mid = rng.choice(sorted(machines))
            assignments[name] = Assignment(name, mid, "h1", TargetState.LAUNCHED)
    return Snapshot(units, machines, assignments, policy)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("policy", ["binpack", "spread"])
def test_policy_orders_match_scoring_every_machine_at_scale(seed: int, policy: str) -> None:
    snapshot = _large_snapshot(seed, policy)
    plan = schedule(snapshot)
    assert plan == _scoring_every_machine(snapshot)
    assert len(plan.placements) > 200
