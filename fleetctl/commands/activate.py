"""submit, load and start: lazy-create the units, then move them towards a desired state."""

from __future__ import annotations

import argparse

from fleetctl import waiting
from fleetctl.client import ClientError
from fleetctl.commands.base import (
    SIGN_WARNING,
    Command,
    Context,
    add_block_flags,
    add_create_flags,
    add_units_arg,
)
from fleetctl.render import is_global
from fleetctl.resolve import ResolveError, lazy_create
from fleetd.api import schema
from fleetd.model.states import TargetState

ALLOWED_REPLACE = {
    "submit": frozenset({TargetState.INACTIVE}),
    "load": frozenset({TargetState.INACTIVE, TargetState.LOADED}),
    "start": frozenset(TargetState),
}


async def _create(ctx: Context, args: argparse.Namespace, verb: str) -> list[str] | None:
    """Lazy-create; None (after printing why) if the command must stop."""
    if not args.units:
        ctx.warn("No units given")
        return None
    try:
        return await lazy_create(
            ctx,
            args.units,
            replace=args.replace,
            allowed=ALLOWED_REPLACE[verb],
            attempts=getattr(args, "block_attempts", 0),
            no_block=getattr(args, "no_block", False),
        )
    except (ResolveError, ClientError) as exc:
        ctx.warn(f"Error creating units: {exc}")
        return None


async def run_submit(ctx: Context, args: argparse.Namespace) -> int:
    if args.sign:
        ctx.warn(SIGN_WARNING)
        return 2
    return 0 if await _create(ctx, args, "submit") is not None else 1


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
    "fleetctl load [--replace] [--no-block|--block-attempts=N] UNIT...",
    _configure_activate,
    run_load,
)
START = Command(
    "start",
    "Instruct systemd to start one or more units in the cluster, "
    "first submitting and loading if necessary",
    "fleetctl start [--replace] [--no-block|--block-attempts=N] UNIT...",
    _configure_activate,
    run_start,
)
