"""fleet's "lazy create" (§1.3): make sure every named unit exists in the registry.

Owns where a unit's content comes from (the registry, a local file, a template in the registry,
a template file next to the argument), `--replace` and its allowed states per command, and
fleet's messages. Everything is resolved and validated before anything is written, so one bad
argument leaves the registry untouched.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from fleetctl import render, waiting
from fleetctl.commands.base import Context
from fleetd.api import schema
from fleetd.errors import InvalidInput
from fleetd.model.names import normalize_name, parse_name, validate_name
from fleetd.model.requirements import parse_requirements, unknown_options, validate_requirements
from fleetd.model.states import TargetState
from fleetd.model.unitfile import UnitFile


class ResolveError(Exception):
    """A unit cannot be found, read or validated; printed as `Error creating units: ...`."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do for one argument: create or replace with `unitfile`, or keep the registry copy."""

    name: str
    unitfile: UnitFile | None = None

    @property
    def writes(self) -> bool:
        return self.unitfile is not None


def unit_path(arg: str) -> str:
    """The file an argument refers to: `dir/hello` -> `dir/hello.service`."""
    return os.path.join(os.path.dirname(arg), normalize_name(arg))


def read_unit_file(path: str) -> UnitFile:
    try:
        with open(path, encoding="utf-8") as handle:
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


async def find_source(ctx: Context, path: str, name: str) -> UnitFile:
    """Content for a unit the registry lacks (§1.3 steps 2-4)."""
    if os.path.exists(path):
        return read_unit_file(path)
    info = parse_name(name)
    if not info.is_instance:
        raise ResolveError(f"unable to find Unit({name}) in Registry or on filesystem")
    template = await ctx.client.get_unit(info.template)
    if template is not None:
        return render.unit_file(template)
    on_disk = os.path.join(os.path.dirname(path), info.template)
    if not os.path.exists(on_disk):
        raise ResolveError(
            f"unable to find template Unit({info.template}) in Registry or on filesystem"
        )
    return read_unit_file(on_disk)


def check(ctx: Context, name: str, unitfile: UnitFile) -> None:
    """The API's validation, done first so nothing is half-written; unknown keys only warn."""
    try:
        validate_name(name)
        validate_requirements(parse_requirements(name, unitfile))
    except InvalidInput as exc:
        raise ResolveError(f"invalid unit {name}: {exc}") from exc
    for key in unknown_options(unitfile):
        ctx.warn(f'WARNING: unrecognized requirement in [X-Fleet] section: "{key}"')


async def plan_one(ctx: Context, arg: str, replace: bool, allowed: Collection[TargetState]) -> Plan:
    name, path = normalize_name(arg), unit_path(arg)
    existing = await ctx.client.get_unit(name)
    if existing is None:
        unitfile = await find_source(ctx, path, name)
        check(ctx, name, unitfile)
        return Plan(name, unitfile)
    local = local_unit_file(path)
    if local is None:
        return Plan(name)
    if local.hash == render.unit_file(existing).hash:
        if replace:
            ctx.say(f"Found same Unit({name}) in Registry, nothing to do")
        return Plan(name)
    return _replacement(ctx, existing, path, local, replace, allowed)


def _replacement(
    ctx: Context,
    existing: schema.Unit,
    path: str,
    local: UnitFile,
    replace: bool,
    allowed: Collection[TargetState],
) -> Plan:
    name = existing.name or ""
    if not replace:
        ctx.warn(
            f"WARNING: Unit {name} in registry differs from local unit file {path}. "
            "Add --replace to override."
        )
        return Plan(name)
    if existing.desired_state not in allowed:
        state = existing.desired_state.value if existing.desired_state else "unknown"
        ctx.warn(
            f"Warning: can not replace Unit({name}) in state '{state}', use the appropriate command"
        )
        return Plan(name)
    check(ctx, name, local)
    return Plan(name, local)


def _wire_options(unitfile: UnitFile) -> list[schema.UnitOption]:
    return [
        schema.UnitOption(section=o.section, name=o.name, value=o.value) for o in unitfile.options
    ]


async def lazy_create(
    ctx: Context,
    args: Sequence[str],
    *,
    replace: bool,
    allowed: Collection[TargetState],
    attempts: int = 0,
    no_block: bool = False,
) -> list[str]:
    """Ensure every unit exists; return the unit names in argument order.

    Raises ResolveError (nothing written) or the client's errors.
    """
    plans = [await plan_one(ctx, arg, replace, allowed) for arg in args]
    written = []
    for plan in plans:
        if plan.unitfile is not None:
            await ctx.client.create_unit(plan.name, _wire_options(plan.unitfile))
            written.append(plan.name)
    if (
        written
        and await waiting.wait_for_states(ctx, written, "submit", "inactive", attempts, no_block)
        is None
    ):
        raise ResolveError("timed out waiting for the new units to be stored")
    return list(dict.fromkeys(p.name for p in plans))
