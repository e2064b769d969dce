"""One registry read per listing, not per page: the API's short-lived listing snapshots.

fleet's page tokens say only {limit, page}, so a server that reads the registry for each page
reads every record once per page, and listing N records costs N * N / limit decodes (100,000
states at 100 a page: 10^8). `Snapshots` keeps the records of the latest first page of each
listing (keyed by what was listed and how it was filtered) for `FRESH_SECONDS`; the pages after
it are cut from that snapshot, so a listing reads the registry once and every page comes from
one consistent read. A first page always reads afresh; a later page whose snapshot was dropped
or is too old reads afresh too, as before. At most `HELD` snapshots are kept (the oldest goes).
One instance per API application; no state outside it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
FRESH_SECONDS = 30.0
HELD = 16


class Snapshots:
    """The latest listings, by key, each with when it was read."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, fresh: float = FRESH_SECONDS,
                 held: int = HELD) -> None:
        self._clock, self._fresh, self._held = clock, fresh, held
        self._kept: dict[Hashable, tuple[float, Any]] = {}

    async def get(self, key: Hashable, first_page: bool, read: Callable[[], Awaitable[T]]) -> T:
        """The snapshot for `key`: `read()` afresh for a first page or when none is fresh."""
        now = self._clock()
        kept = self._kept.get(key)
        if not first_page and kept is not None and now - kept[0] < self._fresh:
            return kept[1]  # type: ignore[no-any-return]
        value = await read()
        self._kept.pop(key, None)
        self._kept[key] = (self._clock(), value)
        while len(self._kept) > self._held:
            del self._kept[next(iter(self._kept))]
        return value


class NoSnapshots(Snapshots):
    """Every page reads afresh (a handler called without an application's snapshots)."""

    async def get(self, key: Hashable, first_page: bool, read: Callable[[], Awaitable[T]]) -> T:
        return await read()
