"""DELETE /units over a MemoryKV registry: one result per name (204 or 404), few txns, the
fall-back to single deletes after a race, invalid names still removable; fleetctl destroy
sending its units in batches; start and destroy giving up after --timeout."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
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
from fleetd.registry.store import MAX_TXN_OPS, Registry

UNITS = "/fleet/v1/units"
TEXT = "[Service]\nExecStart=/bin/sleep 1000\n"


@dataclass
class Api:
    """The app over a CountingKV registry, and a test client for it."""

    kv: CountingKV
    registry: Registry
    client: TestClient


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    kv = CountingKV()
    registry = Registry(kv, Keys("/test/"))
    async with TestClient(TestServer(make_app(registry, "9.9.9"))) as test_client:
        yield Api(kv, registry, test_client)


async def create(api: Api, *names: str) -> None:
    for name in names:
        assert await api.registry.create_unit(Unit(name, "ab" * 32, TargetState.LAUNCHED), TEXT)


async def delete(api: Api, names: list[str]) -> tuple[int, object]:
    resp = await api.client.delete(UNITS, json={"names": names})
    return resp.status, await resp.json()


async def test_each_name_gets_its_result_in_order(api: Api) -> None:
    await create(api, "a.service", "b.service")
    status, body = await delete(api, ["b.service", "ghost.service", "a.service"])
    assert status == 200
    assert body == {"results": [{"name": "b.service", "status": 204},
                                {"name": "ghost.service", "status": 404,
                                 "message": "unit does not exist"},
                                {"name": "a.service", "status": 204}]}
    assert await api.registry.list_units() == []


async def test_many_units_go_in_few_txns(api: Api) -> None:
    names = [f"u{i:03d}.service" for i in range(300)]
    await create(api, *names)
    api.kv.txns.clear()
    status, _ = await delete(api, names)
    assert status == 200 and await api.registry.list_units() == []
    assert len(api.kv.txns) == -(-300 // (MAX_TXN_OPS // 3))  # 42 units (126 ops) per txn
    assert max(len(ops) for ops in api.kv.txns) <= MAX_TXN_OPS


async def test_a_txn_that_lost_a_race_is_redone_unit_by_unit(api: Api) -> None:
    await create(api, "a.service", "b.service", "c.service")

    async def racer() -> None:  # b changes between the listing and the txn
        await api.registry.set_desired("b.service", TargetState.LOADED)

    api.kv.before_next_txn = racer
    status, body = await delete(api, ["a.service", "b.service", "c.service"])
    assert status == 200 and [r["status"] for r in body["results"]] == [204, 204, 204]
    assert await api.registry.list_units() == []


async def test_a_unit_with_an_invalid_name_can_be_destroyed(api: Api) -> None:
    record = Unit("-x.service", "ab" * 32, TargetState.LAUNCHED)  # written past the API
    await api.kv.put(api.registry.keys.unit(record.name), codec.encode_unit(record))
    status, body = await delete(api, ["-x.service"])
    assert (status, body["results"][0]["status"]) == (200, 204)
    assert await api.registry.list_units() == []


@pytest.mark.parametrize(("body", "message"), [
    ({"names": []}, "no units given"),
    ({"names": ["a.service", "a.service"]}, 'duplicate unit "a.service"'),
    ({"names": [""]}, "names[0]: name is required"),
    ({"names": ["a.service"] * 3 + [f"{i}.service" for i in range(10000)]}, "too many units"),
    ({"units": ["a.service"]}, "names: Field required"),
])
async def test_bad_requests_are_400_and_destroy_nothing(api: Api, body, message) -> None:
    await create(api, "a.service")
    resp = await api.client.delete(UNITS, json=body)
    assert resp.status == 400 and message in (await resp.json())["error"]["message"]
    assert [u.name for u in await api.registry.list_units()] == ["a.service"]


async def test_fleetctl_destroy_sends_its_units_in_batches(api: Api, tmp_path: Path,
                                                          monkeypatch) -> None:
    monkeypatch.setattr(fleetctl_client, "DESTROY_BATCH", 50)
    names = [f"w{i:03d}.service" for i in range(120)]
    await create(api, *names)
    code, out, err = await run_fleetctl(tmp_path, api, ["--debug", "destroy", *names])
    assert code == 0, err
    assert out.splitlines() == [f"Destroyed {n}" for n in names]
    assert err.count("DEBUG: DELETE") == 3  # 50 + 50 + 20
    assert await api.registry.list_units() == []


async def test_fleetctl_destroy_gives_up_after_its_timeout(api: Api, tmp_path: Path) -> None:
    await create(api, "stuck.service")
    state = '{"hash":"x","state":"launched","load":"loaded","active":"active","sub":"running"}'
    await api.kv.put(api.registry.keys.state("stuck.service", "m" * 32), state)  # never leaves
    code, _, err = await run_fleetctl(tmp_path, api, ["destroy", "--timeout", "0.6",
                                                      "stuck.service"])
    assert code == 1
    assert err.endswith("Error: fleetctl destroy did not finish within 0.6 s (--timeout): what it "
                        "sent may still be under way; see fleetctl list-unit-files\n"), err


async def test_fleetctl_start_gives_up_after_its_timeout(api: Api, tmp_path: Path) -> None:
    (tmp_path / "hello.service").write_text(TEXT)  # no machine will ever launch it
    code, _, err = await run_fleetctl(tmp_path, api, ["start", "--timeout", "0.6",
                                                      str(tmp_path / "hello.service")])
    assert code == 1
    assert "Error: fleetctl start did not finish within 0.6 s (--timeout)" in err, err


async def run_fleetctl(tmp_path: Path, api: Api, argv: list[str]) -> tuple[int, str, str]:
    """fleetctl against the app served on a unix socket: exit code, stdout, stderr."""
    sock = str(tmp_path / "fleet.sock")
    runner = await serve(make_app(api.registry, "test"), sock)
    try:
        out, err = io.StringIO(), io.StringIO()
        code = await asyncio.to_thread(fleetctl, argv, out, err,
                                       {"FLEETCTL_ENDPOINT": f"unix://{sock}"})
    finally:
        await runner.cleanup()
    return code, out.getvalue(), err.getvalue()
