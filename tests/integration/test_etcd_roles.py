"""Per-role etcd users on a real etcd with auth on, made by `fleetd etcd-setup`.

An agent-only host's user writes its own presence key, states, endpoint records and command
output, and reads what its agent needs; it is refused (and nothing is stored) when it writes
another machine's presence key or assignments, its own assignments, units/, files/,
global/, the leader key or remote-command requests. A whole fleetd agent runs as that user:
it registers, runs the unit a control-plane host's engine (running as a control user) pins to
it, and reports its state. Running etcd-setup again changes nothing that works.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from test_etcd_tls import _enable_auth  # root/rootpw, then auth on (once per etcd)

from bench.etcd_server import EtcdCluster
from fleetd import cli
from fleetd.errors import ConfigError, RegistryUnavailable
from fleetd.model.machine import Machine
from fleetd.model.states import TargetState
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry.etcd import EtcdAuth, EtcdKV
from fleetd.registry.keys import Keys
from fleetd.registry.kv import Put
from fleetd.server import assemble
from fleetd.systemd.memory import FakeUnitManager
from tests.conftest import require_etcd

pytestmark = pytest.mark.etcd

AGENT, OTHER, CONTROL = "a" * 32, "b" * 32, "c" * 32


@pytest.fixture(scope="module")
def roles_etcd() -> Iterator[EtcdCluster]:
    require_etcd()
    with EtcdCluster(1) as cluster:
        yield cluster


class Setup:
    """etcd-setup as an operator runs it, and clients of the users it made."""

    def __init__(self, endpoint: str, tmp: Path) -> None:
        self.endpoint, self.tmp = endpoint, tmp
        self.prefix = f"/roles-{uuid.uuid4().hex[:8]}/"
        self.keys = Keys(self.prefix)
        self.clients: list[EtcdKV] = []

    def env(self) -> dict[str, str]:
        root = self.secret("root", "rootpw")
        return {"FLEET_ETCD_SERVERS": self.endpoint, "FLEET_ETCD_INSECURE": "true",
                "FLEET_ETCD_USERNAME": "root", "FLEET_ETCD_PASSWORD_FILE": str(root),
                "FLEET_ETCD_KEY_PREFIX": self.prefix}

    def secret(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text + "\n")
        path.chmod(0o600)
        return path

    async def run(self, user: str, machine: str, roles: str, monkeypatch: pytest.MonkeyPatch) -> int:
        """`fleetd etcd-setup` (in a thread: it runs its own event loop)."""
        for key, value in self.env().items():
            monkeypatch.setenv(key, value)
        password = self.secret(f"{user}.pw", f"{user}-secret")
        return await asyncio.to_thread(cli.main, [
            "etcd-setup", "--user", user, "--password-file", str(password), "--machine", machine,
            "--roles", roles])

    def kv(self, user: str, password: str | None = None) -> EtcdKV:
        client = EtcdKV([self.endpoint], request_timeout=2.0,
                        auth=EtcdAuth(user, password or f"{user}-secret"))
        self.clients.append(client)
        return client


@pytest.fixture
async def setup(roles_etcd: EtcdCluster, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    await _enable_auth(roles_etcd.endpoints[0])
    found = Setup(roles_etcd.endpoints[0], tmp_path)
    assert await found.run("agent-only", AGENT, "agent", monkeypatch) == 0
    assert await found.run("control", CONTROL, "agent,engine,api", monkeypatch) == 0
    yield found
    for client in found.clients:
        await client.close()


async def refused(kv: EtcdKV, key: str, lease: int = 0) -> bool:
    try:
        await kv.put(key, "forged", lease)
    except ConfigError as exc:
        return "permission denied" in str(exc)
    return False


def forbidden_keys(keys: Keys) -> list[str]:
    return [keys.machine(OTHER), keys.assignment(OTHER, "x.service"), keys.assignment(AGENT, "x.service"),
            keys.unit("x.service"), keys.file("ab" * 32), keys.global_unit("x.service"), keys.leader,
            keys.exec_request(OTHER, "r1"), keys.exec_request(AGENT, "r1"), keys.machine_metadata(AGENT),
            keys.pending_reason("x.service"), keys.alarm("mass-failure"), "/elsewhere"]


async def test_an_agent_only_user_is_refused_everything_but_its_own_reports(setup: Setup) -> None:
    agent, root = setup.kv("agent-only"), setup.kv("root", "rootpw")
    lease = await agent.grant(10)
    for key in forbidden_keys(setup.keys):
        assert await refused(agent, key, lease), key
        assert await root.get(key) is None, f"{key} was stored"
    keys = setup.keys
    own = [keys.machine(AGENT), keys.state("x.service", AGENT), keys.endpoint("x.service", AGENT),
           f"{keys.exec_outputs('r1')}0000000001"]
    for key in own:
        await agent.put(key, "reported", lease)
        found = await root.get(key)
        assert found is not None and found.value == "reported", key
    for prefix in (keys.assigned_to(AGENT), keys.globals, keys.files, keys.exec_requests(AGENT)):
        await agent.get_prefix(prefix)
    with pytest.raises(ConfigError, match="permission denied"):
        await agent.get_prefix(keys.units)
    with pytest.raises(ConfigError, match="permission denied"):  # one refused op refuses the txn
        await agent.txn((), [Put(keys.state("y.service", AGENT), "{}", lease), Put(keys.unit("y"), "{}")])
    assert await root.get(keys.state("y.service", AGENT)) is None


async def test_the_control_user_writes_units_and_the_leader_key(setup: Setup) -> None:
    control = setup.kv("control")
    for key in forbidden_keys(setup.keys)[:-1]:  # all but the key outside the prefix
        await control.put(key, "written")
    assert await refused(control, "/elsewhere")


async def put_retrying_once(kv: EtcdKV, key: str, value: str) -> None:
    """As fleetd's loops do: a call refused as unavailable (a token etcd no longer takes) is
    tried again, and the client authenticates anew."""
    try:
        await kv.put(key, value)
    except RegistryUnavailable:
        await kv.put(key, value)


@pytest.mark.parametrize("again", ["agent-only", "another host"])
async def test_running_etcd_setup_again_keeps_a_running_user_working(
        setup: Setup, monkeypatch: pytest.MonkeyPatch, again: str) -> None:
    agent = setup.kv("agent-only")
    await agent.put(setup.keys.machine(AGENT), "before")
    user, machine = ("agent-only", AGENT) if again == "agent-only" else ("other", OTHER)
    assert await setup.run(user, machine, "agent", monkeypatch) == 0
    await put_retrying_once(agent, setup.keys.machine(AGENT), "after")
    await agent.put(setup.keys.machine(AGENT), "and on")
    assert await refused(agent, setup.keys.unit("x.service"))


async def test_etcd_setup_refuses_a_bad_machine_id_and_a_non_root_admin(
        setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert await setup.run("x", "not-an-id", "agent", monkeypatch) == 1
    assert "is not a machine id" in capsys.readouterr().err
    monkeypatch.setenv("FLEET_ETCD_USERNAME", "control")
    monkeypatch.setenv("FLEET_ETCD_PASSWORD_FILE", str(setup.secret("control.pw", "control-secret")))
    password = setup.secret("x.pw", "x")
    assert await asyncio.to_thread(cli.main, ["etcd-setup", "--user", "x", "--password-file",
                                              str(password), "--machine", AGENT, "--roles", "agent"]) == 1
    assert "permission denied" in capsys.readouterr().err


async def test_a_fleetd_agent_runs_as_the_agent_only_user(setup: Setup) -> None:
    """An engine on the control user pins a unit to the agent-only host, whose agent runs it
    and reports it; nothing in the agent's loops needs more than its grants."""
    from fleetd.registry.store import Registry

    hello = UnitFile.parse(f"[Service]\nExecStart=/bin/sleep 1000\n[X-Fleet]\nMachineID={AGENT}\n")
    systemd = {AGENT: FakeUnitManager(), CONTROL: FakeUnitManager()}
    users = {AGENT: "agent-only", CONTROL: "control"}
    nodes = {m: assemble(Registry(setup.kv(users[m]), setup.keys), systemd[m], Machine(m, "10.0.0.1"),
                         agent_ttl=5, reconcile_interval=0.2, run_engine=m == CONTROL) for m in users}
    stop = asyncio.Event()
    for manager in systemd.values():
        await manager.connect()
    tasks = [asyncio.create_task(node.run(stop)) for node in nodes.values()]
    try:
        control = Registry(setup.kv("control"), setup.keys)
        assert await control.create_unit(Unit("pinned.service", hello.hash, TargetState.LAUNCHED),
                                         hello.serialize())
        for _ in range(300):
            states = await control.list_states("pinned.service")
            if [(s.machine, s.systemd.active) for s in states] == [(AGENT, "active")]:
                break
            await asyncio.sleep(0.05)
        assert [(s.machine, s.systemd.active) for s in states] == [(AGENT, "active")]
        assert all(not t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
