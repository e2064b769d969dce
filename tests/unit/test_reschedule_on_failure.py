"""RescheduleOnFailure: the options (tables), the failure verdict (pure, fake time), the
scheduler's moves, and three in-memory fleetd nodes whose fake systemd fails a unit."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path

import pytest
from test_fleetctl_lifecycle import Rig, rig  # noqa: F401  (the fixture)
from test_loops import HELLO, eventually, eventually_async
from test_scheduler import M1, M2, M3, evicted, machine, pending, placed, snap, spec

from fleetd.engine import failures
from fleetd.engine.scheduler import schedule
from fleetd.errors import InvalidRequirements
from fleetd.model.requirements import parse_requirements, validate_requirements
from fleetd.model.reschedule import Reschedule
from fleetd.model.states import TargetState
from fleetd.model.unitfile import UnitFile

THREE = [machine(M1), machine(M2), machine(M3)]
RULE = Reschedule(attempts=2, delay=10.0)


def requirements(extra: str):
    text = "[Service]\nExecStart=/bin/true\n[X-Fleet]\n" + extra + "\n"
    found = parse_requirements("a.service", UnitFile.parse(text))
    validate_requirements(found)
    return found


@pytest.mark.parametrize("extra, rule", [
    ("", None),
    ("RescheduleOnFailure=false\nRescheduleAttempts=5", None),
    ("RescheduleOnFailure=true", Reschedule(3, 10.0)),
    ("RescheduleOnFailure=yes\nRescheduleAttempts=0\nRescheduleDelay=500ms", Reschedule(0, 0.5)),
    ("RescheduleOnFailure=true\nRescheduleDelay=2m", Reschedule(3, 120.0)),
    ("RescheduleOnFailure=true\nRescheduleDelay=7", Reschedule(3, 7.0)),
])
def test_options(extra: str, rule: Reschedule | None) -> None:
    assert requirements(extra).reschedule == rule


@pytest.mark.parametrize("extra, message", [
    ("RescheduleAttempts=-1", 'RescheduleAttempts must be a whole number from 0 to 100, not "-1"'),
    ("RescheduleAttempts=101", "not \"101\""),
    ("RescheduleAttempts=three", "not \"three\""),
    ("RescheduleDelay=soon", 'RescheduleDelay must be a duration such as 10s, 500ms or 2m'),
    ("RescheduleDelay=-5s", "not \"-5s\""),
    ("RescheduleDelay=2d", "not \"2d\""),
    ("RescheduleOnFailure=maybe", 'RescheduleOnFailure must be true or false, not "maybe"'),
    ("RescheduleOnFailure=true\nGlobal=true", "Global cannot be used with RescheduleOnFailure"),
    ("RescheduleOnFailure=true\nMachineID=abc", "MachineID cannot be used with RescheduleOnFailure"),
])
def test_bad_options_are_refused(extra: str, message: str) -> None:
    with pytest.raises(InvalidRequirements, match=message):
        requirements(extra)


def test_each_attempt_waits_twice_as_long() -> None:
    assert [RULE.wait_before(n) for n in (1, 2, 3)] == [10.0, 20.0, 40.0]


# the verdict --------------------------------------------------------------------------------


def one_unit(placed_on: str = M1):
    s = spec("a.service", reschedule=RULE)
    snapshot = snap([s], THREE, {"a.service": placed_on})
    return snapshot, {"a.service": s.unit}


@pytest.mark.parametrize("failed_on, seen_ago, move, gave_up, due", [
    ({M1: "h1"}, 0.0, False, False, 110.0),  # first failure: wait RescheduleDelay (10 s)
    ({M1: "h1"}, 10.0, True, False, None),
    ({M2: "h1", M1: "h1"}, 15.0, False, False, 105.0),  # second failure: wait 20 s
    ({M2: "h1", M1: "h1"}, 20.0, True, False, None),
    ({M2: "h1", M3: "h1", M1: "h1"}, 99.0, False, True, None),  # 3 failures > 2 attempts
    ({M2: "h1"}, 99.0, False, False, None),  # failed elsewhere; fine where it is
])
def test_verdict(failed_on: dict[str, str], seen_ago: float, move: bool, gave_up: bool,
                 due: float | None) -> None:
    snapshot, units = one_unit()
    seen = {("a.service", m, "h1"): 100.0 - seen_ago for m in failed_on}
    verdict = failures.judge({"a.service": failed_on}, units, snapshot.units, snapshot.assignments,
                             seen, 100.0)
    assert ("a.service" in verdict.move_now) is move
    assert ("a.service" in verdict.gave_up) is gave_up
    assert verdict.due == due
    assert verdict.failed == {"a.service": frozenset(failed_on)}


def test_records_of_an_old_file_or_a_gone_unit_are_stale() -> None:
    snapshot, units = one_unit()
    records = {"a.service": {M1: "old"}, "gone.service": {M2: "h1"}}
    verdict = failures.judge(records, units, snapshot.units, snapshot.assignments, {}, 0.0)
    assert verdict.stale == (("a.service", M1), ("gone.service", M2)) and verdict.failed == {}


def test_memory_starts_the_delay_when_it_first_sees_a_record() -> None:
    snapshot, units = one_unit()
    memory = failures.FailureMemory()
    records = {"a.service": {M1: "h1"}}
    assert memory.verdict(records, units, snapshot.units, snapshot.assignments, 50.0).due == 60.0
    assert memory.verdict(records, units, snapshot.units, snapshot.assignments, 60.0).move_now


# the scheduler -------------------------------------------------------------------------------


def test_a_failed_unit_moves_and_never_back_to_a_machine_that_failed_it() -> None:
    snapshot, _ = one_unit()
    plan = schedule(replace(snapshot, failed={"a.service": frozenset({M1, M2})},
                            reschedule_now=frozenset({"a.service"})))
    assert evicted(plan) == {"a.service": f"failed on machine {M1[:8]}; placed elsewhere "
                                          "(RescheduleOnFailure)"}
    assert placed(plan) == {"a.service": M3}


def test_a_unit_every_machine_failed_stays_failed_with_the_reason() -> None:
    snapshot, _ = one_unit()
    plan = schedule(replace(snapshot, failed={"a.service": frozenset({M1, M2, M3})},
                            reschedule_now=frozenset({"a.service"})))
    assert evicted(plan) == {} and "failed it already (RescheduleOnFailure)" in pending(plan)["a.service"]


def test_used_up_attempts_are_the_pending_reason() -> None:
    snapshot, _ = one_unit()
    plan = schedule(replace(snapshot, gave_up={"a.service": "failed on 3 machine(s)"}))
    assert pending(plan) == {"a.service": "failed on 3 machine(s)"} and evicted(plan) == {}


# three in-memory nodes ------------------------------------------------------------------------

FLAKY = "[X-Fleet]\nRescheduleOnFailure=true\nRescheduleDelay=0\nRescheduleAttempts=1\n"


async def failed_on(rig: Rig, unit: str) -> set[str]:  # noqa: F811
    """The hosts (a, b, c) with a failure record for `unit`."""
    registry = rig.cluster.registry
    listing = await registry.kv.get_prefix(registry.keys.failures + unit + "/")
    by_id = {rig.mid(n): n for n in "abc"}
    return {by_id[kv.key.rsplit("/", 1)[1]] for kv in listing.items}


async def test_a_unit_failing_on_its_host_runs_on_another(rig: Rig) -> None:  # noqa: F811
    rig.cluster.systemd["a"].fail_start.add("flaky.service")
    for name in "bc":
        await rig.fleetctl("cordon", rig.mid(name))
    await rig.cluster.submit("flaky.service", HELLO + FLAKY, TargetState.LAUNCHED)
    await eventually_async(lambda: _equals(failed_on(rig, "flaky.service"), {"a"}))
    for name in "bc":
        await rig.fleetctl("uncordon", rig.mid(name))
    await eventually(lambda: rig.where("flaky.service") in (["b"], ["c"]))


async def test_after_the_attempts_it_stays_failed_and_says_why(rig: Rig) -> None:  # noqa: F811
    for systemd in rig.cluster.systemd.values():
        systemd.fail_start.add("flaky.service")
    await rig.cluster.submit("flaky.service", HELLO + FLAKY, TargetState.LAUNCHED)

    async def reason() -> bool:
        run = await rig.fleetctl("list-unit-files", "--fields", "unit,reason", "--no-legend")
        return "RescheduleAttempts=1 used up" in run.out

    await eventually_async(reason, timeout=10)
    assert len(await failed_on(rig, "flaky.service")) == 2  # tried on two machines, then left


async def _equals(found: Awaitable[set[str]], wanted: set[str]) -> bool:
    return await found == wanted


@pytest.mark.parametrize("option, message", [
    ("RescheduleAttempts=-1", 'RescheduleAttempts must be a whole number from 0 to 100, not "-1"'),
    ("RescheduleDelay=soon", 'RescheduleDelay must be a duration such as 10s'),
])
async def test_submit_refuses_bad_values(rig: Rig, tmp_path: Path, option: str,  # noqa: F811
                                         message: str) -> None:
    path = tmp_path / "bad.service"
    path.write_text(HELLO + f"[X-Fleet]\nRescheduleOnFailure=true\n{option}\n")
    run = await rig.fleetctl("submit", str(path))
    assert run.code == 1 and f"invalid unit bad.service: {message}" in run.err, run
    assert await rig.cluster.registry.get_unit("bad.service") is None


async def test_list_units_says_why_a_failed_unit_stays_failed(rig: Rig) -> None:  # noqa: F811
    for systemd in rig.cluster.systemd.values():
        systemd.fail_start.add("flaky.service")
    await rig.cluster.submit("flaky.service", HELLO + FLAKY, TargetState.LAUNCHED)

    async def told() -> bool:
        run = await rig.fleetctl("list-units")
        return "flaky.service: failed on 2 machine(s)" in run.err and "failed" in run.out

    await eventually_async(told, timeout=10)
