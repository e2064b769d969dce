"""Service discovery: `[X-Fleet] Publish=` parsing (tables), the records agents publish while a
unit is active (tier 2: MemoryKV + fake systemd), the API's /endpoints and `fleetctl endpoints`."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_loops import Cluster, Solo, eventually, eventually_async, quiesce

from fleetd.agent.endpoints import EndpointBook
from fleetd.agent.local import HostUnits
from fleetd.api.http import make_app
from fleetd.errors import InvalidInput, InvalidRequirements
from fleetd.model.endpoints import (
    Endpoint,
    EndpointRecord,
    decode_record,
    encode_record,
    endpoint_record,
    parse_publish,
)
from fleetd.model.requirements import parse_requirements, unknown_options
from fleetd.model.states import SystemdState, TargetState
from fleetd.model.unit import Assignment, Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry.endpoints import endpoint_ops, list_endpoints
from fleetd.registry.keys import Keys
from fleetd.registry.kv import Op, Put
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

WEB = "[Service]\nExecStart=/bin/sleep 1000\n[X-Fleet]\nPublish=8080\n"
TCP, UDP = "tcp", "udp"


# parsing (pure) ----------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "expected"), [
    ([], ()),
    (["8080"], ((8080, TCP),)),
    (["8080/tcp"], ((8080, TCP),)),
    (["53/udp"], ((53, UDP),)),
    (["53/UDP"], ((53, UDP),)),
    (["80 443"], ((80, TCP), (443, TCP))),
    (["80", "53/udp", "80"], ((80, TCP), (53, UDP))),
    (["1", "65535"], ((1, TCP), (65535, TCP))),
])
def test_publish_values(values: list[str], expected: tuple[tuple[int, str], ...]) -> None:
    assert parse_publish(values) == tuple(Endpoint(p, proto) for p, proto in expected)


@pytest.mark.parametrize(("value", "message"), [
    ("0", 'Publish: "0" is not PORT[/PROTO] with a port from 1 to 65535'),
    ("65536", 'Publish: "65536" is not PORT[/PROTO] with a port from 1 to 65535'),
    ("http", 'Publish: "http" is not PORT[/PROTO] with a port from 1 to 65535'),
    ("-1", 'Publish: "-1" is not PORT[/PROTO] with a port from 1 to 65535'),
    ("/tcp", 'Publish: "/tcp" is not PORT[/PROTO] with a port from 1 to 65535'),
    ("80/sctp", 'Publish: protocol of "80/sctp" must be tcp or udp, not "sctp"'),
    ("80/", 'Publish: protocol of "80/" must be tcp or udp, not ""'),
    ("８０", 'Publish: "８０" is not PORT[/PROTO] with a port from 1 to 65535'),
])
def test_bad_publish_values_are_refused(value: str, message: str) -> None:
    with pytest.raises(InvalidRequirements) as raised:
        parse_publish([value])
    assert str(raised.value) == message


def test_publish_in_a_unit_file_is_known_and_parsed() -> None:
    text = WEB + 'Publish="9000/udp 9001"\nGlobal=true\n'
    unit = UnitFile.parse(text)
    req = parse_requirements("web.service", unit)
    assert req.publish == (Endpoint(8080), Endpoint(9000, UDP), Endpoint(9001))
    assert req.is_global
    assert unknown_options(unit) == ()


@pytest.mark.parametrize(("ports", "active", "published"), [
    ((Endpoint(80),), "active", True),
    ((Endpoint(80),), "activating", False),
    ((Endpoint(80),), "failed", False),
    ((Endpoint(80),), "inactive", False),
    ((Endpoint(80),), None, False),
    ((), "active", False),
])
def test_record_only_while_active(ports: tuple[Endpoint, ...], active: str | None,
                                  published: bool) -> None:
    record = endpoint_record("a.service", "m1", "10.0.0.1", ports, active)
    assert (record is not None) == published


def test_record_json_round_trip_and_layout() -> None:
    record = EndpointRecord("a.service", "m1", "10.0.0.1", (Endpoint(80), Endpoint(53, UDP)))
    assert json.loads(encode_record(record)) == {
        "unit": "a.service", "machine": "m1", "ip": "10.0.0.1",
        "ports": [{"port": 80, "proto": "tcp"}, {"port": 53, "proto": "udp"}]}
    assert decode_record(encode_record(record)) == record
    with pytest.raises(InvalidInput):
        decode_record('{"unit": "a.service"}')


def test_book_puts_on_activation_and_deletes_on_stop_and_unload() -> None:
    host = HostUnits(files={"a.service": "h"}, published={"a.service": (Endpoint(80),)})
    book = EndpointBook("m1", "10.0.0.1", host)
    active = {"a.service": SystemdState("loaded", "active", "running")}
    shown, hidden = book.changes({"a.service"}, active)
    assert (shown, hidden) == ([EndpointRecord("a.service", "m1", "10.0.0.1", (Endpoint(80),))], [])
    book.written(shown, hidden)
    assert book.changes({"a.service"}, active) == ([], [])  # written on change only
    assert book.changes({"a.service"}, {"a.service": SystemdState("loaded", "failed", "failed")}) \
        == ([], ["a.service"])
    host.unloaded("a.service")
    assert book.changes(set(), active) == ([], ["a.service"])


def test_endpoint_ops_put_on_the_lease_and_delete() -> None:
    keys = Keys("/p/")
    record = EndpointRecord("a.service", "m1", "10.0.0.1", (Endpoint(80),))
    ops = endpoint_ops(keys, "m1", 7, [record], ["b.service"])
    assert [(type(op).__name__, op.key) for op in ops] == [
        ("Put", "/p/endpoints/a.service/m1"), ("Delete", "/p/endpoints/b.service/m1")]
    assert isinstance(ops[0], Put) and ops[0].lease == 7


# tier 2: one agent, the test plays the engine ----------------------------------------------

async def assign(solo: Solo, name: str, text: str, desired: TargetState) -> None:
    unit_file = UnitFile.parse(text)
    ops: list[Op] = [Put(solo.registry.keys.file(unit_file.hash), unit_file.serialize()),
                     solo.registry.place_op(Assignment(name, solo.machine.id, unit_file.hash, desired))]
    await solo.kv.txn((), ops)


async def published(registry: Registry, unit: str) -> list[tuple[str, str, tuple[Endpoint, ...]]]:
    return [(r.machine, r.ip, r.ports) for r in await list_endpoints(registry, unit)]


@pytest.fixture
async def solo():
    s = Solo()
    await s.start()
    yield s
    await quiesce(s.kv)


async def test_active_unit_publishes_on_the_machine_lease_and_stop_removes_it(solo: Solo) -> None:
    await assign(solo, "web.service", WEB, TargetState.LAUNCHED)
    want = [(solo.machine.id, "10.0.0.5", (Endpoint(8080),))]
    await eventually_async(lambda: _is(published(solo.registry, "web.service"), want))
    key = solo.registry.keys.endpoint("web.service", solo.machine.id)
    kv = await solo.kv.get(key)
    assert kv is not None and kv.lease == solo.node.heart.lease and kv.lease
    await assign(solo, "web.service", WEB, TargetState.LOADED)
    await eventually_async(lambda: _is(published(solo.registry, "web.service"), []))
    assert "web.service" in solo.systemd.files  # stopped, still loaded: no endpoint


async def test_failed_unit_and_unloaded_unit_lose_their_endpoint(solo: Solo) -> None:
    await assign(solo, "web.service", WEB, TargetState.LAUNCHED)
    await eventually_async(lambda: _nonempty(published(solo.registry, "web.service")))
    solo.systemd.crash("web.service")
    await eventually_async(lambda: _is(published(solo.registry, "web.service"), []))
    await assign(solo, "web.service", WEB, TargetState.LAUNCHED)
    await solo.unassign("web.service")
    await eventually(lambda: "web.service" not in solo.systemd.files)
    await eventually_async(lambda: _is(published(solo.registry, "web.service"), []))


async def test_unit_without_publish_publishes_nothing(solo: Solo) -> None:
    await solo.assign(TargetState.LAUNCHED, "plain.service")
    await eventually(lambda: "plain.service" in solo.running())
    await asyncio.sleep(0.1)
    assert await list_endpoints(solo.registry) == []


async def test_lost_lease_takes_the_endpoint_and_the_new_lease_brings_it_back(solo: Solo) -> None:
    await assign(solo, "web.service", WEB, TargetState.LAUNCHED)
    await eventually_async(lambda: _nonempty(published(solo.registry, "web.service")))
    old = solo.node.heart.lease
    clock = solo.kv._now
    solo.kv._now = lambda: clock() + 60  # the lease's deadline passes (keep-alives stopped)
    solo.kv.expire()
    solo.kv._now = clock
    assert await list_endpoints(solo.registry) == []
    await eventually(lambda: solo.node.heart.lease not in (0, old))
    await eventually_async(lambda: _nonempty(published(solo.registry, "web.service")))
    kv = await solo.kv.get(solo.registry.keys.endpoint("web.service", solo.machine.id))
    assert kv is not None and kv.lease == solo.node.heart.lease


async def _is(listing, want) -> bool:  # type: ignore[no-untyped-def]
    return await listing == want


async def _nonempty(listing) -> bool:  # type: ignore[no-untyped-def]
    return bool(await listing)


# tier 2: three nodes, a host dies ----------------------------------------------------------

async def test_endpoint_follows_the_unit_to_another_machine_when_its_host_dies() -> None:
    cluster = Cluster(["a", "b", "c"])
    try:
        await cluster.submit("web.service", WEB, TargetState.LAUNCHED)
        await eventually(lambda: len(cluster.running("web.service")) == 1)
        (first,) = cluster.running("web.service")
        ip_of = {cluster.machine_id(n): node.agent.machine.ip for n, node in cluster.nodes.items()}
        await eventually_async(lambda: _nonempty(published(cluster.registry, "web.service")))
        await cluster.kill(first)
        assert await list_endpoints(cluster.registry) == []  # gone with the dead host's lease
        await eventually(lambda: len(cluster.running("web.service")) == 1)
        (second,) = cluster.running("web.service")
        mid = cluster.machine_id(second)
        await eventually_async(lambda: _is(published(cluster.registry, "web.service"),
                                           [(mid, ip_of[mid], (Endpoint(8080),))]))
    finally:
        await asyncio.wait_for(cluster.shutdown(), 5)


# API -----------------------------------------------------------------------------------------

@pytest.fixture
async def api():
    registry = Registry(MemoryKV(), Keys("/test/"))
    async with TestClient(TestServer(make_app(registry, "9.9.9"))) as client:
        yield registry, client


async def _seed(registry: Registry) -> None:
    unit_file = UnitFile.parse(WEB)
    for name in ("web.service", "quiet.service"):
        await registry.create_unit(Unit(name, unit_file.hash, TargetState.LAUNCHED),
                                   unit_file.serialize())
    lease = await registry.kv.grant(30)
    records = [EndpointRecord("web.service", m, ip, (Endpoint(8080), Endpoint(53, UDP)))
               for m, ip in (("m2", "10.0.0.2"), ("m1", "10.0.0.1"))]
    await registry.kv.txn((), endpoint_ops(registry.keys, "m1", lease, records[1:], []))
    await registry.kv.txn((), endpoint_ops(registry.keys, "m2", lease, records[:1], []))


async def test_api_lists_endpoints_sorted_and_per_unit(api) -> None:  # type: ignore[no-untyped-def]
    registry, client = api
    await _seed(registry)
    resp = await client.get("/fleet/v1/endpoints")
    assert resp.status == 200
    body = await resp.json()
    assert [(e["unit"], e["machineID"], e["ip"]) for e in body["endpoints"]] == [
        ("web.service", "m1", "10.0.0.1"), ("web.service", "m2", "10.0.0.2")]
    assert body["endpoints"][0]["ports"] == [{"port": 8080, "proto": "tcp"},
                                             {"port": 53, "proto": "udp"}]
    one = await client.get("/fleet/v1/endpoints/web.service")
    assert one.status == 200 and (await one.json()) == body
    quiet = await client.get("/fleet/v1/endpoints/quiet.service")
    assert quiet.status == 200 and (await quiet.json()) == {"endpoints": []}
    missing = await client.get("/fleet/v1/endpoints/nope.service")
    assert missing.status == 404
    assert (await missing.json())["error"] == {"code": 404, "message": "unit does not exist"}
    bad = await client.get("/fleet/v1/endpoints/bad.name")
    assert bad.status == 400
    assert (await client.post("/fleet/v1/endpoints")).status == 405


async def test_api_refuses_a_bad_publish_at_submit(api) -> None:  # type: ignore[no-untyped-def]
    _, client = api
    options = [{"section": "Service", "name": "ExecStart", "value": "/bin/true"},
               {"section": "X-Fleet", "name": "Publish", "value": "99999"}]
    resp = await client.put("/fleet/v1/units/web.service",
                            json={"desiredState": "launched", "options": options})
    assert resp.status == 400
    assert "Publish" in (await resp.json())["error"]["message"]


# fleetctl ----------------------------------------------------------------------------------

async def fleetctl(client: TestClient, *argv: str) -> tuple[int, str, str]:
    from fleetctl import cli

    out, err = io.StringIO(), io.StringIO()
    endpoint = f"http://{client.host}:{client.port}"
    code = await asyncio.to_thread(cli.main, ["--endpoint", endpoint, *argv], out, err, {})
    return code, out.getvalue(), err.getvalue()


async def test_fleetctl_endpoints_table_json_and_unknown_unit(api) -> None:  # type: ignore[no-untyped-def]
    registry, client = api
    await _seed(registry)
    code, out, _ = await fleetctl(client, "endpoints", "web")
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["UNIT", "MACHINE", "IP", "PORT", "PROTO"],
        ["web.service", "m1...", "10.0.0.1", "53", "udp"],
        ["web.service", "m1...", "10.0.0.1", "8080", "tcp"],
        ["web.service", "m2...", "10.0.0.2", "53", "udp"],
        ["web.service", "m2...", "10.0.0.2", "8080", "tcp"]]
    code, out, _ = await fleetctl(client, "endpoints", "--no-legend", "--fields", "ip,port", "--full")
    assert (code, out.split("\n")[0].split()) == (0, ["10.0.0.1", "53"])
    code, out, _ = await fleetctl(client, "endpoints", "-o", "json", "quiet.service", "web.service")
    assert code == 0
    assert json.loads(out)[0] == {"unit": "web.service", "machine": "m1", "ip": "10.0.0.1",
                                  "port": 53, "proto": "udp"}
    code, out, err = await fleetctl(client, "endpoints", "web.service", "nope.service")
    assert (code, out, err) == (1, "", "Unit nope.service not found\n")
    code, _, err = await fleetctl(client, "endpoints", "--fields", "port,color")
    assert code == 1 and 'Invalid key in output format: "color"' in err


# the SSE watch's endpoints kind (GET /fleet/v1/watch, fleetd.api.watch) ----------------------

async def test_watch_streams_endpoint_changes(api) -> None:  # type: ignore[no-untyped-def]
    from test_api_watch import next_event

    registry, client = api
    await _seed(registry)
    resp = await client.get("/fleet/v1/watch?kinds=endpoints")
    snap = await next_event(resp)
    assert set(snap["data"]) == {"endpoints"}
    assert [(e["unit"], e["machineID"]) for e in snap["data"]["endpoints"]] == [
        ("web.service", "m1"), ("web.service", "m2")]
    await registry.kv.txn((), endpoint_ops(registry.keys, "m1", 0, [], ["web.service"]))
    event = await next_event(resp)
    assert (event["event"], event["data"]) == (
        "endpoints", {"unit": "web.service", "machineID": "m1", "deleted": True})
    record = EndpointRecord("web.service", "m3", "10.0.0.3", (Endpoint(80),))
    await registry.kv.txn((), endpoint_ops(registry.keys, "m3", 0, [record], []))
    event = await next_event(resp)
    assert event["data"] == {"unit": "web.service", "machineID": "m3", "ip": "10.0.0.3",
                             "ports": [{"port": 80, "proto": "tcp"}]}
    resp.close()
