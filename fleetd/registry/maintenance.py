"""The cluster-wide maintenance lock in etcd: a semaphore of N slots, `maintenance/<slot>`.

A machine takes a slot with a create-only txn on a lease of the lock's own (TTL
`maintenance_lock_ttl`); the holder's fleetd keeps that lease alive (fleetd.agent.maintenance),
so the lock survives the holder's reboot and is freed when a host that holds it does not come
back within the TTL. A request with --max-parallel N tries slots 0..N-1; a machine that holds a
slot already keeps it. Releasing deletes the slot (guarded by its value) and revokes the lease.
"""

from __future__ import annotations

import json

from fleetd.errors import RegistryUnavailable
from fleetd.model.lifecycle import LockHolder
from fleetd.registry.kv import Compare, Delete, KeyValue, Put
from fleetd.registry.store import Registry


def _holder(registry: Registry, kv: KeyValue) -> LockHolder | None:
    slot = registry.keys.last_segment(kv.key)
    try:
        data = json.loads(kv.value)
    except ValueError:
        return None
    machine = data.get("machine") if isinstance(data, dict) else None
    if not slot.isdigit() or not isinstance(machine, str):
        return None
    since = data.get("since")
    return LockHolder(machine, int(slot), since if isinstance(since, str) else "", kv.lease)


async def holders(registry: Registry) -> list[LockHolder]:
    """Who holds the lock now, by slot."""
    listing = await registry.kv.get_prefix(registry.keys.maintenance)
    found = [h for kv in listing.items if (h := _holder(registry, kv)) is not None]
    return sorted(found, key=lambda h: h.slot)


async def acquire(registry: Registry, machine: str, limit: int, ttl: int,
                  now: str) -> tuple[bool, list[LockHolder]]:
    """Take a slot among 0..limit-1 for `machine` (kept if it holds one); (got it, holders)."""
    current = await holders(registry)
    if any(h.machine == machine for h in current):
        return True, current
    taken = {h.slot for h in current}
    for slot in (s for s in range(limit) if s not in taken):
        lease = await registry.kv.grant(ttl)
        key = registry.keys.maintenance_slot(slot)
        record = json.dumps({"machine": machine, "since": now}, sort_keys=True)
        result = await registry.kv.txn([Compare(key, "create", "==", 0)], [Put(key, record, lease)])
        if result.succeeded:
            return True, await holders(registry)
        await registry.kv.revoke(lease)
    return False, [h for h in await holders(registry) if h.slot < limit]


async def release(registry: Registry, machine: str) -> bool:
    """Give up `machine`'s slot; False if it holds none."""
    for _ in range(5):
        listing = await registry.kv.get_prefix(registry.keys.maintenance)
        mine = [kv for kv in listing.items
                if (h := _holder(registry, kv)) is not None and h.machine == machine]
        if not mine:
            return False
        kv = mine[0]
        result = await registry.kv.txn([Compare(kv.key, "mod", "==", kv.mod_revision)],
                                       [Delete(kv.key)])
        if result.succeeded:
            if kv.lease:
                await registry.kv.revoke(kv.lease)
            return True
    raise RegistryUnavailable("the maintenance lock kept changing; try again")
