"""POST /units over a MemoryKV registry: PUT's rules per entry, all-or-nothing validation,
results in request order, few txns, and the fall-back to single PUTs after a race."""

from __future__ import annotations

import math

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_api import HELLO, error_of, keys_in, put

from fleetd.api.http import make_app
from fleetd.model.states import TargetState
from fleetd.registry.keys import Keys
from fleetd.registry.kv import Put
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import MAX_TXN_OPS, Registry

UNITS = "/fleet/v1/units"
OTHER = HELLO[:1] + [{"section": "Service", "name": "ExecStart", "value": "/bin/true"}]
GLOBAL = HELLO + [{"section": "X-Fleet", "name": "Global", "value": "true"}]


class CountingKV(MemoryKV):
    """MemoryKV that records each txn's ops, and can run a racer just before the next txn."""

    def __init__(self) -> None:
        super().__init__()
        self.txns: list[list] = []
        self.before_next_txn = None

    async def txn(self, compares, success, failure=()):
        racer, self.before_next_txn = self.before_next_txn, None
        if racer is not None:
            await racer()
        self.txns.append(list(success))
        return await super().txn(compares, success, failure)


@pytest.fixture
def kv() -> CountingKV:
    return CountingKV()


@pytest.fixture
def registry(kv: CountingKV) -> Registry:
    return Registry(kv, Keys("/test/"))


@pytest.fixture
async def client(registry: Registry):
    async with TestClient(TestServer(make_app(registry, "9.9.9"))) as c:
        yield c


async def post(client: TestClient, units: list[dict], prefix: str = UNITS):
    return await client.post(prefix, json={"units": units})


async def results_of(resp) -> list[tuple[str, int]]:
    assert resp.status == 200, await resp.text()
    return [(r["name"], r["status"]) for r in (await resp.json())["results"]]


async def desired(registry: Registry) -> dict[str, TargetState]:
    return {u.name: u.desired for u in await registry.list_units()}


# results ----------------------------------------------------------------------------------------


async def test_mixed_create_replace_and_desired_answer_in_request_order(client, registry) -> None:
    await put(client, "a.service", {"options": HELLO})
    await put(client, "b.service", {"options": HELLO, "desiredState": "launched"})
    resp = await post(client, [
        {"name": "c.service", "options": HELLO, "desiredState": "launched"},   # create
        {"name": "a.service", "options": OTHER, "desiredState": "loaded"},     # replace
        {"name": "b.service", "desiredState": "loaded"},                       # desired state
        {"name": "d.service", "options": HELLO},                               # create, inactive
    ])
    assert await results_of(resp) == [
        ("c.service", 201), ("a.service", 201), ("b.service", 204), ("d.service", 201)]
    assert await desired(registry) == {
        "a.service": TargetState.LOADED, "b.service": TargetState.LOADED,
        "c.service": TargetState.LAUNCHED, "d.service": TargetState.INACTIVE}
    body = await (await client.get(f"{UNITS}/a.service")).json()
    assert body["options"] == OTHER


async def test_result_json_is_small_and_camel_free(client) -> None:
    resp = await post(client, [{"name": "a.service", "options": HELLO}])
    assert await resp.json() == {"results": [{"name": "a.service", "status": 201}]}


async def test_same_content_with_a_state_is_204_and_an_unchanged_state_writes_nothing(
    client, registry, kv
) -> None:
    await put(client, "a.service", {"options": HELLO, "desiredState": "loaded"})
    before = len(kv.txns)
    resp = await post(client, [{"name": "a.service", "options": HELLO, "desiredState": "loaded"}])
    assert await results_of(resp) == [("a.service", 204)]
    assert len(kv.txns) == before


async def test_legacy_prefix_serves_the_batch(client, registry) -> None:
    resp = await post(client, [{"name": "a.service", "options": HELLO}], "/v1-alpha/units")
    assert await results_of(resp) == [("a.service", 201)]


async def test_global_units_are_mirrored(client, registry) -> None:
    await put(client, "was.service", {"options": GLOBAL})
    resp = await post(client, [
        {"name": "g.service", "options": GLOBAL, "desiredState": "launched"},
        {"name": "plain.service", "options": HELLO},
        {"name": "was.service", "options": HELLO},  # no longer global
    ])
    assert await results_of(resp) == [
        ("g.service", 201), ("plain.service", 201), ("was.service", 201)]
    assert [(u.name, u.desired) for u in await registry.list_globals()] == [
        ("g.service", TargetState.LAUNCHED)]
    await post(client, [{"name": "g.service", "desiredState": "loaded"}])
    assert [u.desired for u in await registry.list_globals()] == [TargetState.LOADED]


# nothing written on an error ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "code", "message"),
    [
        ({"name": "bad.foo", "options": HELLO}, 400, 'unit "bad.foo": invalid unit type: "foo"'),
        ({"name": "x.service", "options": HELLO + [
            {"section": "X-Fleet", "name": "MachineID", "value": "a"},
            {"section": "X-Fleet", "name": "Global", "value": "true"}]},
         400, 'unit "x.service": MachineID cannot be used with Global'),
        ({"name": "web@.service", "options": HELLO, "desiredState": "launched"},
         400, 'unit "web@.service": cannot activate template "web@.service"'),
        ({"name": "new.service", "desiredState": "loaded"},
         409, 'unit "new.service": unit does not exist and options field empty'),
        ({"name": "old.service", "options": HELLO},
         409, 'unit "old.service": must provide DesiredState to update existing unit'),
        ({"name": "old.service", "options": HELLO, "desiredState": "running"},
         400, "unable to decode body: unit \"old.service\": desiredState: Input should be "
              "'inactive', 'loaded' or 'launched'"),
        ({"name": "x.service", "options": HELLO, "bogus": 1},
         400, 'unable to decode body: unit "x.service": bogus: Extra inputs are not permitted'),
    ],
)
async def test_one_bad_entry_writes_nothing(client, registry, entry, code, message) -> None:
    await put(client, "old.service", {"options": HELLO})
    await put(client, "keep.service", {"options": HELLO})
    before = await keys_in(registry)
    good: list[dict] = [{"name": "a.service", "options": HELLO, "desiredState": "launched"},
                        {"name": "keep.service", "desiredState": "launched"}]
    assert await error_of(await post(client, [*good, entry]), code) == message
    assert await keys_in(registry) == before
    assert set((await desired(registry)).values()) == {TargetState.INACTIVE}


@pytest.mark.parametrize(
    ("units", "message"),
    [
        ([], "no units given"),
        ([{"name": "a.service", "options": HELLO}, {"name": "a.service", "desiredState": "loaded"}],
         'duplicate unit "a.service"'),
        ([{"name": "a.service", "options": HELLO}, {"options": HELLO}], "units[1]: name is required"),
        ([{"name": f"u{i}.service"} for i in range(10001)],
         "too many units: 10001, at most 10000 per request"),
    ],
)
async def test_batch_shape_errors_are_400(client, registry, units, message) -> None:
    assert await error_of(await post(client, units), 400) == message
    assert await keys_in(registry) == []


@pytest.mark.parametrize("body", ['{"units": {}}', '{"unit": []}', "[]", "{not json"])
async def test_undecodable_batches_are_400(client, registry, body) -> None:
    resp = await client.post(UNITS, data=body, headers={"Content-Type": "application/json"})
    assert (await error_of(resp, 400)).startswith("unable to decode body")


async def test_wrong_content_type_is_415(client, registry) -> None:
    resp = await client.post(UNITS, data='{"units": []}', headers={"Content-Type": "text/plain"})
    assert await error_of(resp, 415) == "expected Content-Type application/json"


# txns ----------------------------------------------------------------------------------------------


async def test_a_thousand_instances_take_few_txns_with_the_file_once_each(client, registry, kv) -> None:
    units = [{"name": f"web@{i}.service", "options": HELLO, "desiredState": "launched"}
             for i in range(1, 1001)]
    resp = await post(client, units)
    assert await results_of(resp) == [(u["name"], 201) for u in units]
    ops = sum(len(t) for t in kv.txns)
    assert len(kv.txns) <= math.ceil(ops / MAX_TXN_OPS)
    assert max(len(t) for t in kv.txns) <= MAX_TXN_OPS
    for txn in kv.txns:
        files = [op for op in txn if isinstance(op, Put) and op.key.startswith("/test/files/")]
        assert len(files) == 1
        assert not any(op.key.startswith("/test/global/") for op in txn)  # no no-op deletes
    assert len(await registry.list_units()) == 1000


# races -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("racer_options", "entry", "result", "final"),
    [  # someone creates b.service between our listing and our txn
        (OTHER, {"options": HELLO, "desiredState": "launched"}, {"status": 201}, TargetState.LAUNCHED),
        (HELLO, {"options": HELLO, "desiredState": "loaded"}, {"status": 204}, TargetState.LOADED),
        (HELLO, {"options": HELLO}, {"status": 409, "message":
                                     "must provide DesiredState to update existing unit"},
         TargetState.INACTIVE),
    ],
)
async def test_a_raced_create_falls_back_to_single_puts(
    client, registry, kv, racer_options, entry, result, final
) -> None:
    async def racer() -> None:
        await put(client, "b.service", {"options": racer_options})

    kv.before_next_txn = racer
    resp = await post(client, [{"name": "a.service", "options": HELLO, "desiredState": "launched"},
                               {"name": "b.service", **entry},
                               {"name": "c.service", "options": HELLO}])
    assert resp.status == 200
    assert (await resp.json())["results"] == [
        {"name": "a.service", "status": 201}, {"name": "b.service", **result},
        {"name": "c.service", "status": 201}]
    assert await desired(registry) == {
        "a.service": TargetState.LAUNCHED, "b.service": final, "c.service": TargetState.INACTIVE}


async def test_a_desired_state_change_raced_by_a_replace_still_applies(client, registry, kv) -> None:
    await put(client, "a.service", {"options": HELLO})

    async def racer() -> None:
        await put(client, "a.service", {"options": OTHER})

    kv.before_next_txn = racer
    resp = await post(client, [{"name": "a.service", "desiredState": "launched"}])
    assert await results_of(resp) == [("a.service", 204)]
    body = await (await client.get(f"{UNITS}/a.service")).json()
    assert (body["options"], body["desiredState"]) == (OTHER, "launched")


async def test_a_unit_deleted_under_a_desired_state_change_is_reported(client, registry, kv) -> None:
    await put(client, "a.service", {"options": HELLO})
    await put(client, "b.service", {"options": HELLO})

    async def racer() -> None:
        await client.delete(f"{UNITS}/a.service")

    kv.before_next_txn = racer
    resp = await post(client, [{"name": "a.service", "desiredState": "loaded"},
                               {"name": "b.service", "desiredState": "loaded"}])
    assert (await resp.json())["results"] == [
        {"name": "a.service", "status": 409,
         "message": "unit does not exist and options field empty"},
        {"name": "b.service", "status": 204}]
    assert await desired(registry) == {"b.service": TargetState.LOADED}
