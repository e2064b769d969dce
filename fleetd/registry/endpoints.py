"""The registry's endpoints/ prefix: the ops agents write there and the listing readers get.

endpoints/<unit>/<machine> holds an `EndpointRecord` as JSON (fleetd.model.endpoints), put on
the machine's lease, so the records of a dead host vanish with it. Proxies may watch the
prefix directly; the API lists it.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetd.errors import InvalidInput
from fleetd.model.endpoints import EndpointRecord, decode_record, encode_record
from fleetd.registry.keys import Keys
from fleetd.registry.kv import Delete, Op, Put
from fleetd.registry.store import Registry


def endpoint_ops(keys: Keys, machine: str, lease: int, changed: Sequence[EndpointRecord],
                 gone: Sequence[str]) -> list[Op]:
    """Put `changed` on `lease`; delete the records of the units `gone` from `machine`."""
    ops: list[Op] = [Put(keys.endpoint(r.unit, machine), encode_record(r), lease) for r in changed]
    return ops + [Delete(keys.endpoint(unit, machine)) for unit in gone]


async def list_endpoints(registry: Registry, unit: str | None = None) -> list[EndpointRecord]:
    """Published endpoints (of one unit, or all), sorted by unit then machine; corrupt ones skipped."""
    keys = registry.keys
    listing = await registry.kv.get_prefix(keys.unit_endpoints(unit) if unit else keys.endpoints)
    found = []
    for kv in listing.items:
        try:
            found.append(decode_record(kv.value))
        except InvalidInput:
            continue
    return sorted(found, key=lambda r: (r.unit, r.machine))
