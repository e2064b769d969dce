"""Dynamic machine metadata in the registry: reading one machine's map, patching many at once.

Owns the `<prefix>metadata/<machine>` records (a JSON object of str -> str, no lease, so they
outlive the machine's presence and fleetd restarts). A PATCH is read-modify-write of every
touched record in one txn guarded by their mod revisions, retried when another writer got in
between: all of a request's ops apply, or none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from fleetd.errors import RegistryUnavailable
from fleetd.model.metapatch import MetadataOp, apply_ops, machines_of
from fleetd.registry.kv import Compare, Delete, KeyValue, Op, Put
from fleetd.registry.store import Registry

ATTEMPTS = 20


def decode(text: str) -> dict[str, str]:
    """A stored map; anything malformed reads as empty (a record no fleetd of ours wrote)."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)}


def read_record(found: KeyValue | None) -> dict[str, str]:
    return decode(found.value) if found is not None else {}


async def read(registry: Registry, machine: str) -> dict[str, str]:
    """The dynamic metadata of `machine` ({} if none was ever set)."""
    return read_record(await registry.kv.get(registry.keys.machine_metadata(machine)))


async def patch(registry: Registry, ops: Sequence[MetadataOp]) -> None:
    """Apply `ops` in order, atomically (one txn over every touched machine's record)."""
    if not ops:
        return
    keys = {m: registry.keys.machine_metadata(m) for m in machines_of(ops)}
    for _ in range(ATTEMPTS):
        found = {m: await registry.kv.get(key) for m, key in keys.items()}
        after = apply_ops({m: read_record(kv) for m, kv in found.items()}, ops)
        compares = [Compare(keys[m], "mod", "==", kv.mod_revision if kv else 0)
                    for m, kv in found.items()]
        writes: list[Op] = [Put(keys[m], json.dumps(after[m], sort_keys=True)) if after[m]
                            else Delete(keys[m]) for m in keys]
        if (await registry.kv.txn(compares, writes)).succeeded:
            return
    raise RegistryUnavailable("metadata kept changing under the patch; try again")
