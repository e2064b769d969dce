"""Tier 2: cordon, drain and uncordon through fleetctl, over three in-memory fleetd nodes.

The nodes are `test_loops.Cluster` (heart, engine, agent and publisher wired as the daemon wires
them, MemoryKV for etcd, FakeUnitManager for systemd); the API is served on a temp socket as
node "a"'s fleetd (so `--self` means a). Where units run is asked of the fake systemd.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_fleetctl import Run
from test_loops import HELLO, Cluster, cancel, eventually

from fleetctl.cli import main
from fleetd.api import summary, watch
from fleetd.api.http import make_app, serve
from fleetd.model.states import TargetState


class Rig:
    """The cluster, its API, and fleetctl against it."""

    def __init__(self, cluster: Cluster, socket_path: str) -> None:
        self.cluster = cluster
        self.environ = {"FLEETCTL_ENDPOINT": f"unix://{socket_path}"}

    async def fleetctl(self, *argv: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        code = await asyncio.to_thread(main, list(argv), out, err, self.environ)
        return Run(code, out.getvalue(), err.getvalue())

    def mid(self, name: str) -> str:
        return self.cluster.machine_id(name)

    async def states(self) -> dict[str, str]:
        run = await self.fleetctl("list-machines", "-o", "json")
        return {m["machine"]: m["state"] for m in json.loads(run.out)}

    async def start(self, *names: str, extra: str = "") -> None:
        for name in names:
            await self.cluster.submit(name, HELLO + extra, TargetState.LAUNCHED)
        await eventually(lambda: all(self.cluster.running(n) for n in names))

    def where(self, unit: str) -> list[str]:
        return self.cluster.running(unit)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    cluster = Cluster(["a", "b", "c"])
    path = str(tmp_path / "fleet.sock")
    runner = await serve(make_app(cluster.registry, "test", machine_id=cluster.machine_id("a")), path)
    await eventually(lambda: len(cluster.nodes) == 3 and all(
        n.heart.lease for n in cluster.nodes.values()))
    try:
        yield Rig(cluster, path)
    finally:
        await runner.cleanup()
        await cluster.shutdown()


async def test_list_machines_shows_every_machine_ready(rig: Rig) -> None:
    await eventually(lambda: True)
    run = await rig.fleetctl("list-machines", "-l")
    lines = run.out.splitlines()
    assert lines[0].split() == ["MACHINE", "IP", "METADATA", "STATE"]
    assert all(line.endswith("\tready") for line in lines[1:]) and len(lines) == 4


async def test_cordon_keeps_units_but_takes_no_new_ones(rig: Rig) -> None:
    await rig.start("old.service")
    (home,) = rig.where("old.service")
    run = await rig.fleetctl("cordon", rig.mid(home)[:6])
    assert (run.code, run.out) == (0, f"Machine {rig.mid(home)[:8]} cordoned (was ready)\n")
    assert (await rig.states())[rig.mid(home)] == "cordoned"
    await rig.start(*(f"new{i}.service" for i in range(4)))
    assert all(rig.where(f"new{i}.service") != [home] for i in range(4))
    assert rig.where("old.service") == [home]
    again = await rig.fleetctl("cordon", rig.mid(home))
    assert again.out == f"Machine {rig.mid(home)[:8]} is already cordoned\n"
    back = await rig.fleetctl("uncordon", rig.mid(home))
    assert back.out == f"Machine {rig.mid(home)[:8]} uncordoned (was cordoned)\n"
    assert (await rig.states())[rig.mid(home)] == "ready"


async def test_drain_wait_moves_units_and_reports_drained(rig: Rig) -> None:
    await rig.start(*(f"u{i}.service" for i in range(6)))
    run = await rig.fleetctl("drain", "--self", "--wait", "--timeout", "20")
    assert run.code == 0, run
    assert run.out.splitlines()[0] == f"Machine {rig.mid('a')[:8]} draining (was ready)"
    assert run.out.splitlines()[-1] == f"Machine {rig.mid('a')[:8]} drained"
    assert all(rig.where(f"u{i}.service") and rig.where(f"u{i}.service") != ["a"] for i in range(6))
    assert (await rig.states())[rig.mid("a")] == "drained"
    again = await rig.fleetctl("drain", rig.mid("a"))
    assert (again.code, again.out) == (0, f"Machine {rig.mid('a')[:8]} is already draining\n")
    cordon = await rig.fleetctl("cordon", "--self")
    assert cordon.code == 1 and "is draining; uncordon it first" in cordon.err


async def test_units_that_fit_nowhere_stay_and_are_reported(rig: Rig) -> None:
    names = [f"web@{i}.service" for i in (1, 2, 3)]
    await rig.start(*names, extra="[X-Fleet]\nConflicts=web@*.service\n")
    await rig.start("g.service", extra="[X-Fleet]\nGlobal=true\n")
    (stuck,) = [n for n in names if rig.where(n) == ["a"]]
    run = await rig.fleetctl("drain", "--self", "--wait", "--timeout", "20")
    assert run.code == 0, run
    assert f"  {stuck} stays: machine {rig.mid('a')[:8]} is draining; it stays" in run.out
    assert rig.where(stuck) == ["a"] and "a" in rig.where("g.service")
    files = await rig.fleetctl("list-unit-files", "--fields", "unit,reason", "--no-legend")
    assert any(line.startswith(stuck) and "conflicts with" in line for line in files.out.splitlines())


async def test_a_unit_only_its_machine_may_run_stays(rig: Rig) -> None:
    await rig.start("only.service", extra="[X-Fleet]\nMachineMetadata=host=a\n")
    run = await rig.fleetctl("drain", rig.mid("a"), "--wait", "--timeout", "20")
    assert run.code == 0 and "only.service stays" in run.out and "do not match metadata" in run.out


async def test_drain_wait_times_out_with_what_is_left(rig: Rig) -> None:
    await rig.start("u.service")
    (home,) = rig.where("u.service")
    await cancel(rig.cluster.tasks[home])  # its fleetd hangs: nothing stops the unit there
    run = await rig.fleetctl("drain", rig.mid(home), "--wait", "--timeout", "1")
    assert run.code == 1 and "was not drained within 1 s (--timeout)" in run.err, run


@pytest.mark.parametrize("argv, message", [
    (("cordon",), "give exactly one of MACHINE or --self"),
    (("cordon", "abc", "--self"), "give exactly one of MACHINE or --self"),
    (("drain", "ffff"), "no machine matches 'ffff'"),
    (("uncordon", "zz"), "is not a machine id"),
    (("drain", "6"), "is ambiguous"),  # every test machine id starts with 6 (hex of a letter)
])
async def test_bad_machine_arguments(rig: Rig, argv: tuple[str, ...], message: str) -> None:
    run = await rig.fleetctl(*argv)
    assert run.code == 1 and message in run.err, run
    assert set((await rig.states()).values()) == {"ready"}


async def test_concurrent_drains_of_two_machines_both_hold(rig: Rig) -> None:
    first, second = await asyncio.gather(rig.fleetctl("drain", rig.mid("b")),
                                         rig.fleetctl("drain", rig.mid("c")))
    assert first.code == second.code == 0
    await eventually(lambda: True)
    states = await rig.states()
    assert states[rig.mid("b")] in ("draining", "drained") and states[rig.mid("c")] in (
        "draining", "drained")


async def test_summary_and_watch_show_machine_states(rig: Rig) -> None:
    await rig.fleetctl("cordon", rig.mid("b"))
    _, body = await summary.get_summary(rig.cluster.registry)
    assert {m.id: m.state for m in body.machines} == {
        rig.mid("a"): "ready", rig.mid("b"): "cordoned", rig.mid("c"): "ready"}
    keys = rig.cluster.registry.keys
    found = await rig.cluster.registry.kv.get(keys.machine_state(rig.mid("b")))
    assert watch.parse_kinds("machine-states") == ("machine-states",)
    assert watch._extra(keys, "machine-states", found.key, found.value) == {
        "machineID": rig.mid("b"), "state": "cordoned"}
    assert watch._extra(keys, "machine-states", found.key, None) == {
        "machineID": rig.mid("b"), "state": "ready", "deleted": True}


async def test_move_without_machine_goes_elsewhere(rig: Rig) -> None:
    await rig.start("m.service")
    (home,) = rig.where("m.service")
    run = await rig.fleetctl("move", "m", "--timeout", "20")
    assert run.code == 0, run
    await eventually(lambda: rig.where("m.service") not in ([], [home]))
    (now,) = rig.where("m.service")
    assert run.out == f"Unit m.service moved from {rig.mid(home)[:8]} to {rig.mid(now)[:8]}\n"


async def test_move_to_a_machine(rig: Rig) -> None:
    await rig.start("m.service")
    (home,) = rig.where("m.service")
    target = next(n for n in "abc" if n != home)
    run = await rig.fleetctl("move", "m.service", rig.mid(target)[:5], "--timeout", "20")
    assert run.code == 0, run
    await eventually(lambda: rig.where("m.service") == [target])


async def test_move_refusals_change_nothing(rig: Rig) -> None:
    await rig.start("pinned.service", extra="[X-Fleet]\nMachineMetadata=host=a\n")
    await rig.start("g.service", extra="[X-Fleet]\nGlobal=true\n")
    await rig.cluster.submit("idle.service", HELLO, TargetState.INACTIVE)
    await rig.fleetctl("cordon", rig.mid("c"))
    cases = {
        ("move", "pinned", rig.mid("b")): "cannot move to machine",
        ("move", "pinned"): "cannot move to any other machine",
        ("move", "ghost"): "unit does not exist",
        ("move", "g"): "is global",
        ("move", "idle"): "is not placed on any machine",
        ("move", "pinned", rig.mid("a")): "runs on machine",
        ("move", "pinned", "ffff"): "no machine matches",
    }
    for argv, message in cases.items():
        run = await rig.fleetctl(*argv)
        assert run.code == 1 and message in run.err, (argv, run)
    run = await rig.fleetctl("move", "pinned", rig.mid("b"))
    assert "do not match metadata host=a" in run.err or "does not match metadata" in run.err
    moved = await rig.cluster.registry.kv.get_prefix(rig.cluster.registry.keys.moves)
    assert moved.items == () and rig.where("pinned.service") == ["a"]
    other = await rig.start("free.service") or rig.where("free.service")[0]
    run = await rig.fleetctl("move", "free", rig.mid("c"))
    assert run.code == 1 and "is cordoned" in run.err and rig.where("free.service") == [other]
