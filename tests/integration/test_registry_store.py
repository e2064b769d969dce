"""The typed Registry (fleetd.registry.store) over MemoryKV and over a real etcd.

Checks what the API, engine and agents depend on: units are created once, desired state
changes stick, batches of unit writes stay within etcd's txn limits and are atomic per unit,
exactly one engine wins a campaign and its token is the leader key's create revision, a
resigned leader's commits are fenced, and listings decode back to the records.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from fleetd.errors import Fenced
from fleetd.model.machine import Machine
from fleetd.model.states import SystemdState, TargetState, UnitState
from fleetd.model.unit import Assignment, Unit
from fleetd.registry.etcd import EtcdKV
from fleetd.registry.keys import Keys, normalize_prefix
from fleetd.registry.kv import Compare, Op, Put, TxnResult
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import (
    MAX_TXN_BYTES,
    MAX_TXN_OPS,
    Registry,
    UnitWrite,
    op_bytes,
    txn_batches,
)

TEXT = "[Service]\nExecStart=/bin/sleep infinity\n"
INACTIVE, LOADED, LAUNCHED = TargetState.INACTIVE, TargetState.LOADED, TargetState.LAUNCHED


@pytest.fixture(params=["memory", "etcd"])
async def reg(request: pytest.FixtureRequest) -> AsyncIterator[Registry]:
    if request.param == "memory":
        kv: MemoryKV | EtcdKV = MemoryKV()
    else:
        kv = EtcdKV(request.getfixturevalue("etcd").endpoints, request_timeout=2.0)
    yield Registry(kv, Keys(normalize_prefix(f"/fleet-test/{uuid.uuid4().hex[:8]}")))
    await kv.close()


def unit(name: str, desired: TargetState = TargetState.INACTIVE) -> Unit:
    return Unit(name=name, hash="ab" * 32, desired=desired)


async def test_create_unit_only_once(reg: Registry) -> None:
    assert await reg.create_unit(unit("web.service"), TEXT) is True
    assert await reg.create_unit(unit("web.service", TargetState.LAUNCHED), "other") is False
    stored = await reg.get_unit("web.service")
    assert stored == unit("web.service")
    assert await reg.get_file(stored.hash) == TEXT
    assert [u.name for u in await reg.list_units()] == ["web.service"]


async def test_set_desired(reg: Registry) -> None:
    await reg.create_unit(unit("db.service"), TEXT)
    changed = await reg.set_desired("db.service", TargetState.LAUNCHED)
    assert changed == unit("db.service", TargetState.LAUNCHED)
    assert (await reg.get_unit("db.service")).desired is TargetState.LAUNCHED
    assert await reg.set_desired("missing.service", TargetState.LOADED) is None


class CountingKV:
    """Passes every call on to `kv`, recording each txn's compares, ops and outcome."""

    def __init__(self, kv: MemoryKV | EtcdKV) -> None:
        self.kv = kv
        self.txns: list[tuple[list[Compare], list[Op], bool]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.kv, name)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> TxnResult:
        result = await self.kv.txn(compares, success, failure)
        self.txns.append((list(compares), list(success), result.succeeded))
        return result


def counted(reg: Registry) -> tuple[Registry, CountingKV]:
    kv = CountingKV(reg.kv)  # type: ignore[arg-type]
    return Registry(kv, reg.keys), kv  # type: ignore[arg-type]



async def desired_states(reg: Registry) -> dict[str, TargetState]:
    return {u.name: u.desired for u in await reg.list_units()}


async def test_write_units_packs_a_thousand_instances_into_few_txns(reg: Registry) -> None:
    counting, kv = counted(reg)
    writes = [UnitWrite(unit(f"web@{i}.service", LAUNCHED), TEXT) for i in range(1, 1001)]
    assert await counting.write_units(writes) == [True] * 1000
    ops = sum(len(success) for _, success, _ in kv.txns)
    assert len(kv.txns) <= math.ceil(ops / MAX_TXN_OPS)
    for compares, success, succeeded in kv.txns:
        assert succeeded and len(success) <= MAX_TXN_OPS and len(compares) <= MAX_TXN_OPS
        assert sum(op.key.startswith(reg.keys.files) for op in success) == 1  # the shared file once
        assert not any(op.key.startswith(reg.keys.globals) for op in success)  # no no-op deletes
    assert await desired_states(reg) == {f"web@{i}.service": LAUNCHED for i in range(1, 1001)}
    assert await reg.get_file("ab" * 32) == TEXT


async def test_write_units_keeps_each_txn_under_the_byte_bound(reg: Registry) -> None:
    counting, kv = counted(reg)
    texts = [f"[Service]\nExecStart=/bin/echo {i}{'x' * 100_000}\n" for i in range(12)]
    writes = [UnitWrite(Unit(f"u{i}.service", f"{i:064x}", INACTIVE), t) for i, t in enumerate(texts)]
    assert await counting.write_units(writes) == [True] * 12
    assert len(kv.txns) >= 3
    assert all(sum(op_bytes(op) for op in success) <= MAX_TXN_BYTES for _, success, _ in kv.txns)
    assert [await reg.get_file(f"{i:064x}") for i in range(12)] == texts


async def test_write_units_is_atomic_per_unit_and_falls_back_after_a_race(reg: Registry) -> None:
    await reg.create_unit(unit("taken.service"), TEXT)  # created by someone else meanwhile
    await reg.create_unit(unit("moved.service"), TEXT)
    stale = (await reg.units_with_revisions())["moved.service"][1]
    await reg.set_desired("moved.service", LOADED)  # its mod revision moved on
    counting, kv = counted(reg)
    done = await counting.write_units([
        UnitWrite(unit("a.service", LAUNCHED), TEXT),
        UnitWrite(Unit("taken.service", "cd" * 32, LAUNCHED), "other"),  # create: loses
        UnitWrite(unit("moved.service", LAUNCHED), None, stale),  # stale: redone as set_desired
        UnitWrite(unit("gone.service", LAUNCHED), None, stale),  # vanished: loses
    ])
    assert done == [True, False, True, False]
    assert kv.txns[0][2] is False  # the batch txn wrote nothing; then one unit at a time
    assert await desired_states(reg) == {
        "a.service": LAUNCHED, "taken.service": INACTIVE, "moved.service": LAUNCHED}
    assert await reg.get_unit("taken.service") == unit("taken.service")
    assert await reg.get_file("cd" * 32) is None


async def test_write_units_mirrors_global_units(reg: Registry) -> None:
    g = Unit("g.service", "ab" * 32, LAUNCHED, is_global=True)
    assert await reg.write_units([UnitWrite(g, TEXT), UnitWrite(unit("p.service"), TEXT)]) == [True, True]
    assert await reg.list_globals() == [g]
    revision = (await reg.units_with_revisions())["g.service"][1]
    loaded = Unit("g.service", "ab" * 32, LOADED, is_global=True)
    assert await reg.write_units([UnitWrite(loaded, None, revision, was_global=True)]) == [True]
    assert await reg.list_globals() == [loaded]
    revision = (await reg.units_with_revisions())["g.service"][1]
    plain = Unit("g.service", "cd" * 32, LOADED)
    assert await reg.write_units([UnitWrite(plain, "other", revision, was_global=True)]) == [True]
    assert await reg.list_globals() == []


async def test_campaign_has_one_winner_with_create_revision_token(reg: Registry) -> None:
    lease_a, lease_b = await reg.kv.grant(30), await reg.kv.grant(30)
    token = await reg.campaign("machine-a", lease_a)
    assert token is not None
    assert await reg.campaign("machine-b", lease_b) is None
    leader = await reg.kv.get(reg.keys.leader)
    assert (leader.value, leader.create_revision, leader.lease) == ("machine-a", token, lease_a)
    assert await reg.leader() == "machine-a"


async def test_commit_is_fenced_after_resign(reg: Registry) -> None:
    token = await reg.campaign("machine-a", await reg.kv.grant(30))
    place = Assignment("web.service", "machine-a", "ab" * 32, TargetState.LAUNCHED)
    assert await reg.commit(token, [reg.place_op(place)]) == 1
    await reg.resign(token)
    assert await reg.leader() is None
    with pytest.raises(Fenced):
        await reg.commit(token, [reg.evict_op("web.service", "machine-a")])
    assert await reg.list_assignments() == [place]


async def test_new_leader_fences_the_old_token(reg: Registry) -> None:
    lease = await reg.kv.grant(30)
    old = await reg.campaign("machine-a", lease)
    await reg.kv.revoke(lease)  # the old leader's lease lapsed
    new = await reg.campaign("machine-b", await reg.kv.grant(30))
    assert new is not None and new != old
    with pytest.raises(Fenced):
        await reg.commit(old, [reg.evict_op("x.service", "machine-a")])


async def test_commit_batches_large_plans(reg: Registry) -> None:
    token = await reg.campaign("m1", await reg.kv.grant(30))
    places = [Assignment(f"u{i:03}.service", "m1", "cd" * 32, TargetState.LOADED)
              for i in range(MAX_TXN_OPS + 5)]
    assert await reg.commit(token, [reg.place_op(a) for a in places]) == 2
    assert sorted(await reg.list_assignments("m1"), key=lambda a: a.unit) == places


async def test_commit_reports_each_accepted_batch_with_its_revision(reg: Registry) -> None:
    token = await reg.campaign("m1", await reg.kv.grant(30))
    places = [Assignment(f"u{i:03}.service", "m1", "cd" * 32, TargetState.LOADED)
              for i in range(3 * MAX_TXN_OPS)]
    seen: list[tuple[int, int]] = []
    txns = await reg.commit(token, [reg.place_op(a) for a in places],
                            on_batch=lambda batch, revision: seen.append((len(batch), revision)))
    assert txns == 3 and sorted(n for n, _ in seen) == [MAX_TXN_OPS] * 3
    assert len({revision for _, revision in seen}) == 3  # three txns, three revisions
    assert len(await reg.list_assignments("m1")) == 3 * MAX_TXN_OPS


@pytest.mark.parametrize(("sizes", "expected"), [
    ([], []),
    ([10] * 3, [3]),
    ([10] * (MAX_TXN_OPS + 1), [MAX_TXN_OPS, 1]),
    ([MAX_TXN_BYTES // 2] * 3, [2, 1]),  # bytes cut before ops do
    ([MAX_TXN_BYTES * 2, 10], [1, 1]),  # an op bigger than the limit still goes, alone
])
def test_txn_batches_cut_by_ops_and_bytes(sizes: list[int], expected: list[int]) -> None:
    ops = [Put(f"k{i}", "x" * (size - len(f"k{i}"))) for i, size in enumerate(sizes)]
    batches = txn_batches(ops)
    assert [len(b) for b in batches] == expected
    assert [op for b in batches for op in b] == ops


async def test_list_assignments_and_states_decode(reg: Registry) -> None:
    token = await reg.campaign("m1", await reg.kv.grant(30))
    a1 = Assignment("web.service", "m1", "ab" * 32, TargetState.LAUNCHED)
    a2 = Assignment("web.service", "m2", "ab" * 32, TargetState.LOADED)
    await reg.commit(token, [reg.place_op(a1), reg.place_op(a2)])
    assert await reg.list_assignments() == [a1, a2]
    assert await reg.list_assignments("m2") == [a2]

    lease = await reg.kv.grant(30)
    running = SystemdState("loaded", "active", "running")
    s1 = UnitState("web.service", "m1", "ab" * 32, TargetState.LAUNCHED, running)
    s2 = UnitState("web.service", "m2", "ab" * 32, TargetState.LOADED,
                   SystemdState("loaded", "inactive", "dead"))
    await reg.put_state(s1, lease)
    await reg.put_state(s2, lease)
    assert await reg.list_states() == [s1, s2]
    assert await reg.list_states("web.service") == [s1, s2]
    await reg.delete_state("web.service", "m2")
    assert await reg.list_states() == [s1]
    await reg.kv.revoke(lease)
    assert await reg.list_states() == []


async def test_machines_register_on_their_lease(reg: Registry) -> None:
    lease = await reg.kv.grant(30)
    m = Machine(id="b" * 32, ip="10.0.0.2", metadata={"region": "eu"}, version="0.1.0")
    await reg.register_machine(m, lease)
    await reg.register_machine(Machine(id="a" * 32), await reg.kv.grant(30))
    assert [x.id for x in await reg.list_machines()] == ["a" * 32, "b" * 32]
    assert (await reg.list_machines())[1] == m
    await reg.kv.revoke(lease)
    assert [x.id for x in await reg.list_machines()] == ["a" * 32]


async def test_delete_units_in_txns_etcd_accepts(reg: Registry) -> None:
    names = [f"d{i:03d}.service" for i in range(100)]
    for name in names:
        assert await reg.create_unit(unit(name), TEXT)
    assert await reg.delete_units([*names[:50], "ghost.service", *names[50:]]) == [
        *[True] * 50, False, *[True] * 50]
    assert await reg.list_units() == []
