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
echoes of its writes) never counts toward the next.
"""

from __future__ import annotations

import asyncio
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


async def _placed_elsewhere(kv: KV, keys: Keys, revision: int, units: set[str], away: str = "") -> float:
    """Follow assign/ from `revision` until each of `units` is put on a machine other than
    `away`; the monotonic time the last one was seen."""
    waiting = set(units)
    watch = cast(AsyncGenerator[WatchEvent, None], kv.watch_prefix(keys.assign, revision))  # EtcdKV's is
    async with asyncio.timeout(TIMEOUT), aclosing(watch) as events:
        async for event in events:
            machine, unit = keys.split_pair(event.key, keys.assign)
            if event.kind == "put" and machine != away:
                waiting.discard(unit)
            if not waiting:
                return time.monotonic()
    raise SystemExit("bench: the watch of assign/ ended")


async def one_unit(kv: KV, keys: Keys, index: int) -> float:
    """Milliseconds from writing unit `index` to seeing its assignment."""
    started = time.monotonic()
    result = await kv.txn((), seed.unit_ops(keys, "plain", index, 1))
    seen = await _placed_elsewhere(kv, keys, result.revision + 1, {seed.instance(index)})
    return (seen - started) * 1000


async def one_machine(kv: KV, keys: Keys, machine_id: str, settle: float) -> float:
    """Milliseconds from revoking the machine's lease to seeing all its units assigned
    elsewhere, less `settle`."""
    presence = await kv.get(keys.machine(machine_id))
    listing = await kv.get_prefix(keys.assigned_to(machine_id))
    if presence is None or not listing.items:
        raise SystemExit(f"bench: machine {machine_id[:8]} is not registered or holds no units")
    units = {keys.split_pair(item.key, keys.assign)[1] for item in listing.items}
    started = time.monotonic()
    await kv.revoke(presence.lease)
    seen = await _placed_elsewhere(kv, keys, listing.revision + 1, units, away=machine_id)
    return (seen - started - settle) * 1000


async def measure(kv: KV, keys: Keys, cpu_seconds: Callable[[], float], next_index: int,
                  machine_ids: list[str]) -> dict[str, float]:
    """`one_unit_ms` and `one_machine_ms`, the medians of SAMPLES changes each."""
    units, machines = [], []
    for i in range(SAMPLES):
        await wait_idle(cpu_seconds)
        units.append(await one_unit(kv, keys, next_index + i))
    for machine_id in machine_ids[:SAMPLES]:
        await wait_idle(cpu_seconds)
        machines.append(await one_machine(kv, keys, machine_id, Liveness().settle))
    return {"one_unit_ms": round(statistics.median(units), 1),
            "one_machine_ms": round(statistics.median(machines), 1)}
