"""fleetctl update: the rollout planner (tables) and the command against the served API over
MemoryKV, where a fake engine+agent reports each unit's state with its stored hash."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import test_fleetctl as base

from fleetctl import rollout
from fleetctl.rollout import Seen, Status, Target
from fleetd.model.machine import Machine
from fleetd.model.unitfile import UnitFile
from fleetd.registry.store import Registry

V1 = "[Service]\nExecStart=/bin/sh -c 'echo v1; exec sleep infinity'\n"
V2 = V1.replace("v1", "v2")
BAD = "[Service]\nExecStart=/bin/false\n"
M1, env = base.M1, base.env  # the served-API fixture (not the real cluster)


@pytest.mark.parametrize(
    ("targets", "batch", "in_place", "batches", "current"),
    [
        ([Target("a", "old", True)], 1, (), (("a",),), ()),
        ([Target(f"w@{i}", "old", True) for i in (1, 2, 3)], 2, (), (("w@1", "w@2"), ("w@3",)), ()),
        ([Target("a", "old", False), Target("b", "old", True)], 1, ("a",), (("b",),), ()),
        ([Target("a", "new", True), Target("b", "old", True)], 5, (), (("b",),), ("a",)),
        ([Target("a", "old", True)], 0, (), (("a",),), ()),
    ],
)
def test_plan(targets, batch, in_place, batches, current) -> None:
    assert rollout.plan(targets, "new", batch) == rollout.Plan(in_place, batches, current)


@pytest.mark.parametrize(
    ("seen", "since", "now", "status", "healthy"),
    [
        ({}, {}, 10.0, Status.WAITING, {}),
        ({"a": [Seen("old", "active")]}, {}, 10.0, Status.WAITING, {}),
        ({"a": [Seen("new", "activating")]}, {"a": 1.0}, 10.0, Status.WAITING, {}),  # a break resets
        ({"a": [Seen("new", "active")]}, {}, 10.0, Status.WAITING, {"a": 10.0}),
        ({"a": [Seen("new", "active")]}, {"a": 6.0}, 10.0, Status.WAITING, {"a": 6.0}),
        ({"a": [Seen("new", "active")]}, {"a": 5.0}, 10.0, Status.HEALTHY, {"a": 5.0}),
        ({"a": [Seen("new", "failed")]}, {}, 10.0, Status.FAILED, {}),
        ({"a": [Seen("old", "failed")]}, {}, 10.0, Status.WAITING, {}),  # the old content failing
    ],
)
def test_judge_one_unit(seen, since, now, status, healthy) -> None:
    verdict = rollout.judge(["a"], "new", seen, since, now, min_healthy=5.0)
    assert (verdict.status, dict(verdict.healthy_since)) == (status, healthy)


def test_judge_waits_for_every_unit_of_the_batch() -> None:
    seen = {"a": [Seen("new", "active")], "b": [Seen("old", "active")]}
    verdict = rollout.judge(["a", "b"], "new", seen, {"a": 0.0}, 10.0, 0.0)
    assert verdict.status is Status.WAITING and rollout.pending(["a", "b"], verdict) == ["b"]
    failed = rollout.judge(["a", "b"], "new", {**seen, "b": [Seen("new", "failed")]}, {}, 1.0, 0.0)
    assert failed.status is Status.FAILED and failed.failed == ("b",)


def test_versions_and_batch_line() -> None:
    assert rollout.versions(["a", "b"], {"a": "n" * 40, "b": "o" * 40}, "n" * 40) == [
        "Unit a is on nnnnnnn (new version)", "Unit b is on ooooooo (previous version)"]
    assert rollout.batch_line(1, 3, ["w@1", "w@2"], "abcdef123") == (
        "batch 1/3: updating w@1, w@2 to abcdef1")


# against the served API ------------------------------------------------------------------------


def digest(text: str) -> str:
    return UnitFile.parse(text).hash


async def fake_cluster(registry: Registry, bad: str) -> None:
    """Place every unit on M1 and report it active on its stored hash (failed on `bad`)."""
    await registry.register_machine(Machine(M1, "10.0.0.1"), 0)
    while True:
        units = await registry.list_units()
        for unit in units:
            await base._place(registry, unit, "failed" if unit.hash == bad else "active")
        await asyncio.sleep(0.02)


@pytest.fixture
async def served(env, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "web@.service").write_text(V1)
    task = asyncio.create_task(fake_cluster(env.registry, digest(BAD)))
    assert (await env.fleetctl("start", "web@1", "web@2", "web@3")).code == 0
    assert (await env.fleetctl("submit", "web@.service")).code == 0
    yield env, tmp_path
    task.cancel()


async def stored_hashes(registry: Registry) -> dict[str, str]:
    return {u.name: u.hash for u in await registry.list_units()}


async def test_update_of_a_template_rolls_every_instance_one_batch_at_a_time(served) -> None:
    env, tmp = served
    (tmp / "web@.service").write_text(V2)
    run = await env.fleetctl("update", "--batch", "2", "--min-healthy-seconds", "0", "web@.service")
    assert run.code == 0, run
    new = digest(V2)[:7]
    assert [line for line in run.out.splitlines() if line.startswith("batch")] == [
        f"batch 1/2: updating web@1.service, web@2.service to {new}",
        f"batch 1/2: web@1.service, web@2.service active on {new}",
        f"batch 2/2: updating web@3.service to {new}",
        f"batch 2/2: web@3.service active on {new}",
    ]
    assert "Unit web@.service updated in place (not launched)" in run.out
    assert set((await stored_hashes(env.registry)).values()) == {digest(V2)}
    assert run.err == ""  # stderr is not a TTY: no progress line


async def test_a_failing_update_stops_and_rolls_back(served) -> None:
    env, tmp = served
    (tmp / "web@.service").write_text(BAD)
    run = await env.fleetctl("update", "--rollback", "--min-healthy-seconds", "0",
                             "--block-attempts", "3", "web@.service")
    assert run.code == 1, run
    assert "Unit(s) web@1.service failed on" in run.err
    assert "batch 2/" not in run.out  # stopped at the first batch
    assert "Rolling back web@1.service" in run.err
    assert "Unit web@1.service is on " + digest(V1)[:7] + " (previous version)" in run.err
    hashes = await stored_hashes(env.registry)
    assert {hashes[f"web@{i}.service"] for i in (1, 2, 3)} == {digest(V1)}


async def test_a_failing_update_without_rollback_reports_versions(served) -> None:
    env, tmp = served
    (tmp / "web@.service").write_text(BAD)
    run = await env.fleetctl("update", "--min-healthy-seconds", "0", "web@.service")
    assert run.code == 1
    assert f"Unit web@1.service is on {digest(BAD)[:7]} (new version)" in run.err
    assert f"Unit web@2.service is on {digest(V1)[:7]} (previous version)" in run.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["update", "nothere.service"], "unable to read unit file"),
        (["update", "--batch", "0", "web@.service"], "--batch must be at least 1"),
        (["update", "other@.service"], "no instances of other@.service in the registry"),
        (["update", "solo.service"], "solo.service is not in the registry"),
    ],
)
async def test_update_refuses_bad_input(served, argv, message) -> None:
    env, tmp = served
    for name in ("other@.service", "solo.service"):
        (tmp / name).write_text(V2)
    run = await env.fleetctl(*argv)
    assert run.code == 1 and message in run.err, run
    assert set((await stored_hashes(env.registry)).values()) == {digest(V1)}
