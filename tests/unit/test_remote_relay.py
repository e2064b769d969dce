"""status / journal / restart through the registry relay: the API and the owning host's
executor over one MemoryKV, with a fake command runner standing in for systemctl/journalctl."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fleetd.agent.executor import Executor
from fleetd.api.http import make_app
from fleetd.api.relay import Relay
from fleetd.model.machine import Machine
from fleetd.model.states import SystemdState, TargetState, UnitState
from fleetd.model.unit import Assignment
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

HELLO = [{"section": "Service", "name": "ExecStart", "value": "/bin/sleep 1000"}]
M1, M2 = "1" * 32, "2" * 32


class FakeProcess:
    def __init__(self, output: bytes, code: int, stay_open: bool) -> None:
        self.stdout = asyncio.StreamReader()
        self.stdout.feed_data(output)
        if not stay_open:
            self.stdout.feed_eof()
        self.code, self.killed = code, False

    async def wait(self) -> int:
        while not self.stdout.at_eof():
            await asyncio.sleep(0.01)
        return -9 if self.killed else self.code

    def kill(self) -> None:
        if not self.stdout.at_eof():
            self.killed = True
            self.stdout.feed_eof()


class FakeRunner:
    """Answers argv with canned output; journal -f stays open until killed."""

    def __init__(self, output: bytes = b"", code: int = 0) -> None:
        self.output, self.code = output, code
        self.calls: list[tuple[str, ...]] = []
        self.processes: list[FakeProcess] = []

    async def __call__(self, argv: Sequence[str]) -> FakeProcess:
        self.calls.append(tuple(argv))
        process = FakeProcess(self.output, self.code, stay_open="-f" in argv)
        self.processes.append(process)
        return process


@pytest.fixture
def registry() -> Registry:
    return Registry(MemoryKV(), Keys("/t/"))


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner(b"\xe2\x97\x8f hello.service - Hello\n   Active: active (running)\n", 0)


@pytest.fixture
async def client(registry: Registry, runner: FakeRunner) -> AsyncIterator[TestClient]:
    executor = Executor(registry, M2, lambda: 0, spawn=runner, coalesce=0.01)
    task = asyncio.create_task(executor.run())
    relay = Relay(registry, lambda: 0, answer_timeout=0.5, idle_check=0.3)
    async with TestClient(TestServer(make_app(registry, "t", relayed=relay))) as c:
        yield c
    task.cancel()


async def create(client: TestClient, name: str, options: list | None = None) -> None:
    resp = await client.put(f"/fleet/v1/units/{name}", json={"options": options or HELLO})
    assert resp.status == 201, await resp.text()


async def place(registry: Registry, unit: str, machine: str, state: TargetState) -> None:
    await registry.register_machine(Machine(machine, "10.0.0.2"), 0)
    record = await registry.get_unit(unit)
    assert record is not None
    assignment = Assignment(unit, machine, record.hash, record.desired)
    await registry.kv.put(registry.keys.assignment(machine, unit), codec.encode_assignment(assignment))
    await registry.put_state(UnitState(unit, machine, record.hash, state,
                                       SystemdState("loaded", "active", "running")), 0)


async def records(resp) -> list[dict]:
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/x-ndjson"
    return [json.loads(line) for line in (await resp.text()).splitlines()]


async def relay_keys(registry: Registry) -> list[str]:
    listing = await registry.kv.get_prefix("/t/exec")
    return [item.key for item in listing.items]


async def eventually_no_relay_keys(registry: Registry) -> None:
    for _ in range(100):
        if not await relay_keys(registry):
            return
        await asyncio.sleep(0.02)
    assert await relay_keys(registry) == []


async def error_of(resp, code: int) -> str:
    assert resp.status == code, await resp.text()
    return (await resp.json())["error"]["message"]


async def test_status_runs_systemctl_on_the_owning_host_and_streams_it(client, registry, runner):
    await create(client, "hello.service")
    await place(registry, "hello.service", M2, TargetState.LAUNCHED)
    got = await records(await client.get("/fleet/v1/units/hello.service/status"))
    assert runner.calls == [("systemctl", "status", "-l", "--no-pager", "--", "hello.service")]
    assert "".join(r.get("data", "") for r in got) == runner.output.decode()
    assert got[-1] == {"machine": M2, "exit": 0}
    assert {r["machine"] for r in got} == {M2}
    await eventually_no_relay_keys(registry)


async def test_exit_status_of_the_command_is_passed_on(client, registry, runner):
    runner.code = 3
    await create(client, "hello.service")
    await place(registry, "hello.service", M2, TargetState.LOADED)
    got = await records(await client.get("/fleet/v1/units/hello.service/status"))
    assert got[-1] == {"machine": M2, "exit": 3}


async def test_journal_lines_and_output_mode(client, registry, runner):
    await create(client, "hello.service")
    await place(registry, "hello.service", M2, TargetState.LAUNCHED)
    got = await records(await client.get("/fleet/v1/units/hello.service/journal",
                                         params={"lines": "5", "output": "cat"}))
    assert runner.calls == [("journalctl", "--unit=hello.service", "--no-pager", "-n", "5",
                             "-o", "cat")]
    assert got[-1]["exit"] == 0


async def test_journal_follow_streams_until_the_client_leaves(client, registry, runner):
    await create(client, "hello.service")
    await place(registry, "hello.service", M2, TargetState.LAUNCHED)
    resp = await client.get("/fleet/v1/units/hello.service/journal", params={"follow": "true"})
    assert resp.status == 200
    first = json.loads(await resp.content.readline())
    assert first["data"] == runner.output.decode()
    assert runner.calls[0][-1] == "-f"
    runner.processes[0].stdout.feed_data(b"a new line\n")
    assert json.loads(await resp.content.readline()) == {"machine": M2, "data": "a new line\n"}
    resp.close()
    for _ in range(100):
        if runner.processes[0].killed:
            break
        await asyncio.sleep(0.02)
    assert runner.processes[0].killed
    await eventually_no_relay_keys(registry)


async def test_restart_runs_systemctl_restart(client, registry, runner):
    await create(client, "hello.service")
    await place(registry, "hello.service", M2, TargetState.LAUNCHED)
    got = await records(await client.post("/fleet/v1/units/hello.service/restart"))
    assert runner.calls == [("systemctl", "restart", "--", "hello.service")]
    assert got[-1] == {"machine": M2, "exit": 0}


async def test_unknown_unit_is_404_with_fleets_message(client):
    resp = await client.get("/fleet/v1/units/nope.service/status")
    assert await error_of(resp, 404) == "Unit nope.service does not exist."
    resp = await client.get("/fleet/v1/units/nope.service/journal")
    assert await error_of(resp, 404) == "Unit nope.service does not exist."


async def test_inactive_unit_is_409_with_fleets_messages(client, runner):
    await create(client, "hello.service")
    resp = await client.get("/fleet/v1/units/hello.service/status")
    assert await error_of(resp, 409) == "Unit hello.service does not appear to be loaded."
    resp = await client.get("/fleet/v1/units/hello.service/journal")
    assert await error_of(resp, 409) == "Unit hello.service does not appear to be running."
    assert runner.calls == []


async def test_silent_host_is_504_and_the_request_is_withdrawn(client, registry):
    await create(client, "hello.service")
    await place(registry, "hello.service", M1, TargetState.LAUNCHED)  # no executor on M1
    resp = await client.get("/fleet/v1/units/hello.service/status")
    assert "did not answer within 0.5 s" in await error_of(resp, 504)
    assert await relay_keys(registry) == []


@pytest.mark.parametrize("query, message", [
    ({"lines": "abc"}, "lines: expected a whole number from 0 to 10000"),
    ({"lines": "10001"}, "lines: expected a whole number from 0 to 10000"),
    ({"lines": "-1"}, "lines: expected a whole number from 0 to 10000"),
    ({"follow": "maybe"}, "follow: expected true or false"),
    ({"output": "short;rm"}, 'output: invalid mode "short;rm"'),
])
async def test_bad_journal_options_are_400(client, registry, runner, query, message):
    await create(client, "hello.service")
    await place(registry, "hello.service", M2, TargetState.LAUNCHED)
    resp = await client.get("/fleet/v1/units/hello.service/journal", params=query)
    assert (await error_of(resp, 400)).startswith(message)
    assert runner.calls == []


async def test_invalid_unit_name_is_400(client):
    resp = await client.get("/fleet/v1/units/hello.bogus/status")
    assert await error_of(resp, 400) == 'invalid unit type: "bogus"'


async def test_global_unit_status_asks_every_hosting_machine(client, registry, runner):
    options = [*HELLO, {"section": "X-Fleet", "name": "Global", "value": "true"}]
    await create(client, "g.service", options)
    executor = Executor(registry, M1, lambda: 0, spawn=runner, coalesce=0.01)
    task = asyncio.create_task(executor.run())
    for machine in (M1, M2):
        await registry.register_machine(Machine(machine, "10.0.0.9"), 0)
        record = await registry.get_unit("g.service")
        await registry.put_state(UnitState("g.service", machine, record.hash, TargetState.LAUNCHED,
                                           SystemdState("loaded", "active", "running")), 0)
    got = await records(await client.get("/fleet/v1/units/g.service/status"))
    assert [r for r in got if "exit" in r] == [{"machine": M1, "exit": 0}, {"machine": M2, "exit": 0}]
    resp = await client.get("/fleet/v1/units/g.service/journal")
    assert await error_of(resp, 409) == "Unable to retrieve journal of global unit g.service."
    task.cancel()


async def test_executor_refuses_a_malformed_request(registry, runner):
    executor = Executor(registry, M2, lambda: 0, spawn=runner, coalesce=0.01)
    task = asyncio.create_task(executor.run())
    await registry.kv.put(registry.keys.exec_request(M2, "abc"),
                          json.dumps({"kind": "shell", "unit": "x.service", "lines": 1,
                                      "follow": False, "output": "short"}))
    for _ in range(100):
        listing = await registry.kv.get_prefix(registry.keys.exec_outputs("abc"))
        if listing.items and '"exit"' in listing.items[-1].value:
            break
        await asyncio.sleep(0.02)
    values = [item.value for item in listing.items]
    assert values[-1] == '{"exit": 2}'
    assert "refused request" in values[-2]
    assert runner.calls == []
    task.cancel()
