"""What to do about machines that vanished: wait, re-place, or brake (pure).

The engine remembers when it first saw each machine gone (`left`, monotonic seconds) and asks
`decide` before every pass. A vanished machine's units stay where they are:
- for `settle` seconds, so machines that die together are seen together;
- for `hold_fenced` seconds if they are AtMostOnce (their agent stops them first);
- while the mass-failure brake holds the machine: more than half of the machines vanished within
  one TTL window, which looks more like a network or etcd problem than like dead hosts, and
  moving everything at once would overload the survivors. The brake lets go when enough machines
  return, or for the machines an operator confirmed as gone (by deleting the alarm).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from fleetd.engine.decision import Snapshot, UnitSpec
from fleetd.model.liveness import Liveness
from fleetd.registry import codec

MASS_FAILURE = "mass-failure"


@dataclass(frozen=True, slots=True)
class Holds:
    """Machines whose units the next pass must leave alone, and when that changes next."""

    machines: frozenset[str] = frozenset()  # every unit stays (settling, or braked)
    fenced: frozenset[str] = frozenset()  # AtMostOnce units stay
    braked: frozenset[str] = frozenset()  # held by the mass-failure brake (subset of machines)
    due: float | None = None  # when a hold ends on its own (None: none will)


def track(left: Mapping[str, float], live: Collection[str], previous: Collection[str],
          referenced: Collection[str], now: float) -> dict[str, float]:
    """Update `left` (machine -> when it was first seen gone): machines that were live at the
    previous pass or still hold assignments, and are not live now. Returned machines drop out."""
    gone = {m: t for m, t in left.items() if m not in live}
    for machine in [*previous, *referenced]:
        if machine not in live and machine not in gone:
            gone[machine] = now
    return gone


def decide(left: Mapping[str, float], live_count: int, braked: Collection[str],
           confirmed: Collection[str], now: float, timing: Liveness, brake: bool = True) -> Holds:
    """The holds for a pass at `now`. `braked`: machines the brake held so far; `confirmed`:
    machines an operator released from it."""
    since = {m: now - t for m, t in left.items()}
    held = frozenset(_braked(since, live_count, braked, confirmed, timing.ttl) if brake else ())
    settling = {m for m, age in since.items() if age < timing.settle}
    fenced = {m for m, age in since.items() if age < timing.hold_fenced}
    ends = [left[m] + d for m in left for d in (timing.settle, timing.hold_fenced, timing.ttl)
            if left[m] + d > now]
    return Holds(machines=held | settling, fenced=frozenset(fenced) | held, braked=held,
                 due=min(ends) if ends else None)


def _braked(since: Mapping[str, float], live_count: int, braked: Collection[str],
            confirmed: Collection[str], window: float) -> set[str]:
    """Machines that vanished within `window` (or are braked already), if they are more than
    half of the machines that were there; else none."""
    recent = {m for m, age in since.items() if (age <= window or m in braked) and m not in confirmed}
    return recent if 2 * len(recent) > live_count + len(recent) else set()


def prune(left: Mapping[str, float], holds: Holds, referenced: Collection[str], now: float,
          timing: Liveness) -> dict[str, float]:
    """Forget departures that can no longer matter: older than the window, not braked, and no
    longer holding any assignment."""
    return {m: t for m, t in left.items()
            if now - t <= timing.ttl or m in holds.braked or m in referenced}


def restrict(snapshot: Snapshot, holds: Holds) -> tuple[Snapshot, dict[str, str]]:
    """The snapshot without the held units (the scheduler neither evicts nor re-places them),
    and why each unit held by the brake waits (settling and fencing waits are too short to tell)."""
    if not (holds.machines or holds.fenced):
        return snapshot, {}
    on: dict[str, list[str]] = {}
    for name, assignment in snapshot.assignments.items():
        on.setdefault(assignment.machine, []).append(name)
    held, reasons = held_units(holds, on, snapshot.units)
    units = {n: s for n, s in snapshot.units.items() if n not in held}
    assignments = {n: a for n, a in snapshot.assignments.items() if n not in held}
    return replace(snapshot, units=units, assignments=assignments), reasons


def held_units(holds: Holds, assigned: Mapping[str, Collection[str]], units: Mapping[str, UnitSpec]
               ) -> tuple[frozenset[str], dict[str, str]]:
    """The units `holds` keep where they are, found through `assigned` (machine -> units assigned
    to it), and why each unit held by the brake waits."""
    held, reasons = set(), {}
    for machine in holds.machines | holds.fenced:
        for name in assigned.get(machine, ()):
            spec = units.get(name)
            fenced = spec is not None and spec.requirements.at_most_once and machine in holds.fenced
            if machine in holds.machines or fenced:
                held.add(name)
            if machine in holds.braked:
                reasons[name] = (f"machine {machine[:8]} vanished in a mass failure; the brake holds "
                                 "its units until machines return or an operator confirms")
    return frozenset(held), reasons


def alarm_record(braked: Collection[str], live_count: int, since: str) -> str:
    """The mass-failure alarm as stored under alarms/ (stable while the brake holds the same set)."""
    machines = sorted(braked)
    message = (f"mass failure: {len(machines)} of {len(machines) + live_count} machines vanished "
               "within one TTL window; their units are not rescheduled until the machines return "
               "or an operator confirms (fleetctl confirm-reschedule)")
    return codec.encode_alarm(MASS_FAILURE, machines, since, message)
