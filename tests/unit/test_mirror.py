"""The agent's mirror: a listing merged while events arrive, and the safety net's catches.

`merge_listing` is pure (a table); `Mirror` runs against MemoryKV with events applied by hand,
so each race is placed exactly: a listing older than an event already applied, an event still
on its way when a newer listing arrives, and a watch that never delivers at all.
"""

from __future__ import annotations

import pytest

from fleetd.agent.mirror import Mirror, merge_listing
from fleetd.registry.kv import KeyValue, Listing, WatchEvent
from fleetd.registry.memory import MemoryKV


def listing(revision: int, **keys: int) -> Listing:
    """A listing at `revision`; each key's value is "v<mod revision>"."""
    return Listing(tuple(KeyValue(k, f"v{rev}", rev, rev) for k, rev in sorted(keys.items())),
                   revision)


MERGES = [
    # (what the mirror has, its tombstones, the listing) -> (revisions after, puts, deletes)
    pytest.param({}, {}, listing(5, a=3), {"a": 3}, {"a": "v3"}, set(), id="first-listing"),
    pytest.param({"a": 3}, {}, listing(5, a=3), {"a": 3}, {}, set(), id="same-nothing-changes"),
    pytest.param({"a": 7}, {}, listing(5, a=3), {"a": 7}, {}, set(),
                 id="event-newer-than-listing-is-kept"),
    pytest.param({"a": 3}, {}, listing(9, a=8), {"a": 8}, {"a": "v8"}, set(),
                 id="listing-newer-than-mirror-wins"),
    pytest.param({}, {"a": 7}, listing(5, a=3), {}, {}, set(),
                 id="delete-after-listing-is-not-undone"),
    pytest.param({"a": 3}, {}, listing(5), {}, {}, {"a"}, id="deleted-before-listing-goes"),
    pytest.param({"a": 7}, {}, listing(5), {"a": 7}, {}, set(),
                 id="put-after-listing-stays"),
    pytest.param({"b": 2}, {"a": 4}, listing(6, a=6), {"a": 6}, {"a": "v6"}, {"b"},
                 id="recreated-after-tombstone"),
]


@pytest.mark.parametrize(("have", "tombstones", "fresh", "after", "puts", "deletes"), MERGES)
def test_merge_listing(have: dict[str, int], tombstones: dict[str, int], fresh: Listing,
                       after: dict[str, int], puts: dict[str, str], deletes: set[str]) -> None:
    merged = merge_listing(have, tombstones, fresh)
    assert (merged.revisions, merged.puts, set(merged.deletes)) == (after, puts, deletes)


class Catches:
    def __init__(self) -> None:
        self.counted: list[int] = []

    def __call__(self, n: int) -> None:
        self.counted.append(n)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


PATIENCE = 15.0


def mirror(kv: MemoryKV, catches: Catches, clock: Clock | None = None) -> Mirror[str]:
    return Mirror(kv, "/p/", lambda key, value: value, lambda: None,
                  lambda what, exc: None, catches, patience=PATIENCE, clock=clock or Clock())


async def test_a_listing_older_than_an_applied_event_does_not_undo_it() -> None:
    kv = MemoryKV()
    await kv.put("/p/a", "old")
    m = mirror(kv, Catches())
    await m.relist()
    stale = await kv.get_prefix("/p/")
    rev = await kv.put("/p/a", "new")
    m.apply(WatchEvent("put", "/p/a", "new", rev))
    m._merge(stale)  # a listing read before the event, answered after it
    assert m.items == {"/p/a": "new"}


async def test_an_event_still_on_its_way_is_no_catch() -> None:
    kv, catches = MemoryKV(), Catches()
    m = mirror(kv, catches)
    await m.relist()
    rev = await kv.put("/p/a", "1")
    await m.check()  # the listing sees the put before the watch delivers it
    assert m.items == {"/p/a": "1"}
    m.apply(WatchEvent("put", "/p/a", "1", rev))  # ...which then arrives
    assert await m.check() == 0
    assert catches.counted == []


async def test_a_change_the_watch_never_delivers_is_counted_once() -> None:
    kv, catches, clock = MemoryKV(), Catches(), Clock()
    m = mirror(kv, catches, clock)
    await kv.put("/p/gone", "x")
    await m.relist()
    await kv.put("/p/a", "1")
    await kv.delete("/p/gone")
    await m.check()  # corrects both: the unit appears, the deleted one goes
    assert m.items == {"/p/a": "1"}
    clock.now += PATIENCE
    assert await m.check() == 2  # the watch delivered neither
    assert catches.counted == [2]
    clock.now += PATIENCE
    assert await m.check() == 0  # counted once, not at every check


async def test_two_checks_close_together_give_the_watch_its_patience() -> None:
    """The periodic check and the one after fencing is lifted can run in the same pass, just
    after a network cut healed: the watch is still resuming, which is no miss."""
    kv, catches, clock = MemoryKV(), Catches(), Clock()
    m = mirror(kv, catches, clock)
    await m.relist()
    rev = await kv.put("/p/a", "1")
    await m.check()
    clock.now += 0.01
    assert await m.check() == 0
    clock.now += PATIENCE / 2
    m.apply(WatchEvent("put", "/p/a", "1", rev))  # the resumed watch delivers it
    clock.now += PATIENCE
    assert await m.check() == 0
    assert catches.counted == []


async def test_a_relist_after_compaction_expects_nothing_from_the_watch() -> None:
    kv, catches = MemoryKV(), Catches()
    m = mirror(kv, catches)
    await m.relist()
    await kv.put("/p/a", "1")
    await m.check()
    await m.relist()  # the watch resumes after this listing: it will not deliver "a"
    assert await m.check() == 0
    assert catches.counted == []
