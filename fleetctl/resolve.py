"""fleet's "lazy create": make sure every named unit exists in the registry.

Owns where a unit's content comes from (the registry, a local file, a template in the registry,
a template file next to the argument, or, for the instances `load`/`start` make of a template,
the template's content), `--replace` and its allowed states per command, and fleet's messages.
Everything is resolved against one listing of the registry and validated before anything is
written (in one POST, see `fleetctl.submission`), so one bad argument leaves the registry
untouched.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from fleetctl import render
from fleetctl.commands.base import Context
from fleetd.api import schema
from fleetd.errors import InvalidInput
from fleetd.model.names import normalize_name, parse_name, validate_name
from fleetd.model.requirements import parse_requirements, unknown_options, validate_requirements
from fleetd.model.states import TargetState
from fleetd.model.unitfile import UnitFile

Registry = Mapping[str, schema.Unit]  # the registry's units by name, as listed once


class ResolveError(Exception):
    """A unit cannot be found, read or validated; printed as `Error creating units: ...`."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do for one unit: create or replace with `unitfile`, or keep the registry copy.

    `stored` is the registry's copy (None when the unit is not in the registry yet).
    """

    name: str
    unitfile: UnitFile | None = None
    stored: UnitFile | None = None

    @property
    def writes(self) -> bool:
        return self.unitfile is not None

    @property
    def content(self) -> UnitFile | None:
        """What the registry holds once the plan is written."""
        return self.unitfile if self.unitfile is not None else self.stored


def unit_path(arg: str) -> str:
    """The file an argument refers to: `dir/hello` -> `dir/hello.service`."""
    return os.path.join(os.path.dirname(arg), normalize_name(arg))


def read_unit_file(path: str) -> UnitFile:
    try:
        with open(path, encoding="utf-8", newline="") as handle:  # CRs reach the parser
            text = handle.read()
        return UnitFile.parse(text)
    except (OSError, UnicodeDecodeError, InvalidInput) as exc:
        raise ResolveError(f"unable to read unit file {path}: {exc}") from exc


def local_unit_file(path: str) -> UnitFile | None:
    """The file at `path`, else (for an instance) its template next to it, else None."""
    if os.path.exists(path):
        return read_unit_file(path)
    info = parse_name(os.path.basename(path))
    template = os.path.join(os.path.dirname(path), info.template) if info.is_instance else ""
    return read_unit_file(template) if template and os.path.exists(template) else None


def find_source(path: str, name: str, registry: Registry) -> UnitFile:
    """Content for a unit the registry lacks (a local file, else the template it instantiates)."""
    if os.path.exists(path):
        return read_unit_file(path)
    info = parse_name(name)
    if not info.is_instance:
        raise ResolveError(f"unable to find Unit({name}) in Registry or on filesystem")
    template = registry.get(info.template)
    if template is not None:
        return render.unit_file(template)
    on_disk = os.path.join(os.path.dirname(path), info.template)
    if not os.path.exists(on_disk):
        raise ResolveError(
            f"unable to find template Unit({info.template}) in Registry or on filesystem"
        )
    return read_unit_file(on_disk)


def check_names(args: Sequence[str]) -> None:
    """Every argument's unit name, checked as the API will check it, before any file is read
    or request sent: one bad name and nothing is touched."""
    for name in map(normalize_name, args):
        try:
            validate_name(name)
        except InvalidInput as exc:
            raise ResolveError(f"invalid unit {name}: {exc}") from exc


def check(ctx: Context, name: str, unitfile: UnitFile, warn: bool = True) -> None:
    """The API's validation, done first so nothing is half-written; unknown keys only warn."""
    try:
        validate_name(name)
        validate_requirements(parse_requirements(name, unitfile))
    except InvalidInput as exc:
        raise ResolveError(f"invalid unit {name}: {exc}") from exc
    for key in unknown_options(unitfile) if warn else ():
        ctx.warn(f'WARNING: unrecognized requirement in [X-Fleet] section: "{key}"')


def plan_one(
    ctx: Context, arg: str, registry: Registry, replace: bool, allowed: Collection[TargetState]
) -> Plan:
    name, path = normalize_name(arg), unit_path(arg)
    existing = registry.get(name)
    if existing is None:
        unitfile = find_source(path, name, registry)
        check(ctx, name, unitfile)
        return Plan(name, unitfile)
    stored = render.unit_file(existing)
    local = local_unit_file(path)
    if local is None:
        return Plan(name, stored=stored)
    if local.hash == stored.hash:
        if replace:
            ctx.say(f"Found same Unit({name}) in Registry, nothing to do")
        return Plan(name, stored=stored)
    return _replacement(ctx, existing, f"local unit file {path}", local, replace, allowed)


def plan_instance(
    ctx: Context,
    name: str,
    template: Plan,
    existing: schema.Unit | None,
    replace: bool,
    allowed: Collection[TargetState],
) -> Plan:
    """An instance of `template`: created with the template's content, as lazy create does for
    an instance whose template is in the registry; an existing instance that differs from the
    template follows the `--replace` rules."""
    content = template.content
    assert content is not None, "a planned template has content"
    if existing is None:
        check(ctx, name, content, warn=False)
        return Plan(name, content)
    stored = render.unit_file(existing)
    if stored.hash == content.hash:
        return Plan(name, stored=stored)
    return _replacement(ctx, existing, f"template {template.name}", content, replace, allowed)


def _replacement(
    ctx: Context,
    existing: schema.Unit,
    source: str,
    local: UnitFile,
    replace: bool,
    allowed: Collection[TargetState],
) -> Plan:
    name, stored = existing.name or "", render.unit_file(existing)
    if not replace:
        ctx.warn(
            f"WARNING: Unit {name} in registry differs from {source}. Add --replace to override."
        )
        return Plan(name, stored=stored)
    if existing.desired_state not in allowed:
        state = existing.desired_state.value if existing.desired_state else "unknown"
        ctx.warn(
            f"Warning: can not replace Unit({name}) in state '{state}', use the appropriate command"
        )
        return Plan(name, stored=stored)
    check(ctx, name, local)
    return Plan(name, local, stored)


async def read_registry(ctx: Context) -> Registry:
    """Every unit in the registry by name: one listing (its pages) for a whole command."""
    return {u.name or "": u for u in await ctx.client.list_units()}


def plan_units(
    ctx: Context,
    args: Sequence[str],
    registry: Registry,
    *,
    replace: bool,
    allowed: Collection[TargetState],
) -> list[Plan]:
    """One plan per argument, in order, against `registry`; raises ResolveError. No I/O but
    reading local unit files."""
    return [plan_one(ctx, arg, registry, replace, allowed) for arg in args]


async def plan_checked(
    ctx: Context, args: Sequence[str], *, replace: bool, allowed: Collection[TargetState]
) -> list[Plan]:
    """`plan_units` against one fresh listing, once every name passed `check_names`."""
    check_names(args)
    return plan_units(ctx, args, await read_registry(ctx), replace=replace, allowed=allowed)
