"""DELETE /units over a MemoryKV registry: one result per name (204 or 404), few txns, the
fall-back to single deletes after a race, invalid names still removable; and fleetctl destroy
sending its units in one request."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_api_batch import CountingKV

from fleetctl import client as fleetctl_client
from fleetctl.cli import main as fleetctl
from fleetd.api.http import make_app, serve
from fleetd.model.states import TargetState
from fleetd.model.unit import Unit
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from fleetd.registry.kv import Put
from fleetd.registry.store import MAX_TXN_OPS, Registry

UNITS = "/fleet/v1/units"
TEXT = "[Service]\nExecStart=/bin/sleep 1000\n"


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


async def create(registry: Registry, *names: str) -> None:
    for name in names:
        assert await registry.create_unit(Unit(name, "ab" * 32, TargetState.LAUNCHED), TEXT)


async def delete(client: TestClient, names: list[str]) -> tuple[int, object]:
    resp = await client.delete(UNITS, json={"names": names})
    return resp.status, await resp.json()


async def test_each_name_gets_its_result_in_order(client, registry) -> None:
    await create(registry, "a.service", "b.service")
    status, body = await delete(client, ["b.service", "ghost.service", "a.service"])
    assert status == 200
    assert body == {"results": [{"name": "b.service", "status": 204},
                                {"name": "ghost.service", "status": 404,
                                 "message": "unit does not exist"},
                                {"name": "a.service", "status": 204}]}
    assert await registry.list_units() == []


async def test_many_units_go_in_few_txns(client, registry, kv) -> None:
    names = [f"u{i:03d}.service" for i in range(300)]
    await create(registry, *names)
    kv.txns.clear()
    status, _ = await delete(client, names)
    assert status == 200 and await registry.list_units() == []
    assert len(kv.txns) == -(-300 // (MAX_TXN_OPS // 3))  # 42 units (126 ops) per txn
    assert max(len(ops) for ops in kv.txns) <= MAX_TXN_OPS


async def test_a_txn_that_lost_a_race_is_redone_unit_by_unit(client, registry, kv) -> None:
    await create(registry, "a.service", "b.service", "c.service")

    async def racer() -> None:  # b changes between the listing and the txn
        await registry.set_desired("b.service", TargetState.LOADED)

    kv.before_next_txn = racer
    status, body = await delete(client, ["a.service", "b.service", "c.service"])
    assert status == 200 and [r["status"] for r in body["results"]] == [204, 204, 204]
    assert await registry.list_units() == []


async def test_a_unit_with_an_invalid_name_can_be_destroyed(client, registry, kv) -> None:
    record = Unit("-x.service", "ab" * 32, TargetState.LAUNCHED)  # written past the API
    await kv.put(registry.keys.unit(record.name), codec.encode_unit(record))
    status, body = await delete(client, ["-x.service"])
    assert (status, body["results"][0]["status"]) == (200, 204)
    assert await registry.list_units() == []


@pytest.mark.parametrize(("body", "message"), [
    ({"names": []}, "no units given"),
    ({"names": ["a.service", "a.service"]}, 'duplicate unit "a.service"'),
    ({"names": [""]}, "names[0]: name is required"),
    ({"names": ["a.service"] * 3 + [f"{i}.service" for i in range(10000)]}, "too many units"),
    ({"units": ["a.service"]}, "names: Field required"),
])
async def test_bad_requests_are_400_and_destroy_nothing(client, registry, body, message) -> None:
    await create(registry, "a.service")
    resp = await client.delete(UNITS, json=body)
    assert resp.status == 400 and message in (await resp.json())["error"]["message"]
    assert [u.name for u in await registry.list_units()] == ["a.service"]


async def test_fleetctl_destroy_sends_its_units_in_batches(tmp_path: Path, registry, kv,
                                                          monkeypatch) -> None:
    monkeypatch.setattr(fleetctl_client, "DESTROY_BATCH", 50)
    names = [f"w{i:03d}.service" for i in range(120)]
    await create(registry, *names)
    sock = str(tmp_path / "fleet.sock")
    runner = await serve(make_app(registry, "test"), sock)
    try:
        out, err, env = io.StringIO(), io.StringIO(), {"FLEETCTL_ENDPOINT": f"unix://{sock}"}
        kv.txns.clear()
        code = await asyncio.to_thread(fleetctl, ["--debug", "destroy", *names], out, err, env)
    finally:
        await runner.cleanup()
    assert code == 0, err.getvalue()
    assert out.getvalue().splitlines() == [f"Destroyed {n}" for n in names]
    assert err.getvalue().count("DEBUG: DELETE") == 3  # 50 + 50 + 20
    assert await registry.list_units() == []


async def test_fleetctl_destroy_gives_up_after_its_timeout(tmp_path: Path, registry, kv) -> None:
    await create(registry, "stuck.service")
    state = '{"hash":"x","state":"launched","load":"loaded","active":"active","sub":"running"}'
    await kv.txn((), [Put(registry.keys.state("stuck.service", "m" * 32), state)])  # never leaves
    code, err = await _fleetctl(tmp_path, registry, ["destroy", "--timeout", "0.6", "stuck.service"])
    assert code == 1
    assert err.endswith("Error: fleetctl destroy did not finish within 0.6 s (--timeout): what it "
                        "sent may still be under way; see fleetctl list-unit-files\n"), err


async def test_fleetctl_start_gives_up_after_its_timeout(tmp_path: Path, registry) -> None:
    (tmp_path / "hello.service").write_text(TEXT)  # no machine will ever launch it
    code, err = await _fleetctl(tmp_path, registry, ["start", "--timeout", "0.6",
                                                     str(tmp_path / "hello.service")])
    assert code == 1
    assert "Error: fleetctl start did not finish within 0.6 s (--timeout)" in err, err


async def _fleetctl(tmp_path: Path, registry: Registry, argv: list[str]) -> tuple[int, str]:
    sock = str(tmp_path / "fleet.sock")
    runner = await serve(make_app(registry, "test"), sock)
    try:
        err = io.StringIO()
        code = await asyncio.to_thread(fleetctl, argv, io.StringIO(), err,
                                       {"FLEETCTL_ENDPOINT": f"unix://{sock}"})
    finally:
        await runner.cleanup()
    return code, err.getvalue()
