"""A machine's place in its lifecycle: ready, cordoned, draining or drained (pure).

An operator cordons a machine (no new units go there) or drains it (no new units, and its
units move to other machines). The stored state is `cordoned` or `draining` (no record:
`ready`); `drained` is derived: a draining machine on which nothing movable is left (every
unit still placed there is stuck, with a reason, and the host runs nothing it should not).
The stored record has no lease, so it outlives the machine's presence: a drained host that
reboots comes back still drained until someone uncordons it.

Also owns how an operator's MACHINE argument is resolved: a full id, a unique id prefix, or
`self` (the machine whose fleetd answers).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from fleetd.errors import InvalidInput, NotFound

READY, CORDONED, DRAINING, DRAINED = "ready", "cordoned", "draining", "drained"
STORED = (CORDONED, DRAINING)
REQUESTABLE = (READY, CORDONED, DRAINING)
SELF = "self"


@dataclass(frozen=True, slots=True)
class MachineState:
    """What an operator set for one machine, and since when (ISO 8601, UTC)."""

    state: str
    since: str = ""

    @property
    def closed(self) -> bool:
        """No new units may go there."""
        return self.state in STORED


@dataclass(frozen=True, slots=True)
class Move:
    """An operator's request to move `unit` off machine `away` (onto `to`, or wherever the
    scheduler puts it when `to` is "")."""

    unit: str
    away: str
    to: str = ""


@dataclass(frozen=True, slots=True)
class LockHolder:
    """A machine holding slot `slot` of the maintenance lock since `since`, on `lease`."""

    machine: str
    slot: int
    since: str = ""
    lease: int = 0


MAX_PARALLEL = 64


def check_parallel(value: object) -> int:
    """--max-parallel: how many machines may be in maintenance at once (1..MAX_PARALLEL)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_PARALLEL:
        raise InvalidInput(f"maxParallel must be a whole number from 1 to {MAX_PARALLEL}, not {value!r}")
    return value


def busy_message(holders: Iterable[LockHolder], limit: int) -> str:
    """Why the lock cannot be had now, naming its holders."""
    shown = ", ".join(f"{h.machine[:8]} (since {h.since or '?'})" for h in holders)
    return f"maintenance lock busy: {limit} of {limit} held by {shown} (max-parallel {limit})"


def parse_requested(text: object) -> str:
    """The state a request asks for; InvalidInput naming the choices otherwise."""
    if not isinstance(text, str) or text not in REQUESTABLE:
        raise InvalidInput(f"state must be one of {', '.join(REQUESTABLE)}, not {text!r}")
    return text


def transition(current: str, wanted: str, machine: str) -> str | None:
    """The state to store for a request (None: delete the record). InvalidInput for a change
    that would surprise: cordoning a draining machine would silently stop its drain."""
    if wanted == CORDONED and current == DRAINING:
        raise InvalidInput(f"machine {machine[:8]} is draining; uncordon it first to stop the drain")
    return None if wanted == READY else wanted


def derive(stored: str, placed: Collection[str], stuck: Collection[str],
           reported: Iterable[str]) -> str:
    """The state shown for a machine: `drained` once a draining machine holds nothing movable.

    `placed`: the ordinary units assigned there; `stuck`: those of them that cannot go anywhere
    (they have a reason); `reported`: the ordinary units its host still reports a state for.
    """
    if stored != DRAINING:
        return stored or READY
    movable = set(placed) - set(stuck)
    leftover = set(reported) - set(stuck)
    return DRAINED if not movable and not leftover else DRAINING


def resolve(query: str, known: Iterable[str], self_id: str | None) -> str:
    """The machine id an operator means: `self`, a full id, or a unique prefix of one."""
    if query == SELF:
        if not self_id:
            raise InvalidInput("--self: this fleetd does not know its own machine id")
        return self_id
    if not query or not all(c in "0123456789abcdef" for c in query):
        raise InvalidInput(f"{query!r} is not a machine id (hex digits, or a unique prefix of one)")
    ids = sorted(set(known))
    if query in ids:
        return query
    matches = [m for m in ids if m.startswith(query)]
    if not matches:
        raise NotFound(f"no machine matches {query!r}")
    if len(matches) > 1:
        raise InvalidInput(f"machine id prefix {query!r} is ambiguous: "
                           f"{', '.join(m[:12] for m in matches)}")
    return matches[0]
