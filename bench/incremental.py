"""The engine benchmark's `--incremental` figures: what one change costs on a placed cluster.

Run after a cold case, with the engine still leading over every unit placed:

- `one_unit_ms`: one more unit is written (as the API writes it), timed until its assignment
  shows on a watch of assign/;
- `one_machine_ms`: one machine's lease is revoked (its presence key goes, as when its lease
  expires), timed until every unit it held shows assigned elsewhere, less the engine's settle
  wait (`Liveness.settle`, 1.5 s by default: the engine waits that long on purpose, so that
  machines failing together are seen together).

Each figure is the median of SAMPLES changes, each made once the engine is idle again (its CPU
time stands still), so that one change's trailing work (the pass that confirms a plan, the watch
echoes of its writes) never counts toward the next. One watch of assign/, opened before the
first change, sees the assignments.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import cast

from bench import seed
from fleetd.model.liveness import Liveness
from fleetd.registry.keys import Keys
from fleetd.registry.kv import KV, WatchEvent

SAMPLES = 5
IDLE_CPU_S = 0.01  # the engine used less than this over IDLE_WINDOW: it is idle
IDLE_WINDOW = 0.5
TIMEOUT = 60.0


async def wait_idle(cpu_seconds: Callable[[], float], limit: float = 120.0) -> None:
    """Until the engine's CPU time grows by less than IDLE_CPU_S over IDLE_WINDOW."""
    deadline = time.monotonic() + limit
    before = cpu_seconds()
    while time.monotonic() < deadline:
        await asyncio.sleep(IDLE_WINDOW)
        now = cpu_seconds()
        if now - before < IDLE_CPU_S:
            return
        before = now
    raise SystemExit("bench: the engine did not go idle")


class Assignments:
    """One watch on assign/, opened before the first change: when each unit was last put, where."""

    def __init__(self, kv: KV, keys: Keys) -> None:
        self.kv, self.keys = kv, keys
        self.seen: dict[str, tuple[str, float]] = {}  # unit -> (machine, monotonic time seen)
        self.changed = asyncio.Event()

    async def follow(self, revision: int) -> None:
        watch = cast(AsyncGenerator[WatchEvent, None], self.kv.watch_prefix(self.keys.assign, revision))
        async with aclosing(watch) as events:  # EtcdKV's watch is an async generator
            async for event in events:
                if event.kind == "put":
                    machine, unit = self.keys.split_pair(event.key, self.keys.assign)
                    self.seen[unit] = (machine, time.monotonic())
                    self.changed.set()

    async def placed(self, units: set[str], since: float, away: str = "") -> float:
        """When the last of `units` was seen put after `since`, on a machine other than `away`."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                self.changed.clear()
                found = [self.seen.get(unit) for unit in units]
                if all(f is not None and f[0] != away and f[1] >= since for f in found):
                    return max(f[1] for f in found if f is not None)
                await self.changed.wait()


async def one_unit(kv: KV, keys: Keys, seen: Assignments, index: int) -> float:
    """Milliseconds from writing unit `index` to seeing its assignment."""
    started = time.monotonic()
    await kv.txn((), seed.unit_ops(keys, "plain", index, 1))
    return (await seen.placed({seed.instance(index)}, started) - started) * 1000


async def one_machine(kv: KV, keys: Keys, seen: Assignments, machine_id: str, settle: float) -> float:
    """Milliseconds from revoking the machine's lease to seeing all its units assigned
    elsewhere, less `settle`."""
    presence = await kv.get(keys.machine(machine_id))
    listing = await kv.get_prefix(keys.assigned_to(machine_id))
    if presence is None or not listing.items:
        raise SystemExit(f"bench: machine {machine_id[:8]} is not registered or holds no units")
    units = {keys.split_pair(item.key, keys.assign)[1] for item in listing.items}
    started = time.monotonic()
    await kv.revoke(presence.lease)
    return (await seen.placed(units, started, away=machine_id) - started - settle) * 1000


async def measure(kv: KV, keys: Keys, cpu_seconds: Callable[[], float], next_index: int,
                  machine_ids: list[str]) -> dict[str, float]:
    """`one_unit_ms` and `one_machine_ms`, the medians of SAMPLES changes each."""
    seen = Assignments(kv, keys)
    follower = asyncio.create_task(seen.follow((await kv.get_prefix(keys.leader)).revision + 1))
    units, machines = [], []
    try:
        for i in range(SAMPLES):
            await wait_idle(cpu_seconds)  # the watch is up by then
            units.append(await one_unit(kv, keys, seen, next_index + i))
        for machine_id in machine_ids[:SAMPLES]:
            await wait_idle(cpu_seconds)
            machines.append(await one_machine(kv, keys, seen, machine_id, Liveness().settle))
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    return {"one_unit_ms": round(statistics.median(units), 1),
            "one_machine_ms": round(statistics.median(machines), 1)}
