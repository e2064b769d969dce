"""POST /units and DELETE /units: many unit submissions, or destructions, in one request.

POST checks the whole request before anything is written.

Owns the batch rules. Every entry follows PUT /units/{name}'s create / replace / desired-state
rules and messages, decided against one listing of the registry; the first entry that breaks a
rule rejects the whole request with PUT's status and a message naming the unit. An empty or
oversized batch, an entry without a name and a repeated name are 400. The writes go to the
registry in few txns (`Registry.write_units`); an entry whose txn lost a race is redone as a
plain PUT, so the outcome equals sequential PUTs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleetd.api import handlers, schema
from fleetd.errors import Conflict, InvalidInput, NotFound
from fleetd.model.names import validate_name
from fleetd.model.requirements import parse_requirements, validate_requirements
from fleetd.model.states import TargetState
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry.store import Registry, UnitWrite


@dataclass(frozen=True, slots=True)
class Decision:
    """What one entry does: its answer (201 or 204) and its write (None: nothing changes)."""

    name: str
    status: int
    write: UnitWrite | None = None


def check_entries(entries: Sequence[schema.Unit]) -> None:
    """400 for an empty or oversized batch, an entry without a name, a repeated name."""
    check_names([entry.name or "" for entry in entries], "units")


def check_names(names: Sequence[str], field: str) -> None:
    """400 for an empty or oversized batch, an empty name, a repeated name."""
    if not names:
        raise InvalidInput("no units given")
    if len(names) > schema.MAX_BATCH:
        raise InvalidInput(f"too many units: {len(names)}, at most {schema.MAX_BATCH} per request")
    seen: set[str] = set()
    for index, name in enumerate(names):
        if not name:
            raise InvalidInput(f"{field}[{index}]: name is required")
        if name in seen:
            raise InvalidInput(f'duplicate unit "{name}"')
        seen.add(name)


@dataclass(frozen=True, slots=True)
class Content:
    """Options as a checked unit file, with its normalized text and hash."""

    unitfile: UnitFile
    text: str
    hash: str


class Decider:
    """Decides entries as PUT would, against one listing (`stored`: name -> record, mod
    revision). Each distinct content is parsed once per request: instances share one."""

    def __init__(self, stored: Mapping[str, tuple[Unit, int]]) -> None:
        self.stored = stored
        self.contents: dict[tuple[tuple[str, str, str], ...], Content] = {}

    def decide_all(self, entries: Sequence[schema.Unit]) -> list[Decision]:
        """Every entry in order; the first failure is raised with the unit's name in front."""
        decisions = []
        for entry in entries:
            name = entry.name or ""
            try:
                decisions.append(self.decide(name, entry))
            except (InvalidInput, Conflict) as exc:
                raise type(exc)(f'unit "{name}": {exc}') from exc
        return decisions

    def decide(self, name: str, entry: schema.Unit) -> Decision:
        validate_name(name)
        stored = self.stored.get(name)
        if stored is None:
            return self._create(name, entry)
        unit, revision = stored
        if entry.options:
            content = self.content(entry.options)
            is_global = _checked(name, content)
            if content.hash != unit.hash:
                new = _record(name, content, entry.desired_state, is_global)
                return Decision(name, 201, UnitWrite(new, content.text, revision, unit.is_global))
        return _set_desired(name, entry.desired_state, unit, revision)

    def content(self, options: Sequence[schema.UnitOption]) -> Content:
        key = tuple((o.section, o.name, o.value) for o in options)
        if key not in self.contents:
            unitfile = handlers.parse_options(options)
            self.contents[key] = Content(unitfile, unitfile.serialize(), unitfile.hash)
        return self.contents[key]

    def _create(self, name: str, entry: schema.Unit) -> Decision:
        if not entry.options:
            raise Conflict("unit does not exist and options field empty")
        content = self.content(entry.options)
        new = _record(name, content, entry.desired_state, _checked(name, content))
        return Decision(name, 201, UnitWrite(new, content.text))


def _checked(name: str, content: Content) -> bool:
    """Validate the unit's [X-Fleet] requirements (they depend on its name); its Global=."""
    requirements = parse_requirements(name, content.unitfile)
    validate_requirements(requirements)
    return requirements.is_global


def _record(name: str, content: Content, desired: TargetState | None, is_global: bool) -> Unit:
    """The new record of a created or replaced unit: `inactive` unless the entry says."""
    desired = desired or TargetState.INACTIVE
    handlers.check_desired(name, desired)
    return Unit(name, content.hash, desired, is_global=is_global)


def _set_desired(name: str, desired: TargetState | None, unit: Unit, revision: int) -> Decision:
    if desired is None:
        raise Conflict("must provide DesiredState to update existing unit")
    handlers.check_desired(name, desired)
    if desired == unit.desired:
        return Decision(name, 204)
    new = Unit(name, unit.hash, desired, is_global=unit.is_global)
    return Decision(name, 204, UnitWrite(new, None, revision, unit.is_global))


async def post_units(reg: Registry, body: schema.UnitBatch) -> handlers.Result:
    """Check and decide every entry, write them all, answer 200 with one result per entry."""
    check_entries(body.units)
    decisions = Decider(await reg.units_with_revisions()).decide_all(body.units)
    writes = [d.write for d in decisions if d.write is not None]
    applied = dict(zip([w.unit.name for w in writes], await reg.write_units(writes), strict=True))
    results = [await _result(reg, e, d, applied) for e, d in zip(body.units, decisions, strict=True)]
    return 200, schema.UnitResults(results=results)


async def delete_units(reg: Registry, body: schema.UnitNames) -> handlers.Result:
    """DELETE /units: destroy each named unit as DELETE /units/{name} would (204, or 404 for
    one that does not exist), in few txns; 200 with one result per name, in order. Names are
    not validated: a unit written past the API with an invalid name can be removed too."""
    check_names(body.names, "names")
    removed = await reg.delete_units(body.names)
    return 200, schema.UnitResults(results=[
        schema.UnitResult(name=name, status=204) if done else
        schema.UnitResult(name=name, status=404, message="unit does not exist")
        for name, done in zip(body.names, removed, strict=True)])


async def _result(
    reg: Registry, entry: schema.Unit, decision: Decision, applied: Mapping[str, bool]
) -> schema.UnitResult:
    """The decision's answer, or (its write lost a race) the answer of the entry as a PUT now."""
    if applied.get(decision.name, True):
        return schema.UnitResult(name=decision.name, status=decision.status)
    try:
        status, _ = await handlers.put_unit(reg, decision.name, entry)
    except (InvalidInput, NotFound, Conflict) as exc:
        return schema.UnitResult(name=decision.name, status=handlers.status_for(exc), message=str(exc))
    return schema.UnitResult(name=decision.name, status=status)
