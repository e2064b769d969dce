"""POST /fleet/v1/units/<name>/move: re-place one unit, checked before anything is written.

Owns the move's rules: the unit must exist, be placed, and not be global; the target (an id,
a unique prefix, or `self`), if given, must be a live machine other than the current one.
The registry is read once into the leader's model (`fleetd.engine.view.LeaderView`) and the
pure scheduler decides the move as the leader will: if it would not place the unit on the
target (or, without one, anywhere but its current machine) the answer is 409 with the
scheduler's reason and nothing is written. Otherwise the request goes to `moves/<unit>` and
the leader carries it out (evict, place, delete the request), and the answer says where the
unit is going. GET /fleet/v1/rebalance plans moves the same way (`fleetd.engine.rebalance`);
fleetctl makes them with this endpoint, batch by batch.
"""

from __future__ import annotations

from dataclasses import replace

from fleetd.api import lifecycle as lifecycle_api
from fleetd.api import schema
from fleetd.engine import rebalance
from fleetd.engine.decision import BINPACK, Snapshot
from fleetd.engine.scheduler import schedule
from fleetd.engine.view import SECTIONS, LeaderView
from fleetd.errors import Conflict, InvalidInput, NotFound
from fleetd.model.lifecycle import Move
from fleetd.registry import codec
from fleetd.registry.store import Registry

Result = tuple[int, schema.Wire | None]


async def snapshot_now(reg: Registry, policy: str = BINPACK) -> Snapshot:
    """What the leader would schedule from: the registry read once, unit files fetched."""
    model = LeaderView(reg.keys)
    listings = await reg.kv.get_prefixes([model.prefix(s) for s in SECTIONS])
    for section, listing in zip(SECTIONS, listings, strict=True):
        model.load(section, listing.items, listing.revision)
    for digest in sorted(model.missing_files()):
        model.add_file(digest, await reg.get_file(digest))
    return model.snapshot(policy)


def decide(snapshot: Snapshot, move: Move) -> str:
    """Where the scheduler puts the unit for `move` (pure); Conflict with its reason if nowhere."""
    plan = schedule(replace(snapshot, moves={**snapshot.moves, move.unit: move}))
    placed = {p.assignment.unit: p.assignment.machine for p in plan.placements}
    if move.unit in placed:
        return placed[move.unit]
    reason = next((p.reason for p in plan.pending if p.unit == move.unit), "")
    where = f"machine {move.to[:8]}" if move.to else "any other machine"
    raise Conflict(f"unit {move.unit} cannot move to {where}: {reason or 'the scheduler keeps it'}; "
                   "nothing changed")


async def move_unit(reg: Registry, name: str, body: schema.MoveRequest, self_id: str | None,
                    policy: str = BINPACK) -> Result:
    snapshot = await snapshot_now(reg, policy)
    current = _movable(snapshot, name)
    target = ""
    if body.machine_id:
        target = await lifecycle_api.resolve(reg, body.machine_id, self_id)
        if target not in snapshot.machines:
            raise InvalidInput(f"machine {target[:8]} is not in the cluster now")
        if target == current:
            raise InvalidInput(f"unit {name} runs on machine {target[:8]} already")
    move = Move(unit=name, away=current, to=target)
    going = decide(snapshot, move)
    await reg.kv.put(reg.keys.move(name), codec.encode_move(move))
    return 202, schema.MoveResult(name=name, away=current, to=going)


MAX_PLAN = 1000


def parse_max_moves(text: str | None) -> int:
    """`?maxMoves=` (1..MAX_PLAN, default 20)."""
    if text is None or text == "":
        return 20
    if not text.isdigit() or not 1 <= int(text) <= MAX_PLAN:
        raise InvalidInput(f"maxMoves must be a whole number from 1 to {MAX_PLAN}")
    return int(text)


async def rebalance_plan(reg: Registry, max_moves: int, policy: str = BINPACK) -> Result:
    """The moves that would restore the placement goal now (nothing is written)."""
    steps = rebalance.plan(await snapshot_now(reg, policy), max_moves)
    return 200, schema.RebalancePlan(moves=[schema.RebalanceMove(unit=s.unit, away=s.away, to=s.to,
                                                                 why=s.why) for s in steps])


def _movable(snapshot: Snapshot, name: str) -> str:
    """The machine the unit runs on; NotFound, InvalidInput or Conflict when it cannot move."""
    spec = snapshot.units.get(name)
    if spec is None:
        raise NotFound("unit does not exist")
    if spec.requirements.is_global:
        raise InvalidInput(f"unit {name} is global: it runs on every machine it matches and "
                           "cannot be moved")
    placed = snapshot.assignments.get(name)
    if placed is None:
        raise Conflict(f"unit {name} is not placed on any machine (desired state "
                       f"{spec.unit.desired.value}); nothing to move")
    return placed.machine
