"""fleetctl end to end against the real API on a temp unix socket, backed by MemoryKV.

fleetctl's main() runs in a worker thread (its own event loop); the server and a tiny fake
engine+agent run in the test's loop and move units the way fleetd would.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from fleetctl.cli import main
from fleetd.api.http import make_app, serve
from fleetd.model.machine import Machine
from fleetd.model.states import SystemdState, TargetState, UnitState
from fleetd.model.unit import Assignment
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

M1 = "113f16a7" + "c" * 24
HELLO = "[Unit]\nDescription=Hello\n\n[Service]\nExecStart=/bin/sleep 1000\n"


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Run({self.code}, out={self.out!r}, err={self.err!r})"


class Env:
    """A served registry plus a way to run fleetctl against it."""

    def __init__(self, registry: Registry, socket_path: str) -> None:
        self.registry = registry
        self.environ = {"FLEETCTL_ENDPOINT": f"unix://{socket_path}"}

    async def fleetctl(self, *argv: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        code = await asyncio.to_thread(main, list(argv), out, err, self.environ)
        return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture
async def env(tmp_path: Path):
    registry = Registry(MemoryKV(), Keys("/test/"))
    path = str(tmp_path / "fleet.sock")
    runner = await serve(make_app(registry, "test", page_limit=2), path)  # pages get followed
    try:
        yield Env(registry, path)
    finally:
        await runner.cleanup()


async def fake_cluster(registry: Registry, active: str = "active") -> None:
    """Engine + agent in one loop: place on M1, report the desired state, unplace when inactive."""
    await registry.register_machine(Machine(M1, "10.0.0.1"), 0)
    while True:
        units = {u.name: u for u in await registry.list_units()}
        for unit in units.values():
            if unit.desired == TargetState.INACTIVE:
                await _unplace(registry, unit.name)
            else:
                await _place(registry, unit, active)
        for a in await registry.list_assignments():
            if a.unit not in units:
                await _unplace(registry, a.unit)
        await asyncio.sleep(0.02)


async def _place(registry: Registry, unit, active: str) -> None:
    a = Assignment(unit.name, M1, unit.hash, unit.desired)
    await registry.kv.put(registry.keys.assignment(M1, unit.name), codec.encode_assignment(a))
    launched = unit.desired == TargetState.LAUNCHED
    systemd = SystemdState(
        "loaded", active if launched else "inactive", "running" if launched else "dead"
    )
    await registry.put_state(UnitState(unit.name, M1, unit.hash, unit.desired, systemd), 0)


async def _unplace(registry: Registry, name: str) -> None:
    await registry.kv.delete(registry.keys.assignment(M1, name))
    await registry.delete_state(name, M1)


@pytest.fixture
async def cluster(env: Env):
    task = asyncio.create_task(fake_cluster(env.registry))
    yield env
    task.cancel()


@pytest.fixture
def hello(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hello.service").write_text(HELLO)
    return tmp_path / "hello.service"


# global flags and usage ---------------------------------------------------------------------------


async def test_version(env) -> None:
    for argv in (["version"], ["--version"], ["-v"]):
        run = await env.fleetctl(*argv)
        assert run.code == 0 and run.out.startswith("fleetctl version ")


async def test_unreachable_endpoint_is_a_clear_error(tmp_path) -> None:
    sock = tmp_path / "none.sock"
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(
        main, ["--endpoint", f"unix://{sock}", "list-units"], out, err, {}
    )
    assert code == 1
    assert f"cannot reach fleetd at unix://{sock}" in err.getvalue()


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("unix://var/run/fleet.sock", 'unable to connect to host "var" with scheme "unix"'),
        ("/var/run/fleet.sock", "URL scheme undefined"),
    ],
)
async def test_bad_endpoints(env, endpoint, message) -> None:
    run = await env.fleetctl("--endpoint", endpoint, "list-units")
    assert run.code == 1 and message in run.err


async def test_flag_after_verb_wins_over_env(env, tmp_path) -> None:
    run = await env.fleetctl("list-units", "--endpoint", f"unix://{tmp_path}/other.sock")
    assert run.code == 1 and "other.sock" in run.err


async def test_unique_prefix_selects_the_verb(env) -> None:
    run = await env.fleetctl("list-m", "--no-legend")
    assert run.code == 0 and run.out == ""


async def test_unknown_verb_is_usage_error(env) -> None:
    assert (await env.fleetctl("frobnicate")).code == 2


@pytest.mark.parametrize("verb", ["submit", "load", "start", "stop", "unload", "destroy"])
async def test_no_units_given_exits_1(env, verb) -> None:
    run = await env.fleetctl(verb)
    assert run.code == 1 and "No units given" in run.err


async def test_sign_is_refused(env, hello) -> None:
    run = await env.fleetctl("submit", "--sign", "hello.service")
    assert run.code == 2 and "DEPRECATED" in run.err


# submit / cat / lazy create -----------------------------------------------------------------------


async def test_submit_and_cat(env, hello) -> None:
    run = await env.fleetctl("submit", "hello")
    assert (run.code, run.out) == (0, "Unit hello.service inactive\n")
    run = await env.fleetctl("cat", "hello")
    assert (run.code, run.out) == (0, HELLO)
    again = await env.fleetctl("submit", "hello.service")
    assert (again.code, again.out, again.err) == (0, "", "")


async def test_cat_errors(env) -> None:
    assert (await env.fleetctl("cat")).err.strip() == "One unit file must be provided"
    run = await env.fleetctl("cat", "nope")
    assert run.code == 1 and run.err.strip() == "Unit nope.service not found"


async def test_missing_file(env, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = await env.fleetctl("submit", "ghost.service")
    assert run.code == 1
    assert run.err.strip() == (
        "Error creating units: unable to find Unit(ghost.service) in Registry or on filesystem"
    )
    run = await env.fleetctl("submit", "web@1.service")
    assert run.err.strip() == (
        "Error creating units: unable to find template "
        "Unit(web@.service) in Registry or on filesystem"
    )


async def test_instance_from_template_on_disk_and_in_registry(env, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "web@.service").write_text(HELLO)
    assert (await env.fleetctl("submit", "web@1.service")).code == 0
    assert (await env.fleetctl("submit", "web@.service")).code == 0
    (tmp_path / "web@.service").unlink()
    assert (await env.fleetctl("submit", "web@2.service")).code == 0
    assert (await env.fleetctl("cat", "web@2.service")).out == HELLO


async def test_invalid_unit_writes_nothing(env, hello, tmp_path) -> None:
    (tmp_path / "bad.service").write_text(HELLO + "[X-Fleet]\nMachineID=a\nGlobal=true\n")
    run = await env.fleetctl("submit", "hello", "bad")
    assert run.code == 1 and "MachineID cannot be used with Global" in run.err
    assert await env.registry.list_units() == []


async def test_unknown_xfleet_key_only_warns(env, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "typo.service").write_text(HELLO + "[X-Fleet]\nMachineMetdata=a=b\n")
    run = await env.fleetctl("submit", "typo")
    assert run.code == 0
    assert 'unrecognized requirement in [X-Fleet] section: "MachineMetdata"' in run.err


async def test_replace_rules(env, hello) -> None:
    await env.fleetctl("submit", "hello")
    hello.write_text(HELLO.replace("1000", "2000"))
    run = await env.fleetctl("submit", "hello")
    assert "WARNING: Unit hello.service in registry differs from local unit file" in run.err
    assert "1000" in (await env.fleetctl("cat", "hello")).out
    run = await env.fleetctl("submit", "--replace", "hello")
    assert run.code == 0 and "2000" in (await env.fleetctl("cat", "hello")).out
    run = await env.fleetctl("submit", "--replace", "hello")
    assert "Found same Unit(hello.service) in Registry, nothing to do" in run.out
    await env.fleetctl("load", "--no-block", "hello")
    hello.write_text(HELLO.replace("1000", "3000"))
    run = await env.fleetctl("submit", "--replace", "hello")
    assert "Warning: can not replace Unit(hello.service) in state 'loaded'" in run.err
    assert "2000" in (await env.fleetctl("cat", "hello")).out


# blocking verbs -----------------------------------------------------------------------------------


async def test_no_block_triggers(env, hello) -> None:
    run = await env.fleetctl("start", "--no-block", "hello")
    assert run.code == 0
    assert run.out.splitlines()[-1] == "Triggered unit hello.service start"
    assert (await env.registry.get_unit("hello.service")).desired == TargetState.LAUNCHED


async def test_start_waits_for_launched_and_active(cluster, hello) -> None:
    run = await cluster.fleetctl("start", "hello")
    assert run.code == 0, run
    assert run.out.splitlines() == [
        "Unit hello.service inactive",
        "Unit hello.service launched on 113f16a7.../10.0.0.1",
    ]
    units = await cluster.fleetctl("list-units", "--no-legend")
    assert units.out == "hello.service\t113f16a7.../10.0.0.1\tactive\trunning\n"
    files = await cluster.fleetctl("list-unit-files", "--fields", "unit,dstate,state")
    assert files.out.splitlines()[1] == "hello.service\tlaunched\tlaunched"


async def test_start_fails_when_systemd_reports_failed(env, hello) -> None:
    task = asyncio.create_task(fake_cluster(env.registry, active="failed"))
    try:
        run = await env.fleetctl("start", "hello")
    finally:
        task.cancel()
    assert run.code == 1 and "failed" in run.err


async def test_start_times_out_after_block_attempts(env, hello) -> None:
    run = await env.fleetctl("start", "--block-attempts", "1", "hello")
    assert run.code == 1
    assert "timed out waiting for unit hello.service to report state launched" in run.err


async def test_start_template_without_a_count_is_refused_before_writing(
    env, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "web@.service").write_text(HELLO)
    run = await env.fleetctl("start", "web@.service")
    assert (run.code, run.out) == (1, "")
    assert run.err == (
        "Error: web@.service is a template; start instances such as web@1.service, or give a "
        "count with --instances N (or Instances=N in its [X-Fleet] section)\n"
    )
    assert await env.registry.list_units() == []


async def test_load_stop_unload_destroy(cluster, hello) -> None:
    run = await cluster.fleetctl("load", "hello")
    assert run.out.splitlines()[-1] == "Unit hello.service loaded on 113f16a7.../10.0.0.1"
    run = await cluster.fleetctl("stop", "hello")  # already loaded: nothing to do
    assert (run.code, run.out, run.err) == (0, "", "")
    await cluster.fleetctl("start", "hello")
    run = await cluster.fleetctl("stop", "hello")
    assert run.code == 0, run
    assert run.err.strip() == "Successfully stopped units [hello.service]."
    run = await cluster.fleetctl("unload", "hello")
    assert run.code == 0 and run.out.strip() == "Unit hello.service inactive"
    assert run.err.strip() == "Successfully unloaded units [hello.service]."
    run = await cluster.fleetctl("stop", "hello")
    assert (
        run.code == 1 and run.err.strip() == "Unable to stop unit hello.service in state inactive"
    )
    await cluster.fleetctl("start", "hello")
    run = await cluster.fleetctl("destroy", "hello")
    assert (run.code, run.out) == (0, "Destroyed hello.service\n")
    assert await cluster.registry.list_states() == []
    run = await cluster.fleetctl("destroy", "hello")
    assert (run.code, run.err.strip()) == (0, "Units not found in registry")


async def test_list_machines(cluster) -> None:
    await asyncio.sleep(0.05)
    run = await cluster.fleetctl("list-machines", "-l")
    assert run.out.splitlines() == ["MACHINE\t\t\t\t\tIP\t\tMETADATA\tSTATE",
                                    f"{M1}\t10.0.0.1\t-\t\tready"]
    bad = await cluster.fleetctl("list-machines", "--fields", "machine,nope")
    assert bad.code == 1 and bad.err.strip() == 'Invalid key in output format: "nope"'


async def test_destroy_waits_for_states_to_go_unless_no_block(env, hello) -> None:
    await env.fleetctl("submit", "hello")
    unit = await env.registry.get_unit("hello.service")
    systemd = SystemdState("loaded", "active", "running")
    await env.registry.put_state(
        UnitState(unit.name, M1, unit.hash, TargetState.LAUNCHED, systemd), 0
    )
    run = await env.fleetctl("destroy", "--block-attempts", "1", "hello")
    assert run.code == 1 and "timed out waiting for unit hello.service" in run.err
    await env.fleetctl("submit", "hello")
    run = await env.fleetctl("destroy", "--no-block", "hello")
    assert (run.code, run.out) == (0, "Destroyed hello.service\n")


async def test_lists_follow_pages(env, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for i in range(5):
        (tmp_path / f"u{i}.service").write_text(HELLO)
    await env.fleetctl("submit", *(f"u{i}" for i in range(5)))
    run = await env.fleetctl("list-unit-files", "--no-legend", "--fields", "unit")
    assert run.out.split() == [f"u{i}.service" for i in range(5)]


async def test_tmachine_is_deprecated_but_works(env, hello) -> None:
    await env.fleetctl("submit", "hello")
    run = await env.fleetctl("list-unit-files", "--fields", "unit,tmachine")
    assert run.code == 0 and "deprecated" in run.err
    assert run.out.splitlines() == ["UNIT		TMACHINE", "hello.service	-"]


async def test_debug_logs_requests(env) -> None:
    run = await env.fleetctl("--debug", "list-machines")
    assert "DEBUG: GET http://fleetd/fleet/v1/machines" in run.err


async def test_env_request_timeout_must_be_a_number(env) -> None:
    env.environ["FLEETCTL_REQUEST_TIMEOUT"] = "soon"
    run = await env.fleetctl("list-units")
    assert run.code == 2 and "FLEETCTL_REQUEST_TIMEOUT" in run.err


async def test_a_brief_etcd_outage_behind_fleetd_is_retried(env) -> None:
    env.registry.kv.fail(True)  # fleetd answers 503 until etcd is back

    async def back_soon() -> None:
        await asyncio.sleep(0.7)
        env.registry.kv.fail(False)

    healer = asyncio.create_task(back_soon())
    run = await env.fleetctl("list-machines")
    await healer
    assert run.code == 0, run


async def test_a_lasting_etcd_outage_is_reported(env) -> None:
    env.registry.kv.fail(True)
    run = await env.fleetctl("list-machines")
    env.registry.kv.fail(False)
    assert run.code == 1 and "registry is down" in run.err, run
