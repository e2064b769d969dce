"""Machines in the order the policies look at them, kept sorted as a pass places units (pure).

Both orders are updated with a binary search and one list move when a machine's units change,
so finding a machine does not mean scoring every machine:

- `by_load`: (units on it, id). Spread takes the first machine that passes every check.
- shelves for binpack: machines of the same capacity, filed by their free share of cpu and of
  memory (each cut at LEVELS: none free, then finer steps near empty, where full machines
  gather, then sixteenths; an unknown capacity counts as all free), each shelf sorted
  by (room, units on it, id), where room is the two free shares summed. On machines of one
  capacity, binpack's leftover is room minus the unit's share of that capacity, so the first
  machine on a shelf that takes the unit is the shelf's best. `shelves` skips shelves whose
  free share is below the unit's need in either dimension and hands out the others lowest
  possible leftover first, so the search can stop as soon as no shelf left can do better.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable

from fleetd.model.resources import Resources

UNLIMITED = 1 << 62
LEVELS = (0.0, 1e-12, 1 / 256, 1 / 128, 1 / 64, 1 / 32, *(i / 16 for i in range(1, 16)))
TOP = len(LEVELS) - 1
Shelf = tuple[Resources, int, int]  # capacity, cpu level, memory level
RoomKey = tuple[float, int, str]  # room, load, machine


def shares(free: Resources, capacity: Resources) -> tuple[float, float]:
    """Free share of each dimension: 0 when overcommitted, 1 when the capacity is unknown."""
    cpu, memory = ((max(f, 0) / c if c < UNLIMITED else 1.0)
                   for f, c in ((free.cpu, capacity.cpu), (free.memory, capacity.memory)))
    return cpu, memory


def need(demand: Resources, capacity: Resources) -> tuple[float, float]:
    """The demand's share of each dimension of `capacity` (0 where the capacity is unknown)."""
    cpu, memory = ((d / c if c < UNLIMITED else 0.0)
                   for d, c in ((demand.cpu, capacity.cpu), (demand.memory, capacity.memory)))
    return cpu, memory


def _level(share: float) -> int:
    """Index of the last cut at or below `share`: level i holds shares in [LEVELS[i], LEVELS[i+1])."""
    return bisect_right(LEVELS, share) - 1


class MachineOrder:
    """The orders over a set of machines; `update` re-files one machine, `add` and `remove`
    change the set."""

    def __init__(self, machines: Iterable[str], capacity: Callable[[str], Resources],
                 load: Callable[[str], int], free: Callable[[str], Resources]) -> None:
        self._capacity, self._load, self._free = capacity, load, free
        self._filed = {m: self._keys(m) for m in sorted(machines)}
        self.by_load = sorted(k for k, _, _ in self._filed.values())
        self._shelves: dict[Shelf, list[RoomKey]] = {}
        for _, shelf, key in self._filed.values():
            self._shelves.setdefault(shelf, []).append(key)
        for keys in self._shelves.values():
            keys.sort()

    def _keys(self, machine: str) -> tuple[tuple[int, str], Shelf, RoomKey]:
        load, capacity = self._load(machine), self._capacity(machine)
        cpu, memory = shares(self._free(machine), capacity)
        return (load, machine), (capacity, _level(cpu), _level(memory)), (cpu + memory, load, machine)

    def update(self, machine: str, same_room: bool = False) -> None:
        """The machine's units or free capacity changed: move it to its new places.
        `same_room`: only the number of units changed, not the free capacity."""
        old_load, old_shelf, old_room = self._filed[machine]
        if same_room:
            load = self._load(machine)
            new_load, new_shelf, new_room = (load, machine), old_shelf, (old_room[0], load, machine)
            self._filed[machine] = new_load, new_shelf, new_room
        else:
            new_load, new_shelf, new_room = self._filed[machine] = self._keys(machine)
        if new_load != old_load:
            del self.by_load[bisect_left(self.by_load, old_load)]
            insort(self.by_load, new_load)
        if (new_shelf, new_room) != (old_shelf, old_room):
            self._take_off(old_shelf, old_room)
            insort(self._shelves.setdefault(new_shelf, []), new_room)

    def add(self, machine: str) -> None:
        """A machine joined: file it in both orders."""
        load, shelf, room = self._filed[machine] = self._keys(machine)
        insort(self.by_load, load)
        insort(self._shelves.setdefault(shelf, []), room)

    def remove(self, machine: str) -> None:
        """A machine left: take it out of both orders."""
        load, shelf, room = self._filed.pop(machine)
        del self.by_load[bisect_left(self.by_load, load)]
        self._take_off(shelf, room)

    def _take_off(self, shelf: Shelf, room: RoomKey) -> None:
        keys = self._shelves[shelf]
        del keys[bisect_left(keys, room)]
        if not keys:
            del self._shelves[shelf]

    def shelves(self, demand: Resources) -> list[tuple[float, float, list[RoomKey]]]:
        """(lowest leftover possible, the unit's share there, machines by room) for every shelf
        whose free shares could fit `demand`, lowest possible leftover first."""
        found = []
        for shelf, keys in self._shelves.items():
            capacity, cpu_level, memory_level = shelf
            cpu, memory = need(demand, capacity)
            if _short(cpu_level, cpu) or _short(memory_level, memory):
                continue
            share = cpu + memory
            found.append((LEVELS[cpu_level] + LEVELS[memory_level] - share, share, keys))
        found.sort(key=lambda item: item[0])
        return found


def _short(level: int, share: float) -> bool:
    """No machine at this level has `share` free (the top level holds unknown capacities too)."""
    return level < TOP and LEVELS[level + 1] <= share
