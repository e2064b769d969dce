"""The rebalance plan (pure tables), and fleetctl rebalance over three in-memory nodes."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from test_fleetctl_lifecycle import Rig, rig  # noqa: F401  (the fixture)
from test_loops import eventually
from test_scheduler import M1, M2, M3, machine, snap, spec

from fleetd.engine.decision import BINPACK
from fleetd.engine.rebalance import plan
from fleetd.model.resources import Resources

THREE = [machine(M1), machine(M2), machine(M3)]


def after(snapshot, steps) -> Counter[str]:
    where = {n: a.machine for n, a in snapshot.assignments.items()}
    for step in steps:
        assert where[step.unit] == step.away
        where[step.unit] = step.to
    return Counter(where.values())


def test_units_that_piled_up_while_hosts_were_away_spread_again() -> None:
    units = [spec(f"u{i}.service") for i in range(6)]
    snapshot = snap(units, THREE, {f"u{i}.service": M1 for i in range(6)})
    steps = plan(snapshot, 10)
    assert len(steps) == 4 and after(snapshot, steps) == Counter({M1: 2, M2: 2, M3: 2})
    assert steps[0].why.startswith(f"spread: 6 units on {M1[:8]}, 0 on ")
    assert len(plan(snapshot, 1)) == 1


@pytest.mark.parametrize("assigned", [
    {"a.service": M1, "b.service": M2, "c.service": M3},
    {"a.service": M1, "b.service": M1, "c.service": M2},  # 2/1/0 differs by 2 but 2->0 is 1/1/1
])
def test_a_balanced_cluster_needs_at_most_what_improves(assigned: dict[str, str]) -> None:
    snapshot = snap([spec(n) for n in assigned], THREE, assigned)
    steps = plan(snapshot, 10)
    assert max(after(snapshot, steps).values()) - min(
        after(snapshot, steps).get(m, 0) for m in (M1, M2, M3)) <= 1


def test_pinned_units_followers_and_cordoned_machines_are_left_alone() -> None:
    units = [spec("pin.service", metadata={"host": ("one",)}),
             spec("p2.service", metadata={"host": ("one",)}),
             spec("lead.service"), spec("follow.service", machine_of=("lead.service",)),
             spec("x.service"), spec("y.service")]
    machines = [machine(M1, host="one"), machine(M2, host="two"), machine(M3, host="three")]
    assigned = {n.unit.name: M1 for n in units}
    snapshot = replace(snap(units, machines, assigned), machine_states={M3: "cordoned"})
    steps = plan(snapshot, 10)
    assert {s.unit for s in steps} <= {"x.service", "y.service"}
    assert all(s.to == M2 for s in steps) and steps


def test_binpack_gathers_units_on_fuller_machines() -> None:
    machines = [replace(machine(m), capacity=Resources(cpu=4000)) for m in (M1, M2)]
    units = [spec("small.service", resources=Resources(cpu=1000)),
             spec("big.service", resources=Resources(cpu=3000))]
    snapshot = replace(snap(units, machines, {"small.service": M1, "big.service": M2}), policy=BINPACK)
    (step,) = plan(snapshot, 10)
    assert list(after(snapshot, [step]).values()) == [2]  # both on one machine, the other empty
    assert (step.unit, step.to) == ("big.service", M1)  # the best fit: it fills M1 exactly
    assert step.why.startswith(f"binpack: {M1[:8]} is 25% full, {M2[:8]} would be 0%")


async def test_rebalance_dry_run_then_moves_in_batches(rig: Rig) -> None:  # noqa: F811
    for name in "bc":
        await rig.fleetctl("cordon", rig.mid(name))
    await rig.start(*(f"r{i}.service" for i in range(6)))
    assert all(rig.where(f"r{i}.service") == ["a"] for i in range(6))
    for name in "bc":
        await rig.fleetctl("uncordon", rig.mid(name))
    dry = await rig.fleetctl("rebalance", "--dry-run")
    assert dry.code == 0 and dry.out.splitlines()[0].split() == ["UNIT", "FROM", "TO", "WHY"]
    assert len(dry.out.splitlines()) == 5 and all(rig.where(f"r{i}.service") == ["a"] for i in range(6))
    run = await rig.fleetctl("rebalance", "--batch", "2", "--timeout", "30")
    assert run.code == 0, run
    assert run.out.count("moved from") == 4 and "batch 2 of 2" in run.out
    await eventually(lambda: Counter(h for i in range(6) for h in rig.where(f"r{i}.service"))
                     == Counter({"a": 2, "b": 2, "c": 2}))
    again = await rig.fleetctl("rebalance", "--dry-run")
    assert again.out.strip() == "Nothing to rebalance: every unit is where the placement goal wants it"
