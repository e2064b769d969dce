"""GET /fleet/v1/watch (server-sent events) over a MemoryKV registry: snapshot, change events,
Last-Event-ID resume (and a fresh snapshot once the revision is compacted), the slow client."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from fleetd.api import watch
from fleetd.api.http import make_app
from fleetd.model.machine import Machine
from fleetd.model.states import SystemdState, TargetState, UnitState
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

HELLO = [{"section": "Service", "name": "ExecStart", "value": "/bin/true"}]
M1 = "a" * 32


@pytest.fixture
def kv() -> MemoryKV:
    return MemoryKV()


@pytest.fixture
def registry(kv: MemoryKV) -> Registry:
    return Registry(kv, Keys("/test/"))


@pytest.fixture
async def client(registry: Registry):
    async with TestClient(TestServer(make_app(registry, "9.9.9"))) as c:
        yield c


async def next_event(resp: ClientResponse) -> dict:
    """The next event's fields (comments skipped), data decoded."""
    fields: dict = {}
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 5)).decode().rstrip("\n")
        if not line:
            if fields:
                return fields
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        fields[name] = json.loads(value) if name == "data" else value


async def put_unit(client: TestClient, name: str, desired: str = "inactive") -> None:
    resp = await client.put(f"/fleet/v1/units/{name}", json={"options": HELLO, "desiredState": desired})
    assert resp.status in (201, 204), await resp.text()


async def test_snapshot_then_changes(client: TestClient, registry: Registry, kv: MemoryKV) -> None:
    await put_unit(client, "a.service")
    await registry.register_machine(Machine(M1, "10.0.0.1", {"role": "web"}), 0)
    resp = await client.get("/fleet/v1/watch")
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    snap = await next_event(resp)
    assert snap["event"] == "snapshot" and int(snap["id"]) == kv.revision
    assert [u["name"] for u in snap["data"]["units"]] == ["a.service"]
    assert snap["data"]["units"][0]["options"] == HELLO
    assert snap["data"]["machines"] == [{"id": M1, "primaryIP": "10.0.0.1", "metadata": {"role": "web"},
                                         "capacity": {"cpu": 0, "memory": 0}}]
    assert snap["data"]["states"] == []

    await put_unit(client, "b.service")
    event = await next_event(resp)
    assert (event["event"], event["data"]["name"], event["data"]["desiredState"]) == \
        ("units", "b.service", "inactive")
    assert int(event["id"]) == kv.revision
    await registry.put_state(UnitState(name="b.service", machine=M1, hash="h", state=TargetState.LAUNCHED,
                                       systemd=SystemdState("loaded", "active", "running")), 0)
    event = await next_event(resp)
    assert event["event"] == "states" and event["data"]["systemdActiveState"] == "active"
    assert (await client.delete("/fleet/v1/units/a.service")).status == 204
    event = await next_event(resp)
    assert event["event"] == "units" and event["data"] == {"name": "a.service", "deleted": True}
    resp.close()


async def test_kinds_filter_and_bad_input(client: TestClient, registry: Registry) -> None:
    resp = await client.get("/fleet/v1/watch?kinds=machines")
    snap = await next_event(resp)
    assert set(snap["data"]) == {"machines"}
    await put_unit(client, "a.service")  # not a machines event: not sent
    await registry.register_machine(Machine(M1, "10.0.0.1"), 0)
    assert (await next_event(resp))["event"] == "machines"
    resp.close()
    bad = await client.get("/fleet/v1/watch?kinds=units,jobs")
    assert bad.status == 400 and "invalid kind" in (await bad.json())["error"]["message"]
    bad = await client.get("/fleet/v1/watch", headers={"Last-Event-ID": "x"})
    assert bad.status == 400
    assert (await client.post("/fleet/v1/watch")).status == 405


async def test_last_event_id_resumes_without_snapshot(client: TestClient, kv: MemoryKV) -> None:
    await put_unit(client, "a.service")
    seen = kv.revision
    await put_unit(client, "b.service")
    await put_unit(client, "c.service")
    resp = await client.get("/fleet/v1/watch?kinds=units", headers={"Last-Event-ID": str(seen)})
    names = [(await next_event(resp))["data"]["name"] for _ in range(2)]
    assert names == ["b.service", "c.service"]
    resp.close()


async def test_compacted_last_event_id_gets_a_fresh_snapshot(client: TestClient, kv: MemoryKV) -> None:
    await put_unit(client, "a.service")
    seen = kv.revision
    await put_unit(client, "b.service")
    await put_unit(client, "c.service")
    kv.compact(kv.revision)
    resp = await client.get("/fleet/v1/watch?kinds=units", headers={"Last-Event-ID": str(seen)})
    snap = await next_event(resp)
    assert snap["event"] == "snapshot"
    assert [u["name"] for u in snap["data"]["units"]] == ["a.service", "b.service", "c.service"]
    resp.close()


async def test_discovery_serves_the_openapi_document(client: TestClient) -> None:
    resp = await client.get("/fleet/v1/discovery")
    assert resp.status == 200 and (await resp.json())["openapi"].startswith("3.")
    assert (await client.post("/fleet/v1/discovery")).status == 405


async def test_slow_client_is_dropped_with_an_error(registry: Registry) -> None:
    """Nobody reads while changes pile up: the stream ends with an `error` event."""
    frames = watch.stream(registry, watch.KINDS, queue_size=3)
    first = await anext(frames)
    assert "event: snapshot" in first
    for i in range(10):
        await registry.register_machine(Machine(f"{i:032d}"), 0)
    await asyncio.sleep(0.2)
    rest = [f async for f in frames]
    assert "event: error" in rest[-1] and "too slow" in rest[-1]
    assert len(rest) == 1  # the backlog is dropped, not delivered late


async def test_keepalive_comment_on_an_idle_stream(registry: Registry) -> None:
    frames = watch.stream(registry, watch.KINDS, keepalive=0.05)
    assert "snapshot" in await anext(frames)
    assert await asyncio.wait_for(anext(frames), 2) == watch.KEEPALIVE_FRAME
    await frames.aclose()


async def test_stream_ends_when_the_client_is_gone(registry: Registry) -> None:
    alive = [True]
    frames = watch.stream(registry, watch.KINDS, alive=lambda: alive[0])
    await anext(frames)
    alive[0] = False
    assert [f async for f in frames] == []
