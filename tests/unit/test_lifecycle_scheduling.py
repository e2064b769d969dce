"""Cordoned and draining machines in the scheduler, and the machine-state rules (pure tables)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_scheduler import M1, M2, M3, evicted, machine, pending, placed, snap, spec

from fleetd.engine.scheduler import Snapshot, schedule
from fleetd.errors import InvalidInput, NotFound
from fleetd.model import lifecycle
from fleetd.model.resources import Resources
from fleetd.model.states import TargetState


def with_states(snapshot: Snapshot, **states: str) -> Snapshot:
    ids = {"m1": M1, "m2": M2, "m3": M3}
    return replace(snapshot, machine_states={ids[k]: v for k, v in states.items()})


THREE = [machine(M1), machine(M2), machine(M3)]


def test_a_cordoned_machine_gets_no_new_units_but_keeps_its_own() -> None:
    units = [spec("old.service"), *(spec(f"new{i}.service") for i in range(4))]
    plan = schedule(with_states(snap(units, THREE, {"old.service": M1}), m1="cordoned"))
    assert M1 not in placed(plan).values() and len(placed(plan)) == 4
    assert "old.service" not in evicted(plan)


def test_every_machine_cordoned_is_the_pending_reason() -> None:
    plan = schedule(with_states(snap([spec("a.service")], [machine(M1)]), m1="cordoned"))
    assert pending(plan) == {"a.service": f"machine {M1[:8]} is cordoned"}
    plan = schedule(with_states(snap([spec("a.service")], THREE), m1="cordoned", m2="draining",
                                m3="cordoned"))
    assert pending(plan) == {"a.service": "3 machines are cordoned or draining"}


def test_metadata_mismatch_is_told_apart_from_cordoned() -> None:
    units = [spec("a.service", metadata={"disk": ("ssd",)})]
    machines = [machine(M1, disk="ssd"), machine(M2, disk="hdd")]
    reason = pending(schedule(with_states(snap(units, machines), m1="cordoned")))["a.service"]
    assert reason.startswith(f"machine {M1[:8]} is cordoned") and "metadata" in reason


@pytest.mark.parametrize("state, moves", [("draining", True), ("cordoned", False), ("ready", False)])
def test_only_draining_moves_units(state: str, moves: bool) -> None:
    plan = schedule(with_states(snap([spec("a.service")], THREE, {"a.service": M1}), m1=state))
    assert (evicted(plan) == {"a.service": f"machine {M1[:8]} is draining"}) is moves
    assert (placed(plan).get("a.service") in (M2, M3)) is moves


def test_draining_honours_conflicts_and_keeps_what_fits_nowhere() -> None:
    units = [spec(f"web@{i}.service", conflicts=("web@*.service",)) for i in (1, 2, 3)]
    assigned = {"web@1.service": M1, "web@2.service": M2, "web@3.service": M3}
    plan = schedule(with_states(snap(units, THREE, assigned), m1="draining"))
    assert evicted(plan) == {} and placed(plan) == {}
    reason = pending(plan)["web@1.service"]
    assert reason.startswith(f"machine {M1[:8]} is draining; it stays: no other machine can take it")
    assert "conflicts with" in reason


def test_draining_moves_a_machine_of_pair_together() -> None:
    units = [spec("ping.service"), spec("pong.service", machine_of=("ping.service",))]
    plan = schedule(with_states(snap(units, THREE, {"ping.service": M1, "pong.service": M1}),
                                m1="draining", m2="cordoned"))
    assert placed(plan) == {"ping.service": M3, "pong.service": M3}
    assert set(evicted(plan)) == {"ping.service", "pong.service"}


def test_draining_honours_resources() -> None:
    big = Resources(cpu=1500)
    machines = [replace(machine(m), capacity=Resources(cpu=2000)) for m in (M1, M2, M3)]
    units = [spec("big.service", resources=big), spec("b2.service", resources=big),
             spec("b3.service", resources=big)]
    assigned = {"big.service": M1, "b2.service": M2, "b3.service": M3}
    plan = schedule(with_states(snap(units, machines, assigned), m1="draining"))
    assert evicted(plan) == {} and "insufficient cpu" in pending(plan)["big.service"]


def test_global_units_stay_on_a_draining_machine() -> None:
    units = [spec("g.service", is_global=True), spec("a.service")]
    plan = schedule(with_states(snap(units, THREE, {"a.service": M1}), m1="draining"))
    assert "g.service" not in evicted(plan) and "g.service" not in pending(plan)
    assert placed(plan)["a.service"] != M1


def test_a_stuck_unit_still_gets_its_new_desired_state() -> None:
    units = [spec("only.service", desired=TargetState.LOADED)]
    plan = schedule(with_states(snap(units, [machine(M1)], {"only.service": M1}), m1="draining"))
    assert [u.assignment.desired.value for u in plan.updates] == ["loaded"]


# machine states ------------------------------------------------------------------------------


@pytest.mark.parametrize("stored, placed_, stuck, reported, shown", [
    ("", [], [], [], "ready"),
    ("cordoned", ["a"], [], ["a"], "cordoned"),
    ("draining", ["a"], [], ["a"], "draining"),
    ("draining", [], [], ["a"], "draining"),  # moved away but still stopping on the host
    ("draining", ["a"], ["a"], ["a"], "drained"),  # stuck: nothing movable left
    ("draining", [], [], [], "drained"),
])
def test_derived_state(stored: str, placed_: list[str], stuck: list[str], reported: list[str],
                       shown: str) -> None:
    assert lifecycle.derive(stored, placed_, stuck, reported) == shown


@pytest.mark.parametrize("current, wanted, stored", [
    ("ready", "cordoned", "cordoned"), ("ready", "draining", "draining"),
    ("cordoned", "draining", "draining"), ("draining", "draining", "draining"),
    ("draining", "ready", None), ("cordoned", "ready", None), ("ready", "ready", None),
])
def test_transitions(current: str, wanted: str, stored: str | None) -> None:
    assert lifecycle.transition(current, wanted, M1) == stored


def test_cordoning_a_draining_machine_is_refused() -> None:
    with pytest.raises(InvalidInput, match="is draining; uncordon it first"):
        lifecycle.transition("draining", "cordoned", M1)


@pytest.mark.parametrize("text", ["", "up", "drained", 3, None])
def test_requested_state_must_be_one_of_three(text: object) -> None:
    with pytest.raises(InvalidInput, match="state must be one of ready, cordoned, draining"):
        lifecycle.parse_requested(text)


@pytest.mark.parametrize("query, expected", [(M1, M1), ("1a2b", M1), ("3", M3), ("self", M2)])
def test_resolve(query: str, expected: str) -> None:
    assert lifecycle.resolve(query, [M1, M2, M3], M2) == expected


@pytest.mark.parametrize("query, known, error, message", [
    ("ffff", [M1], NotFound, "no machine matches 'ffff'"),
    ("zz", [M1], InvalidInput, "is not a machine id"),
    ("", [M1], InvalidInput, "is not a machine id"),
    ("1a", [M1, "1a" + "f" * 30], InvalidInput, "is ambiguous"),
    ("self", [M1], InvalidInput, "does not know its own machine id"),
])
def test_resolve_refuses(query: str, known: list[str], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        lifecycle.resolve(query, known, None)


# moves ---------------------------------------------------------------------------------------


def with_move(snapshot: Snapshot, unit: str, away: str, to: str = "") -> Snapshot:
    return replace(snapshot, moves={unit: lifecycle.Move(unit, away, to)})


def test_a_move_without_target_goes_where_the_scheduler_puts_it_but_not_home() -> None:
    plan = schedule(with_move(snap([spec("a.service")], THREE, {"a.service": M1}), "a.service", M1))
    assert evicted(plan) == {"a.service": f"moved off machine {M1[:8]} by an operator"}
    assert placed(plan)["a.service"] in (M2, M3) and plan.moves_done == ("a.service",)


def test_a_move_to_a_machine_goes_there_only() -> None:
    plan = schedule(with_move(snap([spec("a.service")], THREE, {"a.service": M1}), "a.service", M1, M3))
    assert placed(plan) == {"a.service": M3}


def test_a_move_the_target_refuses_keeps_the_unit_and_ends() -> None:
    units = [spec("a.service"), spec("b.service", conflicts=("a.service",))]
    snapshot = snap(units, THREE, {"a.service": M1, "b.service": M2})
    plan = schedule(with_move(snapshot, "a.service", M1, M2))
    assert evicted(plan) == {} and placed(plan) == {}
    assert "conflicts with b.service" in pending(plan)["a.service"]
    assert plan.moves_done == ("a.service",)


def test_a_move_of_a_unit_that_left_its_machine_already_is_withdrawn() -> None:
    plan = schedule(with_move(snap([spec("a.service")], THREE, {"a.service": M2}), "a.service", M1))
    assert plan.moves_done == ("a.service",) and evicted(plan) == {}
    plan = schedule(with_move(snap([], THREE), "gone.service", M1))
    assert plan.moves_done == ("gone.service",)


# one batch at a time -------------------------------------------------------------------------


def test_a_drain_hands_on_only_as_many_units_as_it_has_slots() -> None:
    units = [spec(f"u{i}.service") for i in range(3)]
    snapshot = with_states(snap(units, THREE, {f"u{i}.service": M1 for i in range(3)}), m1="draining")
    plan = schedule(replace(snapshot, drain_slots=1))
    assert list(evicted(plan)) == ["u0.service"] and list(placed(plan)) == ["u0.service"]
    assert pending(plan) == {}  # the others wait their turn without a reason
    assert evicted(schedule(replace(snapshot, drain_slots=0))) == {}
    assert len(evicted(schedule(snapshot))) == 3  # no limit


def test_units_that_cannot_leave_take_no_slot() -> None:
    units = [spec("a.service", conflicts=("a*",)), spec("a2.service", conflicts=("a*",)),
             spec("b.service")]
    assigned = {"a.service": M1, "a2.service": M2, "b.service": M1}
    snapshot = with_states(snap(units, [machine(M1), machine(M2)], assigned), m1="draining")
    plan = schedule(replace(snapshot, drain_slots=1))
    assert placed(plan) == {"b.service": M2}
    assert pending(plan)["a.service"].startswith(f"machine {M1[:8]} is draining; it stays")
