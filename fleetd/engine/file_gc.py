"""Unit-file cleanup on the leader: files/<sha256> that no unit references are deleted.

Every version of every unit file used to stay in etcd forever. The leader lists the keys of
files/ (no values) every `period` seconds; a file no unit in its model references becomes
collectable once it has been unreferenced, at the same mod revision, for `grace` seconds (`due`,
pure). Each deletion is guarded by that mod revision and by the leader's fencing token: every
write that makes a unit reference a file puts the file again, which changes its mod revision,
so a file that gained a reference meanwhile is never deleted (`Registry`'s txn refuses it).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from fleetd.registry.files import delete_files
from fleetd.registry.store import Registry

Seen = tuple[str, int]  # (file hash, mod revision)


def due(files: Mapping[str, int], referenced: Collection[str], since: Mapping[Seen, float],
        now: float, grace: float) -> tuple[dict[Seen, float], list[Seen]]:
    """When each unreferenced file (at its mod revision) was first seen so, and those whose
    `grace` has passed. `files`: hash -> mod revision."""
    unreferenced = {(digest, rev) for digest, rev in files.items() if digest not in referenced}
    kept = {seen: since.get(seen, now) for seen in unreferenced}
    return kept, sorted(seen for seen, first in kept.items() if now - first >= grace)


def period(grace: float) -> float:
    """How often the leader looks: often enough to delete soon after the grace, at most 30 s."""
    return max(0.05, min(grace / 2, 30.0))


class FileCollector:
    """The leader's file cleanup: what it has seen unreferenced, and the deletions."""

    def __init__(self, registry: Registry, grace: float, clock: Callable[[], float],
                 on_deleted: Callable[[int], None]) -> None:
        self.registry = registry
        self.grace = grace
        self.clock = clock
        self.on_deleted = on_deleted
        self.since: dict[Seen, float] = {}

    async def collect(self, referenced: Collection[str], token: int) -> int:
        """One look at files/; delete what is due; return how many files went."""
        keys = self.registry.keys
        listing = await self.registry.kv.get_keys(keys.files)
        files = {keys.last_segment(kv.key): kv.mod_revision for kv in listing.items}
        self.since, doomed = due(files, set(referenced), self.since, self.clock(), self.grace)
        deleted = await delete_files(self.registry, token, doomed) if doomed else []
        for seen in deleted:
            self.since.pop(seen, None)
        if deleted:
            self.on_deleted(len(deleted))
        return len(deleted)
