"""The fakes' own history of the cluster benchmark, and what it proves (pure).

Every agent's in-memory systemd appends one line per change of a unit's ActiveState to its
process's history file, as it happens (one `write`, so a SIGKILL loses nothing written):

    <CLOCK_MONOTONIC seconds> <machine id> <unit> <active state>

`intervals` turns the lines into the spans each unit was active on each machine; a span of a
machine whose process was killed ends at the kill. `duplicates` counts the units active on two
machines at once (Global units excepted: they run everywhere), `lost` the units never active.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class Span:
    machine: str
    start: float
    end: float | None  # None: still active


def line(at: float, machine: str, unit: str, active: str) -> str:
    return f"{at:.6f} {machine} {unit} {active}\n"


def intervals(lines: Iterable[str], killed: Mapping[str, float]) -> dict[str, list[Span]]:
    """unit -> its active spans, in the order they began. `killed`: machine -> when its process
    was SIGKILLed (its units stopped with it)."""
    opened: dict[tuple[str, str], float] = {}
    spans: dict[str, list[Span]] = {}
    for text in sorted(lines, key=_time):
        at, machine, unit, active = text.split()
        key = (unit, machine)
        if active == ACTIVE and key not in opened:
            opened[key] = float(at)
        elif active != ACTIVE and key in opened:
            spans.setdefault(unit, []).append(Span(machine, opened.pop(key), float(at)))
    for (unit, machine), start in opened.items():
        spans.setdefault(unit, []).append(Span(machine, start, killed.get(machine)))
    for found in spans.values():
        found.sort(key=lambda s: s.start)
    return spans


def _time(text: str) -> float:
    return float(text.split(" ", 1)[0])


def overlaps(spans: list[Span]) -> bool:
    """Whether two spans on different machines share a moment."""
    for i, first in enumerate(spans):
        for second in spans[i + 1:]:
            ends = first.end if first.end is not None else float("inf")
            if second.start < ends and second.machine != first.machine:
                return True
    return False


def duplicates(spans: Mapping[str, list[Span]], everywhere: Collection[str] = ()) -> list[str]:
    """Units (except those in `everywhere`) that were active on two machines at once."""
    return sorted(unit for unit, found in spans.items() if unit not in everywhere and overlaps(found))


def lost(spans: Mapping[str, list[Span]], submitted: Iterable[str]) -> list[str]:
    """Submitted units never active anywhere."""
    return sorted(unit for unit in submitted if unit not in spans)
