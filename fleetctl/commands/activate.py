"""submit, load and start: lazy-create the units, then move them towards a desired state.

`load` and `start` of a template act on its instances (see `fleetctl.instances`); `submit` of a
template only submits it.
"""

from __future__ import annotations

import argparse

from fleetctl import instances, waiting
from fleetctl.client import ClientError
from fleetctl.commands.base import (
    SIGN_WARNING,
    Command,
    Context,
    add_block_flags,
    add_create_flags,
    add_units_arg,
)
from fleetctl.commands.destroy import destroy_units
from fleetctl.render import is_global
from fleetctl.resolve import ResolveError, lazy_create, write_plans
from fleetctl.templates import TemplateError
from fleetd.api import schema
from fleetd.model.states import TargetState

ALLOWED_REPLACE = {
    "submit": frozenset({TargetState.INACTIVE}),
    "load": frozenset({TargetState.INACTIVE, TargetState.LOADED}),
    "start": frozenset(TargetState),
}


async def _submit(ctx: Context, args: argparse.Namespace) -> bool:
    """submit: lazy-create as they are (a template stays a template); False after printing why."""
    if not args.units:
        ctx.warn("No units given")
        return False
    try:
        await lazy_create(ctx, args.units, replace=args.replace, allowed=ALLOWED_REPLACE["submit"])
    except (ResolveError, ClientError) as exc:
        ctx.warn(f"Error creating units: {exc}")
        return False
    return True


async def _create(ctx: Context, args: argparse.Namespace, verb: str) -> list[str] | None:
    """load/start: lazy-create, templates expanded into instances, then scale down; the units
    to activate, or None (after printing why) if the command must stop."""
    if not args.units:
        ctx.warn("No units given")
        return None
    try:
        batch = await instances.prepare(
            ctx,
            args.units,
            replace=args.replace,
            allowed=ALLOWED_REPLACE[verb],
            override=args.instances,
            verb=verb,
        )
        await write_plans(ctx, batch.plans, attempts=args.block_attempts, no_block=args.no_block)
    except TemplateError as exc:
        ctx.warn(f"Error: {exc}")
        return None
    except (ResolveError, ClientError) as exc:
        ctx.warn(f"Error creating units: {exc}")
        return None
    if await destroy_units(ctx, batch.surplus, args.no_block, args.block_attempts):
        return None
    return batch.names


async def run_submit(ctx: Context, args: argparse.Namespace) -> int:
    if args.sign:
        ctx.warn(SIGN_WARNING)
        return 2
    return 0 if await _submit(ctx, args) else 1


async def _set_targets(ctx: Context, names: list[str], state: TargetState) -> list[schema.Unit]:
    units = []
    for name in names:
        unit = await ctx.client.get_unit(name)
        if unit is None:
            raise ClientError(f"unable to find unit {name}")
        if unit.desired_state != state:
            await ctx.client.set_desired(name, state)
        units.append(unit)
    return units


async def _activate(
    ctx: Context, args: argparse.Namespace, verb: str, state: TargetState, gerund: str
) -> list[schema.Unit] | None:
    names = await _create(ctx, args, verb)
    if names is None:
        return None
    try:
        units = await _set_targets(ctx, names, state)
    except ClientError as exc:
        ctx.warn(f"Error {gerund} units: {exc}")
        return None
    for unit in units:
        if is_global(unit):
            ctx.say(f"Triggered global unit {unit.name} {verb}")
    local = [u.name or "" for u in units if not is_global(u)]
    return await waiting.wait_for_states(
        ctx, local, verb, state.value, args.block_attempts, args.no_block
    )


async def run_load(ctx: Context, args: argparse.Namespace) -> int:
    if args.sign:
        ctx.warn(SIGN_WARNING)
        return 2
    return 0 if await _activate(ctx, args, "load", TargetState.LOADED, "loading") is not None else 1


async def run_start(ctx: Context, args: argparse.Namespace) -> int:
    if args.sign:
        ctx.warn(SIGN_WARNING)
        return 2
    launched = await _activate(ctx, args, "start", TargetState.LAUNCHED, "starting")
    if launched is None:
        return 1
    if args.no_block or await waiting.wait_for_active(ctx, launched, args.block_attempts):
        return 0
    return 1


def _configure_create(parser: argparse.ArgumentParser) -> None:
    add_units_arg(parser)
    add_create_flags(parser)


def _configure_activate(parser: argparse.ArgumentParser) -> None:
    _configure_create(parser)
    add_block_flags(parser)
    parser.add_argument(
        "--instances",
        type=int,
        metavar="N",
        help="for a template: run instances 1..N (overrides Instances=) and destroy the "
        "numbered instances above N",
    )


SUBMIT = Command(
    "submit",
    "Upload one or more units to the cluster without starting them",
    "fleetctl submit [--replace] UNIT...",
    _configure_create,
    run_submit,
)
LOAD = Command(
    "load",
    "Schedule one or more units in the cluster, first submitting them if necessary",
    "fleetctl load [--replace] [--no-block|--block-attempts=N] [--instances=N] UNIT...",
    _configure_activate,
    run_load,
)
START = Command(
    "start",
    "Instruct systemd to start one or more units in the cluster, "
    "first submitting and loading if necessary",
    "fleetctl start [--replace] [--no-block|--block-attempts=N] [--instances=N] UNIT...",
    _configure_activate,
    run_start,
)
