"""Where unassigned units go (pure): candidate checks, the policy's choice, and pending reasons.

Units are placed largest first (cpu share plus memory share of the biggest machine), then by
name, so a batch is packed best-fit-decreasing; a MachineOf follower waits until its peers are
decided. For each machine the checks run in fleet's order (MachineID, metadata, peers,
conflicts), after MachineID and metadata whether an operator closed it (cordoned, draining),
then capacity. Among the machines that pass, the choice is: fewest units moved aside
(Replaces), then fewest instances of the same template on the unit's SpreadBy value, then the
policy: binpack (best fit: least capacity left over) or spread (fleet's least-loaded by unit
count); ties by machine id. A unit that needs no resources is placed by spread under either
policy.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from fleetd.engine.board import UNLIMITED, Board, fits
from fleetd.engine.decision import BINPACK, Evict, Pending, Place, Snapshot, UnitSpec
from fleetd.engine.evictions import machine_refusal
from fleetd.engine.lifecycle import barred, closed, failed_here
from fleetd.engine.reasons import Refusal, known, summarize
from fleetd.model.names import parse_name
from fleetd.model.requirements import replaces
from fleetd.model.resources import Resources, describe
from fleetd.model.unit import Assignment

TOLERANCE = 1e-9  # leftovers are sums of float shares: never rule out a machine on rounding


@dataclass(frozen=True, slots=True)
class Candidate:
    """A machine that can take the unit, with what it would cost."""

    machine: str
    displaced: tuple[str, ...]
    score: tuple[float, ...]
    free: Resources
    zone: str


@dataclass
class Outcome:
    """What placing the queue produced."""

    placements: list[Place]
    evictions: list[Evict]
    pending: list[Pending]


def place_all(snapshot: Snapshot, board: Board, names: Iterable[str] | None = None) -> Outcome:
    """Place every unassigned active unit; units moved aside by Replaces are re-placed too.
    `names`: the units that may be unassigned (default: every unit in the snapshot).

    Moving units aside can make room (or a peer's machine) for units found unplaceable earlier in
    the pass, so those are tried again; a unit is moved aside at most once per pass. Placements
    can also keep global units off machines (their resources and conflicts go with them), so
    with global units about, pending units are tried again while the last round placed anything.
    """
    out = Outcome([], [], [])
    templates: list[Pending] = []
    queue = _Queue(snapshot, _to_place(snapshot, board, templates, names))
    while True:
        placed = len(out.placements)
        while (name := queue.pop()) is not None:
            moved = _place_one(snapshot, board, name, out)
            if moved:
                queue.add([*moved, *(p.unit for p in out.pending)])
                out.pending.clear()
        if not (board.active_globals and out.pending and len(out.placements) > placed):
            break
        queue.add([p.unit for p in out.pending])  # placements may have kept global units off
        out.pending.clear()
    _pend_cycles(snapshot, queue.stuck(), out.pending)
    out.pending = sorted(out.pending + templates, key=lambda p: p.unit)
    return out


class _Queue:
    """Units waiting to be placed, in placement order; a unit whose MachineOf peer still waits is
    held back until that peer leaves the queue."""

    def __init__(self, snapshot: Snapshot, names: list[str]) -> None:
        self.snapshot = snapshot
        self.order = _OrderKeys(snapshot)
        self.heap = [self.order[n] for n in names]
        heapq.heapify(self.heap)
        self.waiting = set(names)
        self.held: list[str] = []

    def add(self, names: list[str]) -> None:
        for name in names:
            if name not in self.waiting:
                self.waiting.add(name)
                heapq.heappush(self.heap, self.order[name])

    def pop(self) -> str | None:
        """The first waiting unit none of whose peers waits; None when there is none."""
        while self.heap:
            name = heapq.heappop(self.heap)[1]
            if any(p in self.waiting for p in self.snapshot.units[name].requirements.machine_of):
                self.held.append(name)
                continue
            self.waiting.discard(name)
            for held in self.held:  # they may be ready now that `name` has left the queue
                heapq.heappush(self.heap, self.order[held])
            self.held.clear()
            return name
        return None

    def stuck(self) -> list[str]:
        """Units held back by peers that are held back too (MachineOf cycles), in order."""
        return sorted(self.held, key=self.order.__getitem__)


def _to_place(snapshot: Snapshot, board: Board, pending: list[Pending],
              among: Iterable[str] | None) -> list[str]:
    """Unassigned, active, non-global units; templates go straight to pending."""
    names = []
    units = snapshot.units
    for name, spec in units.items() if among is None else ((n, units.get(n)) for n in among):
        if spec is None or name in board.where or not spec.active or spec.requirements.is_global:
            continue
        if "@" in name and parse_name(name).is_template:
            pending.append(Pending(name, "a template cannot be scheduled; start its instances"))
        else:
            names.append(name)
    return names


class _OrderKeys(dict[str, tuple[float, str]]):
    """Sort key per unit, made when first asked for: largest first (summed share of the biggest
    machine's capacity), then by name."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.biggest: tuple[int, int] | None = None  # found for the first unit (a pass may have none)

    def __missing__(self, name: str) -> tuple[float, str]:
        if self.biggest is None:
            machines = self.snapshot.machines.values()
            self.biggest = (max((m.capacity.cpu for m in machines), default=0),
                            max((m.capacity.memory for m in machines), default=0))
        demand = self.snapshot.units[name].requirements.resources
        shares = [d / c for d, c in zip((demand.cpu, demand.memory), self.biggest, strict=True) if c]
        self[name] = key = (-sum(shares), name)
        return key


def _pend_cycles(snapshot: Snapshot, queue: list[str], pending: list[Pending]) -> None:
    for name in queue:
        peer = next(p for p in snapshot.units[name].requirements.machine_of if p in queue)
        pending.append(Pending(name, f"waiting for peer {peer} (MachineOf cycle)"))


def _place_one(snapshot: Snapshot, board: Board, name: str, out: Outcome) -> list[str]:
    """Decide one unit; return the units it moved aside (to be placed again)."""
    spec = snapshot.units[name]
    candidates, refusals = _evaluate(snapshot, board, spec)
    if not candidates:
        reason = summarize(spec.requirements, refusals, bool(snapshot.machines))
        peers = spec.requirements.machine_of
        if peers and refusals and refusals[0].kind != "peer":
            reason += f" (machine {board.where[peers[0]][:8]} of peer {', '.join(peers)})"
        out.pending.append(Pending(name, reason))
        return []
    best = min(candidates, key=_rank)
    why = _why(snapshot, board, spec, best)
    for loser in best.displaced:
        placed_now = [p for p in out.placements if p.assignment.unit == loser]
        if placed_now:
            out.placements.remove(placed_now[0])
        else:
            out.evictions.append(Evict(loser, best.machine, _moved_reason(snapshot, name, loser)))
        board.remove(loser)
        board.moved.add(loser)
    board.put(name, best.machine)
    out.placements.append(Place(_assignment(spec, best.machine), why))
    return list(best.displaced)


def _moved_reason(snapshot: Snapshot, name: str, loser: str) -> str:
    units = snapshot.units
    if replaces(name, units[name].requirements, loser, units[loser].requirements):
        return f"replaced by {name} (Replaces)"
    return f"follows a unit replaced by {name} (MachineOf, Replaces)"


def _assignment(spec: UnitSpec, machine: str) -> Assignment:
    unit = spec.unit
    return Assignment(unit=unit.name, machine=machine, hash=unit.hash, desired=unit.desired)


def _evaluate(snapshot: Snapshot, board: Board, spec: UnitSpec) -> tuple[list[Candidate], list[Refusal]]:
    req = spec.requirements
    peers = req.machine_of
    if peers:
        machines = sorted({board.where.get(p, "") for p in peers})
        if "" in machines:
            missing = next(p for p in peers if p not in board.where)
            return [], [Refusal("peer", f"waiting for peer {missing}")]
        if len(machines) > 1:
            return [], [Refusal("peer", f"peers {', '.join(peers)} are on different machines")]
    else:
        best = _quick(snapshot, board, spec)
        if best is not None:
            return [best], []
        machines = sorted(snapshot.machines)  # nothing fits: every machine's refusal, for the reason
    candidates, refusals = [], []
    spread = _spread_counts(snapshot, board, spec)
    for machine in machines:
        found = _check(snapshot, board, spec, machine, spread)
        if isinstance(found, Candidate):
            candidates.append(found)
        else:
            refusals.append(found)
    return candidates, refusals


def _quick(snapshot: Snapshot, board: Board, spec: UnitSpec) -> Candidate | None:
    """The best machine without scoring every machine, when the score allows it (no Replaces, no
    SpreadBy: only the policy decides); None when it does not, or when no machine can take it.

    A unit allowed on few machines (MachineID, narrow metadata) checks just those; otherwise the
    policy order is walked, skipping machines the unit's metadata rules out.
    """
    req = spec.requirements
    if req.replaces or req.spread_by:
        return None
    allowed = board.eligible(req)
    if allowed is not None and len(allowed) * 8 < len(snapshot.machines):
        checked = [_check(snapshot, board, spec, m, None) for m in sorted(allowed)]
        return min((c for c in checked if isinstance(c, Candidate)), key=_rank, default=None)
    if _packs(snapshot, spec):
        return _best_fit(snapshot, board, spec, allowed)
    for _, machine in board.order().by_load:
        if allowed is None or machine in allowed:
            result = _check(snapshot, board, spec, machine, None, screened=True)
            if isinstance(result, Candidate):
                return result
    return None


def _best_fit(snapshot: Snapshot, board: Board, spec: UnitSpec, allowed: frozenset[str] | None
              ) -> Candidate | None:
    """Binpack through the shelves of `fleetd.engine.order`: a shelf's first machine that takes
    the unit is the shelf's best; stop once no shelf left can leave less over."""
    demand = spec.requirements.resources
    best: Candidate | None = None
    for lowest, share, machines in board.order().shelves(demand):
        if best is not None and lowest > best.score[2] + TOLERANCE:
            break
        for room, _, machine in machines:
            if best is not None and room - share > best.score[2] + TOLERANCE:
                break
            if (allowed is not None and machine not in allowed) or not fits(demand, board.free(machine)):
                continue
            found = _check(snapshot, board, spec, machine, None, screened=True)
            if isinstance(found, Candidate):
                if best is None or _rank(found) < _rank(best):
                    best = found
                break
    return best


def _rank(candidate: Candidate) -> tuple[tuple[float, ...], str]:
    """Lower is better: the score, then the machine id."""
    return candidate.score, candidate.machine


def _check(
    snapshot: Snapshot, board: Board, spec: UnitSpec, machine: str, spread: dict[str, int] | None,
    screened: bool = False,
) -> Candidate | Refusal:
    """Can `machine` take the unit, and at what cost? `screened`: MachineID and metadata are
    known to allow it already."""
    name, req = spec.unit.name, spec.requirements
    refusal = None if screened else machine_refusal(req, snapshot.machines[machine])
    if refusal:
        kind = "machine_id" if "MachineID" in refusal else "metadata"
        return Refusal(kind, f"machine {machine[:8]} {refusal}")
    shut = closed(snapshot, machine)
    if shut:
        return Refusal("closed", f"machine {machine[:8]} {shut}", machine=machine)
    kept_off = barred(snapshot, name, machine)
    if kept_off:
        return Refusal("move", f"machine {machine[:8]} {kept_off}", machine=machine)
    failed = failed_here(snapshot, name, machine)
    if failed:
        return Refusal("failed", f"machine {machine[:8]} {failed}", machine=machine)
    replaced = board.displaced(name, req, machine)
    displaced = replaced + board.followers(replaced, machine)
    rivals = board.conflicting(name, req, machine, displacing=displaced)
    rivals += [u for u in displaced if u in board.moved]
    if rivals:
        return Refusal("conflicts", ", ".join(sorted(rivals)), machine=machine)
    replacers = board.replacers(name, req, machine)
    if replacers:
        return Refusal("replaced", ", ".join(sorted(replacers)), machine=machine)
    peers = [u for u in displaced if u in req.machine_of]
    if peers:
        return Refusal("peer", f"would move its peer {', '.join(peers)} aside (Replaces)", machine=machine)
    free = board.free(machine, displacing=displaced)
    if not fits(req.resources, free):
        return Refusal("resources", "", machine=machine, free=free)
    return _candidate(snapshot, board, spec, machine, tuple(displaced), free, spread)


def _candidate(
    snapshot: Snapshot,
    board: Board,
    spec: UnitSpec,
    machine: str,
    displaced: tuple[str, ...],
    free: Resources,
    spread: dict[str, int] | None,
) -> Candidate:
    req = spec.requirements
    zone = _spread_value(snapshot, machine, req.spread_by)
    spread_score = float(spread.get(zone, 0)) if spread is not None else 0.0
    if _packs(snapshot, spec):
        left = free - req.resources
        score = (len(displaced), spread_score, _leftover(board, machine, left), float(board.load(machine)))
    else:
        score = (len(displaced), spread_score, float(board.load(machine)), 0.0)
    return Candidate(machine, displaced, score, free, zone)


def _packs(snapshot: Snapshot, spec: UnitSpec) -> bool:
    """Binpack applies: the unit's (or the cluster's) policy, and the unit needs resources."""
    req = spec.requirements
    return (req.policy or snapshot.policy) == BINPACK and not req.resources.is_zero


def _why(snapshot: Snapshot, board: Board, spec: UnitSpec, chosen: Candidate) -> str:
    """The placement reason, in words (built only for the chosen machine)."""
    req, machine = spec.requirements, chosen.machine
    if req.machine_of:
        why = f"follows peer {', '.join(req.machine_of)} (MachineOf)"
    elif _packs(snapshot, spec):
        left = chosen.free - req.resources
        room = Resources(max(left.cpu, 0), max(left.memory, 0))  # an overcommitted dimension has none
        why = f"best fit: leaves {describe(known(room, board.capacity(machine)))} free"
    else:
        why = f"least-loaded eligible machine ({board.load(machine)} units)"
    if req.spread_by:
        why += f"; {req.spread_by}={chosen.zone or '(none)'} has {int(chosen.score[1])} of its instances"
    if chosen.displaced:
        why += f"; moves {', '.join(chosen.displaced)} aside (Replaces)"
    return why


def _leftover(board: Board, machine: str, left: Resources) -> float:
    """Fraction of the machine left unused after the placement, summed over both dimensions. An
    unknown (unlimited) dimension counts as all left over: a machine that knows its capacity and
    has the room is a better fit than one that does not know it."""
    cap = board.capacity(machine)
    return sum(max(free, 0) / total if total < UNLIMITED else 1.0
               for free, total in ((left.cpu, cap.cpu), (left.memory, cap.memory)))


def _group(name: str) -> str:
    info = parse_name(name)
    return info.template if info.is_instance else name


def _spread_value(snapshot: Snapshot, machine: str, key: str | None) -> str:
    return snapshot.machines[machine].metadata.get(key, "") if key else ""


def _spread_counts(snapshot: Snapshot, board: Board, spec: UnitSpec) -> dict[str, int] | None:
    """Instances of the unit's template per value of its SpreadBy key; None without SpreadBy."""
    key = spec.requirements.spread_by
    if not key:
        return None
    group = _group(spec.unit.name)
    counts: dict[str, int] = {}
    for unit, machine in board.where.items():
        if _group(unit) == group:
            value = _spread_value(snapshot, machine, key)
            counts[value] = counts.get(value, 0) + 1
    return counts
