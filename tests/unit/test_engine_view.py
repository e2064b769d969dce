"""The leader's in-memory model (fleetd.engine.view): listings, events, own writes, unit files."""

from __future__ import annotations

import pytest

from fleetd.engine.view import LeaderView
from fleetd.model.machine import Machine
from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment, Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from fleetd.registry.kv import Delete, KeyValue, Put, WatchEvent

KEYS = Keys("/t/")
PLAIN = UnitFile.parse("[Service]\nExecStart=/bin/true\n")
PINNED = UnitFile.parse("[Service]\nExecStart=/bin/true\n[X-Fleet]\nMachineMetadata=role=%i\n")
BROKEN_HASH = "f" * 64
M1, M2 = "1" * 32, "2" * 32


def unit(name: str, digest: str = PLAIN.hash, desired: TargetState = TargetState.LAUNCHED) -> Unit:
    return Unit(name, digest, desired)


def put(key: str, value: str, revision: int) -> WatchEvent:
    return WatchEvent("put", key, value, revision)


def delete(key: str, revision: int) -> WatchEvent:
    return WatchEvent("delete", key, "", revision)


def unit_event(u: Unit, revision: int) -> WatchEvent:
    return put(KEYS.unit(u.name), codec.encode_unit(u), revision)


def assignment_value(name: str, machine: str) -> tuple[str, str]:
    a = Assignment(name, machine, PLAIN.hash, TargetState.LAUNCHED)
    return KEYS.assignment(machine, name), codec.encode_assignment(a)


@pytest.fixture
def model() -> LeaderView:
    m = LeaderView(KEYS)
    m.add_file(PLAIN.hash, PLAIN.serialize())
    return m


def test_listing_replaces_a_section_and_counts_as_a_change(model: LeaderView) -> None:
    model.apply(unit_event(unit("old.service"), 3))
    before = model.version
    model.load("units", [KeyValue(KEYS.unit("a.service"), codec.encode_unit(unit("a.service")), 5, 5)], 9)
    assert list(model.units) == ["a.service"]
    assert list(model.specs) == ["a.service"]
    assert model.version > before


@pytest.mark.parametrize(("event", "changes"), [
    (unit_event(unit("b.service"), 20), True),
    (unit_event(unit("a.service"), 20), False),  # the same record again
    (unit_event(unit("a.service", desired=TargetState.LOADED), 10), False),  # not newer
    (unit_event(unit("a.service", desired=TargetState.LOADED), 20), True),
    (delete(KEYS.unit("a.service"), 20), True),
    (delete(KEYS.unit("nothing.service"), 20), False),
    (put(KEYS.machine(M1), codec.encode_machine(Machine(M1, "10.0.0.1")), 20), True),
    (put(KEYS.leader, "someone", 20), False),  # not a section the model keeps
])
def test_events_change_the_model_only_when_they_say_something_new(
        model: LeaderView, event: WatchEvent, changes: bool) -> None:
    model.apply(unit_event(unit("a.service"), 10))
    before = model.version
    assert model.apply(event) is changes
    assert (model.version > before) is changes


def test_own_writes_are_recorded_and_their_echo_ignored(model: LeaderView) -> None:
    key, value = assignment_value("a.service", M1)
    model.record_commit([Put(key, value)], 30)
    assert model.assignments["a.service"].machine == M1
    version = model.version
    assert model.apply(put(key, value, 30)) is False  # the watch echoes our own write
    assert model.version == version
    model.record_commit([Delete(key)], 31)
    assert "a.service" not in model.assignments
    assert model.apply(put(key, value, 30)) is False  # a late echo does not bring it back


def test_deleting_an_old_assignment_keeps_the_units_new_one(model: LeaderView) -> None:
    old_key, old_value = assignment_value("a.service", M1)
    new_key, new_value = assignment_value("a.service", M2)
    model.apply(put(old_key, old_value, 5))
    model.apply(put(new_key, new_value, 6))
    model.apply(delete(old_key, 7))
    assert model.assignments["a.service"].machine == M2


def test_pending_reasons_follow_their_keys(model: LeaderView) -> None:
    model.apply(put(KEYS.pending_reason("a.service"), "no machine", 5))
    assert model.pending == {"a.service": "no machine"}
    model.apply(delete(KEYS.pending_reason("a.service"), 6))
    assert model.pending == {}


def test_a_unit_waits_for_its_file_then_every_unit_using_it_gets_a_spec() -> None:
    model = LeaderView(KEYS)
    for i, name in enumerate(["web@1.service", "web@2.service", "solo.service"]):
        model.apply(unit_event(unit(name, PINNED.hash), 10 + i))
    assert model.missing_files() == {PINNED.hash}
    assert model.specs == {}
    assert model.add_file(PINNED.hash, PINNED.serialize()) == []
    assert model.missing_files() == set()
    # [X-Fleet] uses %i: each instance has its own requirements
    assert str(model.specs["web@1.service"].requirements.metadata) != \
        str(model.specs["web@2.service"].requirements.metadata)


@pytest.mark.parametrize(("text", "problem"), [
    (None, "unit file missing from the registry"),
    ("[X-Fleet]\nPolicy=sideways\n", "stored unit file is invalid"),
])
def test_units_whose_file_is_missing_or_invalid_are_left_out_with_a_reason(
        text: str | None, problem: str) -> None:
    model = LeaderView(KEYS)
    model.apply(unit_event(unit("bad.service", BROKEN_HASH), 10))
    problems = model.add_file(BROKEN_HASH, text)
    assert len(problems) == 1 and problem in problems[0]
    assert "bad.service" not in model.snapshot().units
    assert problem in model.invalid["bad.service"]
    assert model.missing_files() == set()  # not fetched again on every pass


def test_snapshot_is_a_copy_the_model_can_change_under(model: LeaderView) -> None:
    model.apply(unit_event(unit("a.service"), 10))
    snapshot = model.snapshot("spread")
    model.apply(delete(KEYS.unit("a.service"), 11))
    assert list(snapshot.units) == ["a.service"] and snapshot.policy == "spread"
    assert model.snapshot().units == {}


def test_changes_name_what_events_changed_and_a_listing_says_everything(model: LeaderView) -> None:
    model.take_changes()
    key, value = assignment_value("a.service", M1)
    model.apply(unit_event(unit("a.service"), 10))
    model.apply(put(key, value, 11))
    model.apply(put(KEYS.machine(M2), codec.encode_machine(Machine(M2, "10.0.0.2")), 12))
    model.apply(put(KEYS.pending_reason("b.service"), "no machine", 13))  # not scheduling input
    changes = model.take_changes()
    assert (changes.units, changes.machines, changes.relisted) == ({"a.service"}, {M2}, False)
    assert model.take_changes().units == frozenset()  # taken once
    model.apply(delete(KEYS.machine(M2), 14))
    assert model.take_changes().machines == {M2}
    model.load("pending", [], 20)
    assert not model.take_changes().relisted  # pending reasons are not scheduling input
    model.load("assign", [], 21)
    assert model.take_changes().relisted


def test_own_writes_are_not_noted_as_changes(model: LeaderView) -> None:
    model.take_changes()
    key, value = assignment_value("a.service", M1)
    model.record_commit([Put(key, value)], 30)
    model.record_commit([Delete(key)], 31)
    assert model.take_changes().units == frozenset()


def test_units_assigned_to_each_machine_follow_puts_moves_and_deletes(model: LeaderView) -> None:
    old_key, old_value = assignment_value("a.service", M1)
    new_key, new_value = assignment_value("a.service", M2)
    b_key, b_value = assignment_value("b.service", M1)
    model.apply(put(old_key, old_value, 5))
    model.apply(put(b_key, b_value, 6))
    assert model.assigned == {M1: {"a.service", "b.service"}}
    model.apply(put(new_key, new_value, 7))
    assert model.assigned == {M1: {"b.service"}, M2: {"a.service"}}
    model.record_commit([Delete(b_key)], 8)
    assert model.assigned == {M2: {"a.service"}}
    model.load("assign", [], 9)
    assert model.assigned == {}
