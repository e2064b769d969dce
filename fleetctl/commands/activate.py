"""submit, load and start: lazy-create the units, then move them towards a desired state.

Each command reads the registry once (one listing), plans and validates everything, then sends
ONE POST /units that creates or replaces what it must, already with the target state, and moves
the other units it activates. `load` and `start` of a template act on its instances (see
`fleetctl.instances`); `submit` of a template only submits it.
"""

from __future__ import annotations

import argparse

from fleetctl import instances, submission, waiting
from fleetctl.client import ClientError
from fleetctl.commands.base import (
    SIGN_WARNING,
    Command,
    Context,
    add_block_flags,
    add_create_flags,
    add_timeout_flag,
    add_units_arg,
    within_timeout,
)
from fleetctl.commands.destroy import destroy_units
from fleetctl.render import file_is_global
from fleetctl.resolve import Registry, ResolveError, check_names, plan_checked, read_registry
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
        plans = await plan_checked(ctx, args.units, replace=args.replace,
                                   allowed=ALLOWED_REPLACE["submit"])
        await submission.send(ctx, submission.entries(plans), no_block=False)
    except (ResolveError, ClientError) as exc:
        ctx.warn(f"Error creating units: {exc}")
        return False
    return True


async def _plan(
    ctx: Context, args: argparse.Namespace, verb: str
) -> tuple[Registry, instances.Batch] | None:
    """load/start: read the registry once and plan (templates expanded into instances); None
    (after printing why) if the command must stop."""
    if not args.units:
        ctx.warn("No units given")
        return None
    try:
        check_names(args.units)
        registry = await read_registry(ctx)
        return registry, instances.prepare(ctx, args.units, registry, replace=args.replace,
                                           allowed=ALLOWED_REPLACE[verb], override=args.instances,
                                           verb=verb)
    except TemplateError as exc:
        ctx.warn(f"Error: {exc}")
    except (ResolveError, ClientError) as exc:
        ctx.warn(f"Error creating units: {exc}")
    return None


async def _create(
    ctx: Context, args: argparse.Namespace, verb: str, state: TargetState, gerund: str
) -> instances.Batch | None:
    """load/start: create and activate in one POST, then scale down; the batch, or None (after
    printing why) if the command must stop."""
    planned = await _plan(ctx, args, verb)
    if planned is None:
        return None
    registry, batch = planned
    body = submission.entries(batch.plans, batch.names, state, registry)
    try:
        await submission.send(ctx, body, args.no_block)
    except ClientError as exc:
        ctx.warn(f"Error {'creating' if any(e.options for e in body) else gerund} units: {exc}")
        return None
    if await destroy_units(ctx, batch.surplus, args.no_block, args.block_attempts):
        return None
    return batch


async def run_submit(ctx: Context, args: argparse.Namespace) -> int:
    if args.sign:
        ctx.warn(SIGN_WARNING)
        return 2
    return 0 if await _submit(ctx, args) else 1


async def _activate(
    ctx: Context, args: argparse.Namespace, verb: str, state: TargetState, gerund: str
) -> list[schema.Unit] | None:
    """Create and activate, then wait for the non-global units (global ones are only named)."""
    batch = await _create(ctx, args, verb, state, gerund)
    if batch is None:
        return None
    contents = batch.contents()
    local = []
    for name in batch.names:
        if file_is_global(name, contents[name]):
            ctx.say(f"Triggered global unit {name} {verb}")
        else:
            local.append(name)
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


def _configure_start(parser: argparse.ArgumentParser) -> None:
    _configure_activate(parser)
    add_timeout_flag(parser)


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
    "fleetctl start [--replace] [--no-block|--block-attempts=N] [--instances=N] "
    "[--timeout=SECONDS] UNIT...",
    _configure_start,
    within_timeout("start", run_start),
)
