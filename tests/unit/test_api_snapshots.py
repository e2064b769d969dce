"""Listings page from one registry read: `Snapshots` (fake clock), and GET /units, /state and
/machines reading the registry once per listing, not once per page."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fleetd.api.http import make_app
from fleetd.api.snapshots import Snapshots
from fleetd.model.machine import Machine
from fleetd.model.states import SystemdState, TargetState, UnitState
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


class Reads:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> int:
        self.count += 1
        return self.count


@pytest.mark.parametrize(("first_page", "age", "reads"), [
    (True, 0.0, 2),  # a first page always reads afresh
    (False, 0.0, 1),  # a later page is cut from the snapshot
    (False, 29.9, 1),
    (False, 30.0, 2),  # too old: read afresh
])
async def test_a_snapshot_serves_later_pages_while_fresh(first_page: bool, age: float, reads: int) -> None:
    clock, read = Clock(), Reads()
    snapshots = Snapshots(clock)
    assert await snapshots.get("k", True, read) == 1
    clock.now += age
    assert await snapshots.get("k", first_page, read) == reads
    assert read.count == reads


async def test_snapshots_are_per_key_and_the_oldest_goes() -> None:
    snapshots, read = Snapshots(Clock(), held=2), Reads()
    for key in ("a", "b", "c"):
        await snapshots.get(key, True, read)
    assert await snapshots.get("b", False, read) == 2
    assert await snapshots.get("a", False, read) == 4  # dropped when c came


class CountingKV(MemoryKV):
    """Counts requests: MemoryKV answers get_prefixes with get_prefix calls, not counted again."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[Any] = []
        self._inside = False

    async def get_prefix(self, prefix: str) -> Any:
        if not self._inside:
            self.reads.append(prefix)
        return await super().get_prefix(prefix)

    async def get_prefixes(self, prefixes: Any) -> Any:
        self.reads.append(tuple(prefixes))
        self._inside = True
        try:
            return await super().get_prefixes(prefixes)
        finally:
            self._inside = False


TEXTS = [UnitFile.parse(f"[Service]\nExecStart=/bin/sleep {i}\n") for i in range(3)]


async def _seed(registry: Registry, units: int) -> None:
    lease = await registry.kv.grant(60)
    for m in range(3):
        await registry.register_machine(Machine(f"{m:032x}", f"10.0.0.{m}"), lease)
    for i in range(units):
        text = TEXTS[i % len(TEXTS)]
        unit = Unit(f"u{i:03}.service", text.hash, TargetState.LAUNCHED)
        await registry.create_unit(unit, text.serialize())
        state = UnitState(unit.name, f"{i % 3:032x}", text.hash, TargetState.LAUNCHED,
                          SystemdState("loaded", "active", "running"))
        await registry.put_state(state, lease)


async def _all_pages(client: TestClient, path: str, field: str) -> list[dict]:
    items, params = [], {}
    while True:
        body = await (await client.get(f"/fleet/v1/{path}", params=params)).json()
        items += body[field]
        if "nextPageToken" not in body:
            return items
        params = {"nextPageToken": body["nextPageToken"]}


@pytest.mark.parametrize(("path", "field", "count"), [
    ("units", "units", 25), ("state", "states", 25), ("machines", "machines", 3)])
async def test_a_listing_reads_the_registry_once_for_all_its_pages(path: str, field: str,
                                                                   count: int) -> None:
    kv = CountingKV()
    registry = Registry(kv, Keys("/t/"))
    await _seed(registry, 25)
    async with TestClient(TestServer(make_app(registry, "9", page_limit=2))) as client:
        kv.reads.clear()
        items = await _all_pages(client, path, field)
        assert len(items) == count
        listings = _listings(kv.reads)
        assert len(listings) == 1, kv.reads
        if path == "units":  # the pages' unit files: one batched read per page, not one per unit
            assert {o["value"] for u in items for o in u["options"]} == {
                f"/bin/sleep {i}" for i in range(3)}
            assert len(kv.reads) - len(listings) <= len(range(0, count, 2))
        await _all_pages(client, path, field)
        assert len(_listings(kv.reads)) == 2  # a new listing (a first page) reads afresh


def _listings(reads: list[Any]) -> list[Any]:
    return [r for r in reads if not (isinstance(r, tuple) and r[0].startswith("/t/files/"))]
