"""The key-value port the registry is built on, and the plain data it speaks.

Two implementations: `fleetd.registry.etcd.EtcdKV` (real etcd through aetcd) and
`fleetd.registry.memory.MemoryKV` (in-process, for tier-2 tests). Keys and values are str;
adapters encode them as UTF-8. Every method may raise `fleetd.errors.RegistryUnavailable`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: str
    create_revision: int
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Compare:
    """A txn guard: `target` of `key` compared with `value` (etcd's compare semantics).

    target "create" / "mod" / "version" compare revisions (ints); "value" compares the value.
    A missing key has create = mod = version = 0.
    """

    key: str
    target: Literal["create", "mod", "version", "value"]
    op: Literal["==", "!=", "<", ">"]
    value: int | str


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: str
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


Op = Put | Delete


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change under a watched prefix. `value` is "" for deletes."""

    kind: Literal["put", "delete"]
    key: str
    value: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Listing:
    """A prefix read and the store revision it was read at (watch from revision + 1)."""

    items: tuple[KeyValue, ...]
    revision: int


class KV(Protocol):
    """What fleetd needs from etcd."""

    async def get(self, key: str) -> KeyValue | None: ...

    async def get_prefix(self, prefix: str) -> Listing: ...

    async def get_prefixes(self, prefixes: Sequence[str]) -> list[Listing]:
        """Several prefix reads at one store revision (one consistent snapshot)."""
        ...

    async def count(self, prefix: str) -> int:
        """How many keys start with `prefix` (no values are transferred)."""
        ...

    async def get_keys(self, prefix: str) -> Listing:
        """The keys under `prefix` with their revisions; values are "" (none transferred)."""
        ...

    async def put(self, key: str, value: str, lease: int = 0) -> int:
        """Store the value; return the new store revision."""
        ...

    async def delete(self, key: str) -> bool:
        """Delete one key; True if it existed."""
        ...

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult: ...

    async def grant(self, ttl: int) -> int:
        """Grant a lease of `ttl` seconds; return its id."""
        ...

    async def refresh(self, lease: int, timeout: float | None = None) -> int:
        """Keep a lease alive once; return its remaining TTL, <= 0 if it has expired.
        `timeout`: a deadline shorter than the usual request timeout."""
        ...

    async def revoke(self, lease: int) -> None: ...

    def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        """Events under `prefix` from `start_revision` on, in revision order.

        The iterator raises `Compacted` if `start_revision` is gone, and
        `RegistryUnavailable` when the stream breaks; callers resume from the last
        seen revision + 1 (see `fleetd.registry.watch`).
        """
        ...

    async def close(self) -> None: ...
