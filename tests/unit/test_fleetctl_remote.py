"""fleetctl status, journal, restart and ssh against the served API (MemoryKV), with the
owning host's executor running a fake systemctl/journalctl; ssh's resolution as tables."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import test_fleetctl as base
from test_remote_relay import FakeRunner

from fleetctl import sshcmd
from fleetctl.commands import ssh as ssh_command
from fleetd.agent.executor import Executor
from fleetd.api import schema
from fleetd.api.http import make_app, serve
from fleetd.api.relay import Relay
from fleetd.model.states import TargetState
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

M1 = base.M1
OUTPUT = b"\xe2\x97\x8f hello.service - Hello\n     Active: active (running)\n"


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner(OUTPUT, 0)


@pytest.fixture
async def env(tmp_path: Path, runner: FakeRunner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hello.service").write_text(base.HELLO)
    (tmp_path / "g.service").write_text(base.HELLO + "\n[X-Fleet]\nGlobal=true\n")
    registry = Registry(MemoryKV(), Keys("/test/"))
    relay = Relay(registry, lambda: 0, answer_timeout=1.0, idle_check=0.5)
    path = str(tmp_path / "fleet.sock")
    server = await serve(make_app(registry, "test", relayed=relay), path)
    tasks = [asyncio.create_task(base.fake_cluster(registry)),
             asyncio.create_task(Executor(registry, M1, lambda: 0, runner, 0.01).run())]
    yield base.Env(registry, path)
    for task in tasks:
        task.cancel()
    await server.cleanup()


async def test_status_prints_the_hosts_output_and_its_exit_code(env, runner):
    assert (await env.fleetctl("start", "hello.service")).code == 0
    run = await env.fleetctl("status", "hello")
    assert (run.code, run.out) == (0, OUTPUT.decode()), run
    assert runner.calls[-1] == ("systemctl", "status", "-l", "--no-pager", "--", "hello.service")
    runner.code = 3
    assert (await env.fleetctl("status", "hello.service")).code == 3


async def test_status_of_several_units_separates_them_with_a_blank_line(env):
    await env.fleetctl("start", "hello.service")
    run = await env.fleetctl("status", "hello.service", "hello.service")
    assert run.out == OUTPUT.decode() + "\n" + OUTPUT.decode(), run


async def test_status_json_prints_one_list_of_records(env):
    await env.fleetctl("start", "hello.service")
    run = await env.fleetctl("status", "-o", "json", "hello.service")
    records = json.loads(run.out)
    assert records[-1] == {"unit": "hello.service", "machine": M1, "exit": 0}
    assert "".join(r.get("data", "") for r in records) == OUTPUT.decode()


async def test_status_and_journal_refusals_use_fleets_messages(env):
    run = await env.fleetctl("status", "nope.service")
    assert (run.code, run.err.strip()) == (1, "Unit nope.service does not exist.")
    await env.fleetctl("submit", "hello.service")
    run = await env.fleetctl("status", "hello.service")
    assert (run.code, run.err.strip()) == (1, "Unit hello.service does not appear to be loaded.")
    run = await env.fleetctl("journal", "hello.service")
    assert (run.code, run.err.strip()) == (1, "Unit hello.service does not appear to be running.")
    run = await env.fleetctl("status")
    assert (run.code, run.err.strip()) == (1, "One or more units must be specified.")
    for argv in ([], ["a.service", "b.service"]):
        run = await env.fleetctl("journal", *argv)
        assert (run.code, run.err.strip()) == (1, "One unit file must be provided.")


async def test_journal_lines_and_output(env, runner):
    await env.fleetctl("start", "hello.service")
    run = await env.fleetctl("journal", "-n", "5", "--output", "cat", "--sudo", "--ssh-port",
                             "2222", "hello")
    assert run.code == 0 and run.out == OUTPUT.decode(), run
    assert runner.calls[-1] == ("journalctl", "--unit=hello.service", "--no-pager", "-n", "5",
                                "-o", "cat")
    run = await env.fleetctl("journal", "--output", "bogus", "hello.service")
    assert run.code == 1 and 'output: invalid mode "bogus"' in run.err


async def test_restart_stops_and_starts_a_launched_unit(env):
    await env.fleetctl("start", "hello.service")
    seen: list[str] = []

    async def record_desired() -> None:
        while True:
            unit = await env.registry.get_unit("hello.service")
            if unit is not None and (not seen or seen[-1] != unit.desired.value):
                seen.append(unit.desired.value)
            await asyncio.sleep(0.005)

    spy = asyncio.create_task(record_desired())
    await asyncio.sleep(0.05)
    run = await env.fleetctl("restart", "hello.service")
    spy.cancel()
    assert run.code == 0, run
    assert seen == ["launched", "loaded", "launched"]
    assert "Unit hello.service launched" in run.out


async def test_restart_refuses_inactive_and_unknown_units(env):
    await env.fleetctl("submit", "hello.service")
    run = await env.fleetctl("restart", "hello.service")
    assert (run.code, run.err.strip()) == (1, "Unable to restart unit hello.service in state inactive")
    run = await env.fleetctl("restart", "nope.service")
    assert (run.code, run.err.strip()) == (
        1, "Error creating units: unable to find Unit(nope.service) in Registry or on filesystem")


async def test_restart_lazy_creates_a_unit_from_its_local_file_as_fleet_did(env):
    """fleet's restart ran lazy create first: the new unit is stored (inactive), then refused."""
    run = await env.fleetctl("restart", "hello.service")
    assert run.out.strip() == "Unit hello.service inactive", run
    assert (run.code, run.err.strip()) == (1, "Unable to restart unit hello.service in state inactive")
    unit = await env.registry.get_unit("hello.service")
    assert unit is not None and unit.desired is TargetState.INACTIVE


async def test_restart_of_a_global_unit_runs_systemctl_restart_on_its_hosts(env, runner):
    await env.fleetctl("start", "g.service")
    for _ in range(100):
        if await env.registry.list_states("g.service"):
            break
        await asyncio.sleep(0.02)
    run = await env.fleetctl("restart", "g.service")
    assert run.code == 0, run
    assert runner.calls[-1] == ("systemctl", "restart", "--", "g.service")
    run = await env.fleetctl("journal", "g.service")
    assert run.err.strip() == "Unable to retrieve journal of global unit g.service."


async def test_ssh_execs_the_system_client(env, monkeypatch, tmp_path):
    calls: list[list[str]] = []
    monkeypatch.setattr(ssh_command, "EXEC", [lambda argv: calls.append(list(argv))])
    await env.fleetctl("start", "hello.service")
    known = tmp_path / "fleetctl" / "known_hosts"
    assert (await env.fleetctl("--known-hosts-file", str(known), "ssh", "hello.service", "--",
                               "uptime", "-p")).code == 0
    assert known.parent.is_dir()  # ssh adds new host keys there but would not create it
    assert (await env.fleetctl("ssh", "-A", "--ssh-port", "2222", "--ssh-user", "core",
                               "--strict-host-key-checking=false", "--ssh-timeout", "2.5",
                               "--machine", M1[:4])).code == 0
    checked = ["-o", "StrictHostKeyChecking=ask", "-o", f'UserKnownHostsFile="{known}"']
    unchecked = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 "-o", "LogLevel=ERROR"]
    assert calls == [["ssh", "-o", "ConnectTimeout=10", *checked, "-p", "22", "--", "10.0.0.1",
                      "uptime -p"],
                     ["ssh", "-o", "ConnectTimeout=3", *unchecked, "-l", "core", "-p", "2222",
                      "-A", "--", "10.0.0.1"]]
    run = await env.fleetctl("ssh", "nope")
    assert (run.code, run.err.strip()) == (1, sshcmd.NOT_FOUND)


MACHINES = [schema.Machine(id="ab" + "1" * 30, primary_ip="10.0.0.1"),
            schema.Machine(id="ac" + "2" * 30, primary_ip="10.0.0.2"),
            schema.Machine(id="web" + "3" * 29, primary_ip="10.0.0.3")]
UNITS = {"web.service": schema.Unit(name="web.service", machine_id="ac" + "2" * 30),
         "ab.service": schema.Unit(name="ab.service", machine_id="web" + "3" * 29),
         "idle.service": schema.Unit(name="idle.service", desired_state=TargetState.INACTIVE),
         "g.service": schema.Unit(name="g.service")}


@pytest.mark.parametrize("lookup, by, result", [
    ("ab", "", "Ambiguous argument, both machine and unit found for `ab`."),
    ("ab", "machine", "10.0.0.1"),
    ("ab", "unit", "10.0.0.3"),
    ("ac2", "", "10.0.0.2"),
    ("a", "", "found more than one machine"),
    ("a", "machine", "found more than one machine"),
    ("web.service", "", "10.0.0.2"),
    ("web", "unit", "10.0.0.2"),
    ("web", "", "Ambiguous argument"),
    ("idle", "", "Unit idle.service does not appear to be running."),
    ("g", "", "Unable to connect to global unit g.service."),
    ("zz", "", sshcmd.NOT_FOUND),
    ("", "machine", sshcmd.NOT_FOUND),
])
def test_ssh_resolution(lookup, by, result):
    try:
        got = sshcmd.resolve(lookup, MACHINES, UNITS, frozenset({"g.service"}), by)
    except sshcmd.SshError as exc:
        got = str(exc)
    assert got.startswith(result)


@pytest.mark.parametrize("kwargs, argv", [
    ({}, ["ssh", "-p", "22", "--", "10.0.0.1"]),
    ({"command": ["ls", "-l", "/"]}, ["ssh", "-p", "22", "--", "10.0.0.1", "ls -l /"]),
    ({"port": 2200, "forward_agent": True}, ["ssh", "-p", "2200", "-A", "--", "10.0.0.1"]),
])
def test_ssh_command_line(kwargs, argv):
    assert sshcmd.command_line("10.0.0.1", kwargs.pop("command", []), **kwargs) == argv
