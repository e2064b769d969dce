"""The KV port contract, run unchanged against MemoryKV and EtcdKV on a real etcd.

What fleetd relies on: revisions, key-sorted prefix reads, etcd's txn compares, leases that
expire and take their keys, ordered watch replay, Compacted after compaction, and `follow`
resuming after a compaction without losing an event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from fleetd.errors import Compacted, NotFound, RegistryUnavailable
from fleetd.registry.etcd import EtcdKV
from fleetd.registry.kv import Compare, Delete, Put, WatchEvent
from fleetd.registry.memory import MemoryKV
from fleetd.registry.watch import Backoff, follow

FAST = Backoff(initial=0.01, cap=0.05)


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """A KV plus the two things only a test does: let time pass, and compact."""

    kv: MemoryKV | EtcdKV
    clock: FakeClock | None = None
    prefix: str = field(default_factory=lambda: f"/test/{uuid.uuid4().hex[:8]}/")

    async def elapse(self, seconds: float) -> None:
        """Memory: move the fake clock. etcd: really wait (its lease checker runs at 2 Hz)."""
        if self.clock is not None:
            self.clock.now += seconds
            return
        await asyncio.sleep(seconds)

    async def compact(self, revision: int) -> None:
        if isinstance(self.kv, MemoryKV):
            self.kv.compact(revision)
        else:
            await self.kv.compact(revision)

    def key(self, name: str) -> str:
        return self.prefix + name


@pytest.fixture(params=["memory", "etcd"])
async def h(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        clock = FakeClock()
        harness = Harness(MemoryKV(now=clock), clock)
    else:
        cluster = request.getfixturevalue("etcd")
        harness = Harness(EtcdKV(cluster.endpoints, request_timeout=2.0))
    yield harness
    await harness.kv.close()


async def take(events: AsyncIterator[WatchEvent], n: int, timeout: float = 5.0) -> list[WatchEvent]:
    async def collect() -> list[WatchEvent]:
        out = []
        async for event in events:
            out.append(event)
            if len(out) == n:
                return out
        return out

    return await asyncio.wait_for(collect(), timeout)


async def eventually_gone(h: Harness, key: str, timeout: float = 4.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while await h.kv.get(key) is not None:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# keys and revisions -------------------------------------------------------------------------


async def test_put_get_delete(h: Harness) -> None:
    k = h.key("a")
    assert await h.kv.get(k) is None
    r1 = await h.kv.put(k, "one")
    r2 = await h.kv.put(k, "two")
    assert r2 == r1 + 1
    kv = await h.kv.get(k)
    assert (kv.value, kv.create_revision, kv.mod_revision, kv.lease) == ("two", r1, r2, 0)
    assert await h.kv.delete(k) is True
    assert await h.kv.delete(k) is False
    assert await h.kv.get(k) is None


async def test_unicode_values_round_trip(h: Harness) -> None:
    await h.kv.put(h.key("ü"), "välue ✓")
    assert (await h.kv.get(h.key("ü"))).value == "välue ✓"


async def test_get_prefix_is_key_sorted_with_revision(h: Harness) -> None:
    for name in ["c", "a/x", "b", "a"]:
        last = await h.kv.put(h.key(name), name)
    await h.kv.put(h.prefix.rstrip("/") + "-sibling", "not under the prefix")
    listing = await h.kv.get_prefix(h.prefix)
    assert [kv.key for kv in listing.items] == [h.key(n) for n in ["a", "a/x", "b", "c"]]
    assert listing.revision == last + 1
    assert (await h.kv.get_prefix(h.key("none/"))).items == ()


async def test_get_prefixes_reads_several_prefixes_at_one_revision(h: Harness) -> None:
    for name in ["a/1", "a/2", "b/1"]:
        last = await h.kv.put(h.key(name), name)
    first, second, none = await h.kv.get_prefixes([h.key("a/"), h.key("b/"), h.key("c/")])
    assert [kv.value for kv in first.items] == ["a/1", "a/2"]
    assert [kv.value for kv in second.items] == ["b/1"]
    assert none.items == ()
    assert first.revision == second.revision == none.revision == last


async def test_count_counts_keys_under_the_prefix_only(h: Harness) -> None:
    for name in ["a", "a/x", "b"]:
        await h.kv.put(h.key(name), name)
    await h.kv.put(h.prefix.rstrip("/") + "-sibling", "not under the prefix")
    assert await h.kv.count(h.prefix) == 3
    assert await h.kv.count(h.key("a/")) == 1
    assert await h.kv.count(h.key("none/")) == 0


async def test_get_keys_lists_keys_and_revisions_without_values(h: Harness) -> None:
    revs = [await h.kv.put(h.key(name), "a value " * 100) for name in ["a", "b"]]
    await h.kv.put(h.prefix.rstrip("/") + "-sibling", "not under the prefix")
    listing = await h.kv.get_keys(h.prefix)
    assert [(kv.key, kv.value, kv.mod_revision) for kv in listing.items] == [
        (h.key("a"), "", revs[0]), (h.key("b"), "", revs[1])]
    assert listing.revision >= revs[1]


# transactions -------------------------------------------------------------------------------


async def test_txn_create_if_absent(h: Harness) -> None:
    k = h.key("lock")
    first = await h.kv.txn([Compare(k, "create", "==", 0)], [Put(k, "me")])
    second = await h.kv.txn([Compare(k, "create", "==", 0)], [Put(k, "you")])
    assert first.succeeded and not second.succeeded
    assert second.revision == first.revision  # a failed txn with no ops writes nothing
    kv = await h.kv.get(k)
    assert kv.value == "me" and kv.create_revision == first.revision


async def test_txn_mod_compare_is_cas(h: Harness) -> None:
    k = h.key("cas")
    rev = await h.kv.put(k, "v1")
    ok = await h.kv.txn([Compare(k, "mod", "==", rev)], [Put(k, "v2")])
    stale = await h.kv.txn([Compare(k, "mod", "==", rev)], [Put(k, "v3")],
                           [Put(h.key("lost"), "x")])
    assert ok.succeeded and not stale.succeeded
    assert (await h.kv.get(k)).value == "v2"
    assert (await h.kv.get(h.key("lost"))).value == "x"  # the failure branch ran


async def test_txn_version_and_value_compares(h: Harness) -> None:
    k = h.key("v")
    await h.kv.put(k, "a")
    await h.kv.put(k, "b")
    assert (await h.kv.txn([Compare(k, "version", "==", 2)], [])).succeeded
    assert (await h.kv.txn([Compare(k, "version", ">", 1)], [])).succeeded
    assert not (await h.kv.txn([Compare(k, "version", "<", 2)], [])).succeeded
    assert (await h.kv.txn([Compare(k, "value", "==", "b")], [])).succeeded
    assert (await h.kv.txn([Compare(k, "value", "!=", "a")], [])).succeeded
    assert not (await h.kv.txn([Compare(k, "value", "==", "a")], [])).succeeded
    missing = h.key("missing")
    assert (await h.kv.txn([Compare(missing, "version", "==", 0)], [])).succeeded
    assert not (await h.kv.txn([Compare(missing, "value", "!=", "x")], [])).succeeded


async def test_txn_applies_all_ops_at_one_revision(h: Harness) -> None:
    await h.kv.put(h.key("old"), "x")
    ops = [Put(h.key("p1"), "1"), Put(h.key("p2"), "2"), Delete(h.key("old"))]
    result = await h.kv.txn([], ops)
    assert result.succeeded
    p1, p2 = await h.kv.get(h.key("p1")), await h.kv.get(h.key("p2"))
    assert p1.mod_revision == p2.mod_revision == result.revision
    assert await h.kv.get(h.key("old")) is None


async def test_version_restarts_after_delete(h: Harness) -> None:
    k = h.key("again")
    await h.kv.put(k, "1")
    await h.kv.delete(k)
    rev = await h.kv.put(k, "2")
    assert (await h.kv.txn([Compare(k, "version", "==", 1)], [])).succeeded
    assert (await h.kv.get(k)).create_revision == rev


# leases -------------------------------------------------------------------------------------


async def test_lease_expiry_takes_its_keys(h: Harness) -> None:
    lease = await h.kv.grant(1)
    await h.kv.put(h.key("mine"), "x", lease)
    await h.kv.put(h.key("other"), "y")
    assert (await h.kv.get(h.key("mine"))).lease == lease
    await h.elapse(1.5)
    assert await eventually_gone(h, h.key("mine"))
    assert await h.kv.refresh(lease) <= 0
    assert (await h.kv.get(h.key("other"))).value == "y"


async def test_refresh_keeps_a_lease_alive(h: Harness) -> None:
    lease = await h.kv.grant(1)
    await h.kv.put(h.key("alive"), "x", lease)
    for _ in range(4):
        await h.elapse(0.5)
        assert await h.kv.refresh(lease) >= 1
    assert await h.kv.get(h.key("alive")) is not None
    await h.kv.revoke(lease)


async def test_revoke_deletes_keys_and_is_idempotent(h: Harness) -> None:
    lease = await h.kv.grant(30)
    await h.kv.put(h.key("a"), "1", lease)
    await h.kv.txn([], [Put(h.key("b"), "2", lease)])
    await h.kv.revoke(lease)
    assert (await h.kv.get_prefix(h.prefix)).items == ()
    await h.kv.revoke(lease)
    assert await h.kv.refresh(lease) <= 0


async def test_put_on_unknown_lease_is_not_found(h: Harness) -> None:
    lease = await h.kv.grant(30)
    await h.kv.revoke(lease)
    with pytest.raises(NotFound):
        await h.kv.put(h.key("orphan"), "x", lease)
    assert await h.kv.get(h.key("orphan")) is None


# watches ------------------------------------------------------------------------------------


async def test_watch_replays_from_a_revision(h: Harness) -> None:
    r1 = await h.kv.put(h.key("a"), "1")
    r2 = await h.kv.put(h.key("b"), "2")
    await h.kv.put("/elsewhere/" + h.prefix, "ignored")
    r3 = await h.kv.put(h.key("a"), "3")
    r4 = await h.kv.txn([], [Delete(h.key("a"))])
    watch = h.kv.watch_prefix(h.prefix, r1 + 1)
    events = await take(watch, 3)
    await watch.aclose()
    assert events == [
        WatchEvent("put", h.key("b"), "2", r2),
        WatchEvent("put", h.key("a"), "3", r3),
        WatchEvent("delete", h.key("a"), "", r4.revision),
    ]


async def test_live_watch_sees_new_events(h: Harness) -> None:
    start = await h.kv.put(h.key("before"), "x") + 1
    watch = h.kv.watch_prefix(h.prefix, start)
    pending = asyncio.create_task(take(watch, 2))
    await asyncio.sleep(0.1)
    lease = await h.kv.grant(30)
    r1 = await h.kv.put(h.key("live"), "1", lease)
    await h.kv.revoke(lease)
    events = await pending
    await watch.aclose()
    assert events[0] == WatchEvent("put", h.key("live"), "1", r1)
    assert events[1].kind == "delete" and events[1].key == h.key("live")


async def test_watch_from_compacted_revision_raises(h: Harness) -> None:
    r1 = await h.kv.put(h.key("a"), "1")
    await h.kv.put(h.key("a"), "2")
    r3 = await h.kv.put(h.key("a"), "3")
    await h.compact(r3)
    with pytest.raises(Compacted):
        await take(h.kv.watch_prefix(h.prefix, r1), 1)
    events = await take(h.kv.watch_prefix(h.prefix, r3), 1)  # the compaction point survives
    assert events == [WatchEvent("put", h.key("a"), "3", r3)]


async def test_follow_relists_after_compaction_and_loses_nothing(h: Harness) -> None:
    r1 = await h.kv.put(h.key("k1"), "1")
    await h.kv.put(h.key("k2"), "2")
    r3 = await h.kv.put(h.key("k3"), "3")
    await h.compact(r3)
    state: dict[str, str] = {}
    relists: list[int] = []
    errors: list[Exception] = []

    async def relist() -> int:
        listing = await h.kv.get_prefix(h.prefix)
        state.clear()
        state.update((kv.key, kv.value) for kv in listing.items)
        relists.append(listing.revision)
        return listing.revision

    def apply(event: WatchEvent) -> None:
        if event.kind == "put":
            state[event.key] = event.value
        else:
            state.pop(event.key, None)

    task = asyncio.create_task(follow(h.kv, h.prefix, r1, apply, relist, backoff=FAST,
                                      on_error=errors.append))
    try:
        await h.kv.put(h.key("k4"), "4")
        await h.kv.delete(h.key("k1"))
        last = await h.kv.put(h.key("k2"), "22")
        await wait_for(lambda: state.get(h.key("k2")) == "22")
    finally:
        task.cancel()
    listing = await h.kv.get_prefix(h.prefix)
    assert state == {kv.key: kv.value for kv in listing.items}
    assert len(relists) == 1 and relists[0] <= last
    assert len(errors) == 1 and isinstance(errors[0], Compacted)


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# outage (memory only: the real outage is in test_etcd_failover) ------------------------------


async def test_memory_outage_breaks_calls_and_follow_resumes() -> None:
    kv = MemoryKV()
    seen: list[int] = []
    errors: list[Exception] = []
    start = await kv.put("/o/a", "1")

    async def relist() -> int:  # pragma: no cover - must not be needed
        raise AssertionError("no compaction happened")

    task = asyncio.create_task(follow(kv, "/o/", start, lambda e: seen.append(e.mod_revision),
                                      relist, backoff=FAST, on_error=errors.append))
    await wait_for(lambda: seen == [start])
    kv.fail(True)
    with pytest.raises(RegistryUnavailable):
        await kv.put("/o/b", "2")
    await wait_for(lambda: len(errors) >= 2)
    kv.fail(False)
    revs = [await kv.put(f"/o/{i}", "x") for i in range(3)]
    await wait_for(lambda: seen[-1:] == revs[-1:])
    task.cancel()
    assert seen == [start, *revs]
    assert all(type(e) is RegistryUnavailable for e in errors)
