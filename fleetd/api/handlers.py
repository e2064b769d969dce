"""API v1 semantics over the typed Registry, with no HTTP library in sight.

Owns what each endpoint means: fleet's derived current state, PUT's create / replace /
desired-state rules and their messages, filters, ordering and page tokens, and which status
each `fleetd.errors` error means. Each handler returns `(status, body-model or None)` or raises
a `fleetd.errors` error that the server maps to a status (POST /units lives in `batch`).
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from fleetd.api import schema
from fleetd.api.filters import UnitFilter
from fleetd.api.lifecycle import machines_with_states
from fleetd.api.snapshots import NoSnapshots, Snapshots
from fleetd.errors import Conflict, FleetError, InvalidInput, InvalidState, NotFound, RegistryUnavailable
from fleetd.model import machine as machine_model
from fleetd.model import states
from fleetd.model.names import parse_name, validate_name
from fleetd.model.requirements import parse_requirements, validate_requirements
from fleetd.model.unit import Assignment, Unit
from fleetd.model.unitfile import UnitFile, UnitOption
from fleetd.registry.records import StateRecord, UnitRecords
from fleetd.registry.store import Registry

DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_SIZE = 10000  # fleetd's ?pageSize= (fleet's clients never send it)
NO_SNAPSHOTS: Snapshots = NoSnapshots()
_INACTIVE = states.TargetState.INACTIVE
T = TypeVar("T")
Result = tuple[int, schema.Wire | None]

_STATUS: tuple[tuple[type[FleetError], int], ...] = (
    (InvalidInput, 400),
    (NotFound, 404),
    (Conflict, 409),
    (RegistryUnavailable, 503),
)


def status_for(exc: FleetError) -> int:
    """The HTTP status of a fleetd error; 500 for any other."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


# pages ------------------------------------------------------------------------------------------


def encode_token(limit: int, page: int) -> str:
    """fleet's page token: URL-safe base64 of two little-endian uint16 {limit, page}."""
    return base64.urlsafe_b64encode(struct.pack("<HH", limit, page)).decode("ascii")


def decode_token(token: str, limit: int) -> int:
    """The 1-based page a token asks for; InvalidInput if it is malformed or for another limit."""
    try:
        got_limit, page = struct.unpack("<HH", base64.urlsafe_b64decode(token.encode("ascii")))
    except (binascii.Error, struct.error, UnicodeEncodeError, ValueError) as exc:
        raise InvalidInput("invalid page token") from exc
    if got_limit != limit:
        raise InvalidInput(f"token limit must be {limit}")
    if page < 1:
        raise InvalidInput("invalid page token")
    return page


def paginate(items: Sequence[T], token: str | None, limit: int) -> tuple[list[T], str | None]:
    """Slice one page out of `items`; the next token is None on the last page."""
    page = decode_token(token, limit) if token else 1
    start = (page - 1) * limit
    chunk = list(items[start : start + limit])
    more = len(items) > start + limit
    return chunk, encode_token(limit, page + 1) if more else None


# units ------------------------------------------------------------------------------------------


def current_state(assignment: Assignment | None, reported: dict[str, states.UnitState]) -> str:
    """fleet's derived state: what the agent on the assigned machine reports, else inactive."""
    if assignment is None:
        return states.TargetState.INACTIVE.value
    found = reported.get(assignment.machine)
    return found.state.value if found else states.TargetState.INACTIVE.value


Options = dict[str, list[schema.UnitOption]]  # file hash -> its options, read once per request


def _wire_options(text: str | None) -> list[schema.UnitOption]:
    return [schema.UnitOption(section=o.section, name=o.name, value=o.value)
            for o in _stored_file(text).options]


async def _options(reg: Registry, unit: Unit, known: Options) -> list[schema.UnitOption]:
    if unit.hash not in known:
        known[unit.hash] = _wire_options(await reg.get_file(unit.hash))
    return known[unit.hash]


def _stored_file(text: str | None) -> UnitFile:
    """A stored file; one today's rules refuse (an older fleetd's) shows empty, as a missing one."""
    try:
        return UnitFile.parse(text or "")
    except InvalidInput:
        return UnitFile()


async def _to_wire(
    reg: Registry,
    unit: Unit,
    assignment: Assignment | None,
    reported: dict[str, states.UnitState],
    pending: str | None = None,
    known: Options | None = None,
) -> schema.Unit:
    return schema.Unit(
        name=unit.name,
        options=await _options(reg, unit, {} if known is None else known),
        desired_state=unit.desired,
        current_state=states.TargetState(current_state(assignment, reported)),
        machine_id=assignment.machine if assignment else None,
        pending_reason=pending if unit.desired != _INACTIVE else None,
    )


def assignments_by_unit(assignments: Sequence[Assignment]) -> dict[str, Assignment]:
    return {a.unit: a for a in sorted(assignments, key=lambda a: a.machine, reverse=True)}


def states_by_unit(
    all_states: Sequence[states.UnitState],
) -> dict[str, dict[str, states.UnitState]]:
    grouped: dict[str, dict[str, states.UnitState]] = {}
    for s in all_states:
        grouped.setdefault(s.name, {})[s.machine] = s
    return grouped


@dataclass(frozen=True, slots=True)
class _UnitListing:
    """A unit listing's records and the names it shows, filtered once for all its pages."""

    records: UnitRecords
    names: list[str]
    options: Options


async def _unit_listing(reg: Registry, wanted: UnitFilter | None) -> _UnitListing:
    records = await reg.unit_records()
    names = records.names
    if wanted is not None:
        names = [n for n in names if wanted.keeps(n, lambda n=n: records.unit(n).desired,
                                                   records.machine_of(n))]
    return _UnitListing(records, names, {})


async def list_units(
    reg: Registry, token: str | None = None, limit: int = DEFAULT_PAGE_LIMIT,
    wanted: UnitFilter | None = None, snapshots: Snapshots = NO_SNAPSHOTS,
) -> Result:
    found = await snapshots.get(("units", wanted), token is None, lambda: _unit_listing(reg, wanted))
    names, next_token = paginate(found.names, token, limit)
    page = [found.records.unit(name) for name in names]
    missing = {u.hash for u in page} - set(found.options)
    for digest, text in (await reg.get_files(missing)).items() if missing else ():
        found.options[digest] = _wire_options(text)
    wire = [
        await _to_wire(reg, u, found.records.assignment(u.name), found.records.states(u.name),
                       found.records.pending.get(u.name), found.options)
        for u in page
    ]
    return 200, schema.UnitPage(units=wire, next_page_token=next_token)


async def get_unit(reg: Registry, name: str) -> Result:
    unit = await reg.get_unit(name)
    if unit is None:
        raise NotFound("unit does not exist")
    placed = assignments_by_unit(await reg.list_assignments())
    reported = {s.machine: s for s in await reg.list_states(name)}
    pending = await reg.get_pending(name)
    return 200, await _to_wire(reg, unit, placed.get(name), reported, pending)


def _check_body_name(name: str, body: schema.Unit) -> None:
    if body.name and body.name != name:
        raise InvalidInput(
            f'name in URL "{name}" differs from unit name in request body "{body.name}"'
        )


def check_desired(name: str, desired: states.TargetState) -> None:
    """Only `inactive` for a template."""
    if desired != states.TargetState.INACTIVE and parse_name(name).is_template:
        raise InvalidState(f'cannot activate template "{name}"')


def parse_options(options: Sequence[schema.UnitOption]) -> UnitFile:
    """The unit file the options make, checked to round-trip through the parser."""
    unitfile = UnitFile.from_options(UnitOption(o.section, o.name, o.value) for o in options)
    UnitFile.parse(unitfile.serialize())
    return unitfile


def build_unit_file(name: str, options: Sequence[schema.UnitOption]) -> UnitFile:
    """Validate options and requirements exactly as stored; raise InvalidInput subclasses."""
    unitfile = parse_options(options)
    validate_requirements(parse_requirements(name, unitfile))
    return unitfile


def unit_record(name: str, unitfile: UnitFile, desired: states.TargetState) -> Unit:
    is_global = parse_requirements(name, unitfile).is_global
    return Unit(name, unitfile.hash, desired, is_global=is_global)


async def put_unit(reg: Registry, name: str, body: schema.Unit) -> Result:
    """Create (201), replace when the content differs (201), or set the desired state (204)."""
    validate_name(name)
    _check_body_name(name, body)
    existing = await reg.get_unit(name)
    if existing is None:
        return await _create(reg, name, body)
    if body.options:
        unitfile = build_unit_file(name, body.options)
        if unitfile.hash != existing.hash:
            return await _replace(reg, name, unitfile, body.desired_state)
    return await _set_desired(reg, name, body.desired_state)


async def _create(reg: Registry, name: str, body: schema.Unit) -> Result:
    if not body.options:
        raise Conflict("unit does not exist and options field empty")
    unitfile = build_unit_file(name, body.options)
    desired = body.desired_state or states.TargetState.INACTIVE
    check_desired(name, desired)
    if not await reg.create_unit(unit_record(name, unitfile, desired), unitfile.serialize()):
        raise Conflict("unit already exists")
    return 201, None


async def _replace(
    reg: Registry, name: str, unitfile: UnitFile, desired: states.TargetState | None
) -> Result:
    desired = desired or states.TargetState.INACTIVE
    check_desired(name, desired)
    if not await reg.replace_unit(unit_record(name, unitfile, desired), unitfile.serialize()):
        raise NotFound("unit does not exist")
    return 201, None


async def _set_desired(reg: Registry, name: str, desired: states.TargetState | None) -> Result:
    if desired is None:
        raise Conflict("must provide DesiredState to update existing unit")
    check_desired(name, desired)
    if await reg.set_desired(name, desired) is None:
        raise NotFound("unit does not exist")
    return 204, None


async def delete_unit(reg: Registry, name: str) -> Result:
    """Remove the unit record; the engine withdraws its placements."""
    if not await reg.delete_unit(name):
        raise NotFound("unit does not exist")
    return 204, None


# states -----------------------------------------------------------------------------------------


def state_to_wire(s: states.UnitState) -> schema.UnitState:
    return schema.UnitState(
        name=s.name,
        hash=s.hash,
        machine_id=s.machine,
        systemd_load_state=s.systemd.load,
        systemd_active_state=s.systemd.active,
        systemd_sub_state=s.systemd.sub,
        reason=s.reason or None,
    )


async def list_states(
    reg: Registry,
    unit_name: str | None = None,
    machine_id: str | None = None,
    token: str | None = None,
    limit: int = DEFAULT_PAGE_LIMIT,
    snapshots: Snapshots = NO_SNAPSHOTS,
) -> Result:
    async def read() -> list[StateRecord]:
        found = await reg.state_records(unit_name)
        return [r for r in found if not machine_id or r.machine == machine_id]

    found = await snapshots.get(("states", unit_name, machine_id), token is None, read)
    page, next_token = paginate(found, token, limit)
    return 200, schema.StatePage(states=[state_to_wire(r.state()) for r in page],
                                 next_page_token=next_token)


async def get_state(reg: Registry, name: str) -> Result:
    found = sorted(await reg.list_states(name), key=lambda s: s.machine)
    found = [s for s in found if s.name == name]
    if not found:
        raise NotFound("unit state does not exist")
    return 200, state_to_wire(found[0])


# machines ---------------------------------------------------------------------------------------


async def get_leader(reg: Registry) -> Result:
    """The engine leader's machine id, read from the registry's leader key."""
    return 200, schema.Leader(machine_id=await reg.leader())



def machine_to_wire(m: machine_model.Machine, state: str | None = None) -> schema.Machine:
    capacity = schema.Capacity(cpu=m.capacity.cpu, memory=m.capacity.memory)
    return schema.Machine(id=m.id, primary_ip=m.ip, metadata=dict(m.metadata), capacity=capacity,
                          state=state)


async def _machines_with_states(reg: Registry) -> list[schema.Machine]:
    return [machine_to_wire(m, state) for m, state in await machines_with_states(reg)]


async def list_machines(
    reg: Registry, token: str | None = None, limit: int = DEFAULT_PAGE_LIMIT,
    snapshots: Snapshots = NO_SNAPSHOTS,
) -> Result:
    machines = await snapshots.get(("machines",), token is None,
                                   lambda: _machines_with_states(reg))
    page, next_token = paginate(machines, token, limit)
    return 200, schema.MachinePage(machines=page, next_page_token=next_token)
