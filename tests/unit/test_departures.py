"""Tier 1: what the engine does about vanished machines: settle, fence grace, the brake (tables)."""

from __future__ import annotations

import pytest

from fleetd.engine.decision import Snapshot, UnitSpec
from fleetd.engine.departures import (
    Holds,
    alarm_record,
    decide,
    prune,
    restrict,
    track,
)
from fleetd.model.liveness import Liveness
from fleetd.model.machine import Machine
from fleetd.model.requirements import Requirements
from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment, Unit
from fleetd.registry.codec import decode_alarm

T = Liveness(agent_ttl=5, fence_grace=2)  # settle 1.5 s, fenced units held 2 s, window 5 s


def test_timings_keep_the_fencing_order() -> None:
    for ttl in (2, 5, 10, 30):
        for grace in (0, 2, 10):
            t = Liveness(agent_ttl=ttl, fence_grace=grace)
            assert t.keepalive < t.fence_after < t.ttl  # the agent fences itself before expiry
            assert t.hold_fenced >= t.settle and t.hold_fenced >= grace
            assert t.rejoin_after > t.ttl + t.hold_fenced


@pytest.mark.parametrize(("ages", "live", "held", "fenced", "braked"), [
    # one of five gone, just now: everything of it waits for the others to settle
    ({"m1": 0.2}, 4, {"m1"}, {"m1"}, set()),
    # settled, but AtMostOnce units still wait for the fence grace
    ({"m1": 1.7}, 4, set(), {"m1"}, set()),
    # past both: nothing held, its units move
    ({"m1": 2.5}, 4, set(), set(), set()),
    # two of five within the window: not more than half
    ({"m1": 3.0, "m2": 2.9}, 3, set(), set(), set()),
    # three of five within the window: the brake holds all three
    ({"m1": 3.0, "m2": 2.9, "m3": 2.0}, 2, {"m1", "m2", "m3"}, {"m1", "m2", "m3"}, {"m1", "m2", "m3"}),
    # three of five, but one left long before the window: not a mass failure
    ({"m1": 30.0, "m2": 2.9, "m3": 2.0}, 2, set(), set(), set()),
    # two machines, one gone: half is not more than half
    ({"m1": 3.0}, 1, set(), set(), set()),
    # the last machine gone: nothing to move to, and a brake
    ({"m1": 3.0}, 0, {"m1"}, {"m1"}, {"m1"}),
])
def test_holds_by_age(ages: dict[str, float], live: int, held: set[str], fenced: set[str],
                      braked: set[str]) -> None:
    now = 100.0
    left = {m: now - age for m, age in ages.items()}
    holds = decide(left, live, (), (), now, T)
    assert (set(holds.machines), set(holds.fenced), set(holds.braked)) == (held, fenced, braked)


def test_the_brake_holds_beyond_the_window_until_machines_return() -> None:
    left = {"m1": 0.0, "m2": 0.0, "m3": 0.0}
    assert decide(left, 2, {"m1", "m2", "m3"}, (), 60.0, T).braked == {"m1", "m2", "m3"}
    # m3 came back (track drops it from `left`): two of five gone is not a majority any more
    assert decide({"m1": 0.0, "m2": 0.0}, 3, {"m1", "m2", "m3"}, (), 60.0, T).braked == frozenset()


def test_confirmed_machines_are_released_and_do_not_brake_again() -> None:
    left = {"m1": 0.0, "m2": 0.0, "m3": 0.0}
    holds = decide(left, 2, {"m1", "m2", "m3"}, {"m1", "m2", "m3"}, 1.0, T)
    assert holds.braked == frozenset() and holds.machines == {"m1", "m2", "m3"}  # still settling
    assert decide(left, 2, (), {"m1", "m2", "m3"}, 3.0, T) == Holds(due=5.0)


def test_a_disabled_brake_only_settles() -> None:
    left = {"m1": 0.0, "m2": 0.0, "m3": 0.0}
    assert decide(left, 2, (), (), 3.0, T, brake=False).machines == frozenset()


def test_due_is_the_next_time_a_hold_ends() -> None:
    assert decide({"m1": 10.0}, 4, (), (), 10.2, T).due == pytest.approx(11.5)
    assert decide({"m1": 10.0}, 4, (), (), 11.6, T).due == pytest.approx(12.0)
    assert decide({}, 4, (), (), 11.6, T).due is None


def test_track_notes_machines_that_left_or_are_only_known_from_assignments() -> None:
    left = track({}, live={"a"}, previous={"a", "b"}, referenced={"c"}, now=7.0)
    assert left == {"b": 7.0, "c": 7.0}
    assert track(left, live={"a", "b"}, previous={"a"}, referenced={"c"}, now=9.0) == {"c": 7.0}


def test_prune_forgets_old_unreferenced_departures_but_not_braked_ones() -> None:
    left = {"old": 0.0, "young": 8.0, "held": 0.0, "busy": 0.0}
    holds = Holds(braked=frozenset({"held"}))
    assert set(prune(left, holds, {"busy"}, 10.0, T)) == {"young", "held", "busy"}


def spec(name: str, at_most_once: bool = False) -> UnitSpec:
    return UnitSpec(Unit(name, "h" * 64, TargetState.LAUNCHED), Requirements(at_most_once=at_most_once))


def test_restrict_hides_held_units_from_the_scheduler() -> None:
    units = {"a": spec("a"), "b": spec("b", at_most_once=True), "c": spec("c")}
    assignments = {"a": Assignment("a", "gone", "h" * 64, TargetState.LAUNCHED),
                   "b": Assignment("b", "fencing", "h" * 64, TargetState.LAUNCHED),
                   "c": Assignment("c", "fencing", "h" * 64, TargetState.LAUNCHED)}
    snap = Snapshot(units=units, machines={"x": Machine("x" * 32, "10.0.0.1")}, assignments=assignments)
    holds = Holds(machines=frozenset({"gone"}), fenced=frozenset({"fencing", "gone"}),
                  braked=frozenset({"gone"}))
    restricted, reasons = restrict(snap, holds)
    assert set(restricted.units) == {"c"} and set(restricted.assignments) == {"c"}
    assert set(reasons) == {"a"} and "mass failure" in reasons["a"]
    assert restrict(snap, Holds()) == (snap, {})


def test_the_alarm_record_round_trips_and_is_stable() -> None:
    record = alarm_record({"m2", "m1"}, 2, "2026-11-21T10:00:00+00:00")
    assert record == alarm_record({"m1", "m2"}, 2, "2026-11-21T10:00:00+00:00")
    machines, since, _ = decode_alarm(record)
    assert (frozenset(machines), since) == (frozenset({"m1", "m2"}), "2026-11-21T10:00:00+00:00")
    assert "2 of 4 machines" in record
    assert decode_alarm("not json")[:2] == ((), "")
