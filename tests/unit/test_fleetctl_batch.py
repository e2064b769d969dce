"""fleetctl's requests, counted with --debug against the real API over MemoryKV (fixtures of
test_fleetctl): submit/load/start read the registry with one listing and write with ONE POST,
stop/unload move units with one POST, and waits poll with one list call per round."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import test_fleetctl as base

from fleetctl import waiting
from fleetctl.client import ApiError, Client
from fleetctl.commands.base import Context
from fleetd.api import schema
from fleetd.model.states import TargetState

env, cluster = base.env, base.cluster  # the fixtures (not the real cluster of tests/conftest.py)
HELLO, M1 = base.HELLO, base.M1
LAUNCHED, LOADED, INACTIVE = TargetState.LAUNCHED, TargetState.LOADED, TargetState.INACTIVE
UNITS = "/fleet/v1/units"


def requests(run: base.Run) -> list[str]:
    """`METHOD /path` of every request fleetctl made, in order (from --debug)."""
    found = []
    for line in run.err.splitlines():
        if line.startswith("DEBUG: "):
            method, url = line.split()[1:3]
            found.append(f"{method} {url.removeprefix('http://fleetd')}")
    return found


@pytest.fixture
def units_dir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench@.service").write_text(HELLO)
    (tmp_path / "web@.service").write_text(HELLO + "\n[X-Fleet]\nInstances=3\n")
    (tmp_path / "g.service").write_text(HELLO + "\n[X-Fleet]\nGlobal=true\n")
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.service").write_text(HELLO)
    return tmp_path


async def desired(registry) -> dict[str, TargetState]:
    return {u.name: u.desired for u in await registry.list_units()}


async def test_start_of_a_thousand_instances_is_one_listing_and_one_post(env, units_dir) -> None:
    run = await env.fleetctl("--debug", "start", "--no-block", "--instances", "1000", "bench@.service")
    assert run.code == 0, run.err[-500:]
    assert requests(run) == [f"GET {UNITS}", f"POST {UNITS}"]
    lines = run.out.splitlines()
    assert lines[:2] == ["Triggered unit bench@.service submit", "Triggered unit bench@1.service submit"]
    assert lines[-1] == "Triggered unit bench@1000.service start" and len(lines) == 2001
    assert await desired(env.registry) == {
        "bench@.service": INACTIVE, **{f"bench@{i}.service": LAUNCHED for i in range(1, 1001)}}


async def test_submit_of_many_units_is_one_post(env, units_dir) -> None:
    run = await env.fleetctl("--debug", "submit", "a", "b", "c", "a")
    assert run.code == 0, run
    assert requests(run) == [f"GET {UNITS}", f"POST {UNITS}"]
    assert run.out.splitlines() == [f"Unit {n}.service inactive" for n in "abc"]
    again = await env.fleetctl("--debug", "submit", "a", "b", "c")
    assert again.out == "" and set(requests(again)) == {f"GET {UNITS}"}  # the listing's pages only


async def test_load_creates_and_moves_units_in_one_post(env, units_dir) -> None:
    await env.fleetctl("submit", "a")
    await env.fleetctl("start", "--no-block", "b")
    run = await env.fleetctl("--debug", "load", "--no-block", "a", "b", "c")
    assert run.code == 0, run
    assert [r for r in requests(run) if not r.startswith("GET")] == [f"POST {UNITS}"]
    assert run.out.splitlines() == ["Triggered unit c.service submit"] + [
        f"Triggered unit {n}.service load" for n in "abc"]
    assert await desired(env.registry) == dict.fromkeys(["a.service", "b.service", "c.service"], LOADED)


async def test_blocking_start_of_instances_writes_once(cluster, units_dir) -> None:
    run = await cluster.fleetctl("--debug", "start", "web@.service")
    assert run.code == 0, run
    writes = [r for r in requests(run) if not r.startswith("GET")]
    assert writes == [f"POST {UNITS}"]
    assert not any(r.startswith(f"GET {UNITS}/web@") for r in requests(run)[:2])  # planning: a listing
    for n in (1, 2, 3):
        assert f"Unit web@{n}.service launched on 113f16a7.../10.0.0.1" in run.out


async def test_scale_down_destroys_without_a_post_when_nothing_else_changes(env, units_dir) -> None:
    assert (await env.fleetctl("start", "--no-block", "--instances", "5", "web@")).code == 0
    run = await env.fleetctl("--debug", "start", "--no-block", "--instances", "2", "web@")
    assert run.code == 0, run
    assert [r for r in requests(run) if not r.startswith("GET")] == [f"DELETE {UNITS}"]  # all 3
    assert [line for line in run.out.splitlines() if line.startswith("Destroyed")] == [
        f"Destroyed web@{n}.service" for n in (3, 4, 5)]


async def test_replacing_a_running_unit_keeps_its_target_state(cluster, units_dir) -> None:
    assert (await cluster.fleetctl("start", "a")).code == 0
    (units_dir / "a.service").write_text(HELLO.replace("1000", "2000"))
    run = await cluster.fleetctl("--debug", "start", "--replace", "a")
    assert run.code == 0, run
    assert [r for r in requests(run) if not r.startswith("GET")] == [f"POST {UNITS}"]
    assert run.out.splitlines() == [
        "Unit a.service inactive", "Unit a.service launched on 113f16a7.../10.0.0.1"]
    assert "2000" in (await cluster.fleetctl("cat", "a")).out
    assert await desired(cluster.registry) == {"a.service": LAUNCHED}


@pytest.mark.parametrize(("verb", "state"), [("load", LOADED), ("start", LAUNCHED)])
async def test_global_units_are_triggered_not_waited_for(env, units_dir, verb, state) -> None:
    run = await env.fleetctl(verb, "g")  # nothing places units here: a wait would never end
    assert (run.code, run.out.splitlines()) == (
        0, ["Unit g.service inactive", f"Triggered global unit g.service {verb}"])
    assert [u.name for u in await env.registry.list_globals()] == ["g.service"]
    assert await desired(env.registry) == {"g.service": state}


async def test_stop_and_unload_of_instances_are_one_post_each(cluster, units_dir) -> None:
    assert (await cluster.fleetctl("start", "web@")).code == 0
    for verb, state in (("stop", LOADED), ("unload", INACTIVE)):
        run = await cluster.fleetctl("--debug", verb, "web@")
        assert run.code == 0, run
        assert [r for r in requests(run) if not r.startswith("GET")] == [f"POST {UNITS}"]
        assert set((await desired(cluster.registry)).values()) == {INACTIVE, state}


async def test_an_entry_refused_after_a_race_is_an_error(env, units_dir, monkeypatch) -> None:
    async def raced(self: Client, entries) -> list[schema.UnitResult]:
        return [schema.UnitResult(name="a.service", status=201),
                schema.UnitResult(name="b.service", status=409, message="unit already exists")]

    monkeypatch.setattr(Client, "submit_units", raced)
    run = await env.fleetctl("submit", "a", "b")
    assert (run.code, run.out) == (1, "Unit a.service inactive\n")
    assert run.err.strip() == 'Error creating units: unit "b.service": unit already exists'


@pytest.mark.parametrize(("argv", "message"), [
    (["load", "a", "c"], "Error creating units: etcd is down"),  # c is new
    (["load", "a"], "Error loading units: etcd is down"),  # only a desired-state change
    (["start", "a"], "Error starting units: etcd is down"),
])
async def test_a_refused_post_names_what_failed(env, units_dir, monkeypatch, argv, message) -> None:
    assert (await env.fleetctl("submit", "a")).code == 0

    async def down(self: Client, entries) -> list[schema.UnitResult]:
        raise ApiError(503, "etcd is down")

    monkeypatch.setattr(Client, "submit_units", down)
    run = await env.fleetctl(*argv)
    assert (run.code, run.out, run.err.strip()) == (1, "", message)


# waiting: one list call per poll ----------------------------------------------------------------


class ListingClient:
    """Answers list calls from scripted rounds and records every call."""

    def __init__(self, units: list[list[schema.Unit]], states: list[list[schema.UnitState]]) -> None:
        self.units, self.states = units, states
        self.calls: list[str] = []

    async def list_units(self) -> list[schema.Unit]:
        self.calls.append("list_units")
        return self.units.pop(0) if len(self.units) > 1 else self.units[0]

    async def list_states(self, unit_name=None, machine_id=None) -> list[schema.UnitState]:
        self.calls.append(f"list_states {unit_name}")
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    async def list_machines(self) -> list[schema.Machine]:
        self.calls.append("list_machines")
        return [schema.Machine(id=M1, primary_ip="10.0.0.1")]

    async def get_unit(self, name: str) -> schema.Unit | None:
        self.calls.append(f"get_unit {name}")
        return next((u for u in self.units[0] if u.name == name), None)


def unit(name: str, state: TargetState, machine: str | None = None) -> schema.Unit:
    return schema.Unit(name=name, current_state=state, machine_id=machine)


def state(name: str, active: str) -> schema.UnitState:
    return schema.UnitState(name=name, hash="ab", machine_id=M1, systemd_load_state="loaded",
                            systemd_active_state=active, systemd_sub_state="running")


@pytest.fixture
def fast(monkeypatch) -> None:
    monkeypatch.setattr(waiting, "POLL_INTERVAL", 0.001)


async def test_waiting_for_many_units_lists_once_per_poll(fast) -> None:
    names = ["a.service", "b.service", "c.service"]
    client = ListingClient([[unit(n, INACTIVE) for n in names],
                            [unit(n, LAUNCHED, M1) for n in names]], [[]])
    out, err = io.StringIO(), io.StringIO()
    done = await waiting.wait_for_states(Context(client, out, err), names, "start", "launched", 0, False)  # type: ignore[arg-type]
    assert [u.name for u in done or []] == names
    assert client.calls == ["list_units", "list_units", "list_machines"]
    assert out.getvalue().splitlines() == [f"Unit {n} launched on 113f16a7.../10.0.0.1" for n in names]


async def test_waiting_times_out_per_unit_within_the_budget(fast) -> None:
    names = ["a.service", "b.service"]
    client = ListingClient([[unit("a.service", LOADED), unit("b.service", INACTIVE)]], [[]])
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(client, out, err)  # type: ignore[arg-type]
    assert await waiting.wait_for_states(ctx, names, "load", "loaded", 1, False) is None
    assert out.getvalue() == "Unit a.service loaded\n"
    assert err.getvalue() == "timed out waiting for unit b.service to report state loaded\n"
    # a listing for both, then (one unit left) one GET per poll until the budget is spent
    assert client.calls == ["list_units"] + ["get_unit b.service"] * ((waiting.polls_allowed(1) or 0) - 1)


async def test_waiting_for_systemd_active_lists_states_once_per_poll(fast) -> None:
    units = [unit(n, LAUNCHED, M1) for n in ("a.service", "b.service")]
    client = ListingClient([[]], [[state("a.service", "activating")],
                                  [state("a.service", "active"), state("b.service", "failed")]])
    out, err = io.StringIO(), io.StringIO()
    assert await waiting.wait_for_active(Context(client, out, err), units, 0) is False  # type: ignore[arg-type]
    assert client.calls == ["list_states None", "list_states None"]
    assert err.getvalue() == "Unit b.service failed to start: systemd reports failed/running\n"
