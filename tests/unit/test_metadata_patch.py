"""Dynamic machine metadata: PATCH validation and the overlay (tables), the API route (errors,
atomicity, both value shapes), and tier 2: a PATCH moves units and survives a fleetd restart."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fleetd.api.http import make_app
from fleetd.errors import InvalidInput
from fleetd.model.metapatch import (
    BAD_OP,
    BAD_PATH,
    BAD_VALUE,
    MetadataOp,
    apply_ops,
    overlay,
    parse_ops,
)
from fleetd.model.states import TargetState
from fleetd.registry import metadata
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry
from tests.unit.test_loops import HELLO, Cluster, eventually, eventually_async

M1, M2 = "a" * 32, "b" * 32


@pytest.mark.parametrize(("body", "expected"), [
    ([], ()),
    ([{"op": "add", "path": f"/{M1}/metadata/role", "value": {"value": "web"}}],
     (MetadataOp(M1, "role", "web"),)),
    ([{"op": "replace", "path": f"/{M1}/metadata/a.b-c_1", "value": "x"}],
     (MetadataOp(M1, "a.b-c_1", "x"),)),
    ([{"op": "remove", "path": f"/{M2}/metadata/role"}], (MetadataOp(M2, "role", None),)),
    ([{"op": "remove", "path": f"/{M2}/metadata/role", "value": 5}], (MetadataOp(M2, "role", None),)),
    ([{"op": "add", "path": f"/{M1}/metadata/k", "value": ""}], (MetadataOp(M1, "k", ""),)),
])
def test_valid_patches(body: object, expected: tuple[MetadataOp, ...]) -> None:
    assert parse_ops(body) == expected


@pytest.mark.parametrize(("body", "message"), [
    ([{"op": "move", "path": f"/{M1}/metadata/role", "value": "x"}], BAD_OP),
    ([{"path": f"/{M1}/metadata/role", "value": "x"}], BAD_OP),
    ([{"op": "add", "path": f"/{M1}/metadata/ro/le", "value": "x"}], BAD_PATH),
    ([{"op": "add", "path": f"/{M1}/metadata/", "value": "x"}], BAD_PATH),
    ([{"op": "add", "path": f"{M1}/metadata/role", "value": "x"}], BAD_PATH),
    ([{"op": "add", "path": f"/{M1}/meta/role", "value": "x"}], BAD_PATH),
    ([{"op": "add", "path": f"/{M1}/metadata/ro le", "value": "x"}], BAD_PATH),
    ([{"op": "add", "path": 7, "value": "x"}], BAD_PATH),
    ([{"op": "add", "path": f"/{M1}/metadata/role"}], BAD_VALUE),
    ([{"op": "replace", "path": f"/{M1}/metadata/role", "value": {}}], BAD_VALUE),
    ([{"op": "add", "path": f"/{M1}/metadata/role", "value": {"value": 3}}], BAD_VALUE),
    ([{"op": "add", "path": f"/{M1}/metadata/role", "value": None}], BAD_VALUE),
    ([{"op": "add", "path": f"/{M1}/metadata/role", "value": "x", "extra": 1}], "unknown field"),
    ({"op": "add"}, "expected a JSON array"),
    (["add"], "must be a JSON object"),
    # every op is validated before any is applied: a bad second op refuses the whole body
    ([{"op": "add", "path": f"/{M1}/metadata/a", "value": "x"}, {"op": "nope", "path": "/x"}], BAD_OP),
])
def test_invalid_patches(body: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_ops(body)


@pytest.mark.parametrize(("current", "ops", "after"), [
    ({}, [MetadataOp(M1, "a", "1")], {M1: {"a": "1"}}),
    ({M1: {"a": "1"}}, [MetadataOp(M1, "a", None)], {M1: {}}),
    ({M1: {"a": "1"}}, [MetadataOp(M1, "b", None)], {M1: {"a": "1"}}),
    ({}, [MetadataOp(M1, "a", "1"), MetadataOp(M1, "a", "2")], {M1: {"a": "2"}}),
    ({}, [MetadataOp(M1, "a", "1"), MetadataOp(M1, "a", None)], {M1: {}}),
    ({M2: {"z": "9"}}, [MetadataOp(M1, "a", "1"), MetadataOp(M2, "z", "8")],
     {M1: {"a": "1"}, M2: {"z": "8"}}),
])
def test_ops_apply_in_order(current: dict, ops: list[MetadataOp], after: dict) -> None:
    assert apply_ops(current, ops) == after


@pytest.mark.parametrize(("config", "dynamic", "published"), [
    ({"role": "db"}, {}, {"role": "db"}),
    ({"role": "db"}, {"role": "web"}, {"role": "web"}),
    ({"role": "db"}, {"zone": "a"}, {"role": "db", "zone": "a"}),
    ({}, {"zone": "a"}, {"zone": "a"}),
])
def test_overlay(config: dict, dynamic: dict, published: dict) -> None:
    assert overlay(config, dynamic) == published


# the API route ------------------------------------------------------------------------------------


@pytest.fixture
def registry() -> Registry:
    return Registry(MemoryKV(), Keys("/test/"))


@pytest.fixture
async def client(registry: Registry):
    async with TestClient(TestServer(make_app(registry, "9.9.9"))) as c:
        yield c


async def patch(client: TestClient, body: object, **kw):
    return await client.patch("/fleet/v1/machines", data=json.dumps(body),
                              headers={"Content-Type": "application/json"}, **kw)


async def test_patch_sets_and_removes_on_unregistered_machines(client: TestClient,
                                                               registry: Registry) -> None:
    resp = await patch(client, [
        {"op": "add", "path": f"/{M1}/metadata/role", "value": {"value": "web"}},
        {"op": "add", "path": f"/{M1}/metadata/zone", "value": "a"},
        {"op": "replace", "path": f"/{M2}/metadata/role", "value": "db"},
    ])
    assert resp.status == 204, await resp.text()
    assert await metadata.read(registry, M1) == {"role": "web", "zone": "a"}
    assert await metadata.read(registry, M2) == {"role": "db"}
    resp = await patch(client, [{"op": "remove", "path": f"/{M1}/metadata/role"},
                                {"op": "remove", "path": f"/{M2}/metadata/role"}])
    assert resp.status == 204
    assert await metadata.read(registry, M1) == {"zone": "a"}
    assert await registry.kv.get(registry.keys.machine_metadata(M2)) is None  # empty map: no key


@pytest.mark.parametrize(("body", "message"), [
    ([{"op": "test", "path": f"/{M1}/metadata/a", "value": "1"}], BAD_OP),
    ([{"op": "add", "path": "/x/y", "value": "1"}], BAD_PATH),
    ([{"op": "add", "path": f"/{M1}/metadata/a"}], BAD_VALUE),
])
async def test_patch_errors_write_nothing(client: TestClient, registry: Registry, body: list,
                                          message: str) -> None:
    good = {"op": "add", "path": f"/{M1}/metadata/first", "value": "1"}
    resp = await patch(client, [good, *body])
    assert resp.status == 400
    assert (await resp.json())["error"] == {"code": 400, "message": message}
    assert (await registry.kv.get_prefix("/test/")).items == ()


async def test_patch_needs_json(client: TestClient) -> None:
    resp = await client.patch("/fleet/v1/machines", data="[]", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    resp = await patch(client, [])
    assert resp.status == 204
    resp = await client.patch("/fleet/v1/machines", data="[{",
                              headers={"Content-Type": "application/json"})
    assert resp.status == 400 and "unable to decode body" in (await resp.json())["error"]["message"]
    resp = await client.post("/fleet/v1/machines", data="[]")
    assert resp.status == 405


async def test_patch_is_one_txn(registry: Registry) -> None:
    """Both machines' records change at one revision (a watcher never sees half a patch)."""
    before = registry.kv.revision  # type: ignore[attr-defined]
    await metadata.patch(registry, parse_ops([
        {"op": "add", "path": f"/{M1}/metadata/a", "value": "1"},
        {"op": "add", "path": f"/{M2}/metadata/b", "value": "2"}]))
    assert registry.kv.revision == before + 1  # type: ignore[attr-defined]
    m1 = await registry.kv.get(registry.keys.machine_metadata(M1))
    m2 = await registry.kv.get(registry.keys.machine_metadata(M2))
    assert m1 is not None and m2 is not None and m1.mod_revision == m2.mod_revision


# tier 2: the overlay in running nodes ---------------------------------------------------------


async def _registered_as(cluster: Cluster, machine: str, meta: dict[str, str]) -> bool:
    return any(m.id == machine and dict(m.metadata) == meta
               for m in await cluster.registry.list_machines())


async def test_patched_metadata_places_evicts_and_survives_restart() -> None:
    cluster = Cluster(["a", "b"])
    try:
        b = cluster.machine_id("b")
        await cluster.submit("web.service", HELLO + "[X-Fleet]\nMachineMetadata=role=web\n",
                             TargetState.LAUNCHED)
        await asyncio.sleep(0.5)
        assert cluster.running("web.service") == []  # no machine has role=web yet
        await metadata.patch(cluster.registry, parse_ops(
            [{"op": "add", "path": f"/{b}/metadata/role", "value": "web"}]))
        await eventually(lambda: cluster.running("web.service") == ["b"])
        machines = {m.id: m for m in await cluster.registry.list_machines()}
        assert machines[b].metadata == {"host": "b", "role": "web"}  # config overlaid

        await cluster.kill("b")  # fleetd restarts on b: it registers with the dynamic map at once
        since = cluster.kv.revision
        cluster.boot("b", {"host": "b"})
        await eventually_async(lambda: _registered_as(cluster, b, {"host": "b", "role": "web"}))
        first = await anext(aiter(cluster.kv.watch_prefix(cluster.registry.keys.machine(b), since + 1)))
        assert json.loads(first.value)["metadata"] == {"host": "b", "role": "web"}  # never without
        await asyncio.sleep(0.5)  # a few engine passes: the unit stays where it is
        assert cluster.running("web.service") == ["b"]

        await metadata.patch(cluster.registry, parse_ops(
            [{"op": "remove", "path": f"/{b}/metadata/role"}]))
        await eventually(lambda: cluster.running("web.service") == [])
    finally:
        await asyncio.wait_for(cluster.shutdown(), 5)


async def test_removing_a_dynamic_key_falls_back_to_config() -> None:
    cluster = Cluster(["a"])
    try:
        a = cluster.machine_id("a")
        ops = [{"op": "replace", "path": f"/{a}/metadata/host", "value": "elsewhere"}]
        await metadata.patch(cluster.registry, parse_ops(ops))

        async def host_is(value: str) -> bool:
            return [m.metadata.get("host") for m in await cluster.registry.list_machines()] == [value]

        for _ in range(250):
            if await host_is("elsewhere"):
                break
            await asyncio.sleep(0.02)
        assert await host_is("elsewhere")
        await metadata.patch(cluster.registry, parse_ops([{"op": "remove", "path": f"/{a}/metadata/host"}]))
        for _ in range(250):
            if await host_is("a"):
                break
            await asyncio.sleep(0.02)
        assert await host_is("a")
    finally:
        await asyncio.wait_for(cluster.shutdown(), 5)
