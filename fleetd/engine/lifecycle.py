"""The scheduler's view of machine lifecycle (pure): closed machines, units that must leave.

A cordoned or draining machine takes no new units (`closed`). A draining machine's ordinary
units, and a unit an operator moves (`fleetctl move`, kept off the machine it leaves and on
the one it goes to by `barred`), leave their machine (`leaving`): they are evicted softly,
placed by the normal placement step wherever their Conflicts, MachineOf and resources allow,
and those that fit nowhere stay where they are (`keep_stuck`) with the reason as their
pending reason. A unit that failed on its machine (RescheduleOnFailure) leaves it the same way
and is kept off every machine that failed its current file (`failed_here`). A move request is
withdrawn once it is done or cannot be (`moves_done`). Global units are untouched: each agent
decides them for its own machine.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from fleetd.engine.decision import Evict, Pending, Snapshot
from fleetd.model.lifecycle import DRAINING, STORED


def closed(snapshot: Snapshot, machine: str) -> str | None:
    """Why `machine` takes no new units (cordoned or draining), or None."""
    state = snapshot.machine_states.get(machine)
    return f"is {state}" if state in STORED else None


def failed_here(snapshot: Snapshot, name: str, machine: str) -> str | None:
    """Why an earlier failure there keeps the unit `name` off `machine`, or None."""
    return "failed it already (RescheduleOnFailure)" if machine in snapshot.failed.get(name, ()) else None


def barred(snapshot: Snapshot, name: str, machine: str) -> str | None:
    """Why an operator's move keeps the unit `name` off `machine`, or None."""
    move = snapshot.moves.get(name)
    if move is None:
        return None
    if machine == move.away:
        return "is the machine it moves away from (fleetctl move)"
    if move.to and machine != move.to:
        return f"is not {move.to[:8]}, where it moves to (fleetctl move)"
    return None


def leaving(snapshot: Snapshot, name: str) -> tuple[str, bool] | None:
    """Why the placed unit `name` should move although its placement is valid, and whether
    it leaves a draining machine (those go at most `snapshot.drain_slots` a pass), or None."""
    machine = snapshot.assignments[name].machine
    move = snapshot.moves.get(name)
    if move is not None and move.away == machine:
        return f"moved off machine {machine[:8]} by an operator", False
    if name in snapshot.reschedule_now:
        return f"failed on machine {machine[:8]}; placed elsewhere (RescheduleOnFailure)", False
    if snapshot.machine_states.get(machine) == DRAINING and name not in snapshot.drain_kept:
        return f"machine {machine[:8]} is draining", True
    return None


def gave_up(snapshot: Snapshot) -> list[Pending]:
    """Units that stay failed because their RescheduleAttempts are used up, with why."""
    return [Pending(unit, reason) for unit, reason in sorted(snapshot.gave_up.items())]


def moves_done(snapshot: Snapshot, placed: Collection[str], stuck: Collection[str]) -> list[str]:
    """The move requests to delete: the unit was placed this pass, could not move, is gone,
    or is no longer on the machine it was to leave."""
    done = []
    for name, move in sorted(snapshot.moves.items()):
        current = snapshot.assignments.get(name)
        if name in placed or name in stuck or current is None or current.machine != move.away:
            done.append(name)
    return done


def keep_stuck(evictions: Sequence[Evict], pending: Sequence[Pending]
               ) -> tuple[list[Evict], list[Pending], list[str]]:
    """Cancel the soft evictions of units no machine took: they stay, pending with the reason.
    Returns the evictions and pending units left, and the units that stay."""
    soft = {e.unit: e for e in evictions if e.soft}
    stuck = {p.unit for p in pending if p.unit in soft}
    kept = [e for e in evictions if e.unit not in stuck]
    reasons = [Pending(p.unit, f"{soft[p.unit].reason}; it stays: no other machine can take it "
                               f"({p.reason})")
               if p.unit in stuck else p for p in pending]
    return kept, reasons, sorted(stuck)
