"""Deleting unit files from files/ (the leader's cleanup, `fleetd.engine.file_gc`).

A file goes only if its mod revision is still the one the leader saw unreferenced, and only
while the leader key is still the caller's (fencing token). Up to BATCH files go in one txn;
a txn whose guard fails (one file was written again, or leadership changed) is retried file by
file, so one re-referenced file keeps only itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetd.registry.kv import Compare, Delete
from fleetd.registry.store import Registry

BATCH = 60  # two compares per file and the fence: well within etcd's limit of 128 ops


async def delete_files(registry: Registry, token: int,
                       files: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """Delete `files` ((hash, mod revision) each) under their guards; return those deleted."""
    deleted: list[tuple[str, int]] = []
    for start in range(0, len(files), BATCH):
        batch = list(files[start:start + BATCH])
        if await _delete(registry, token, batch):
            deleted += batch
        elif len(batch) > 1:
            deleted += [f for f in batch if await _delete(registry, token, [f])]
    return deleted


async def _delete(registry: Registry, token: int, files: list[tuple[str, int]]) -> bool:
    keys = registry.keys
    guards = [Compare(keys.leader, "create", "==", token)]
    guards += [Compare(keys.file(digest), "mod", "==", rev) for digest, rev in files]
    result = await registry.kv.txn(guards, [Delete(keys.file(digest)) for digest, _ in files])
    return result.succeeded
