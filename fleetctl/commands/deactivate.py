"""stop and unload: move units that exist in the registry back to loaded / inactive.

A template argument stands for all its instances in the registry; the template itself is left
alone (it is always inactive). `stop` skips such instances that are already inactive instead of
refusing as it does for a named unit. The desired-state changes go out in one POST /units.
"""

from __future__ import annotations

import argparse

from fleetctl import waiting
from fleetctl.commands.base import (
    Command,
    Context,
    configure_blocking_units,
    find_units,
    go_list,
    names_of,
)
from fleetctl.render import is_global
from fleetd.api import schema
from fleetd.model.states import TargetState

INACTIVE, LOADED = TargetState.INACTIVE, TargetState.LOADED


async def _found(ctx: Context, args: argparse.Namespace) -> list[schema.Unit] | None:
    if not args.units:
        ctx.warn("No units given")
        return None
    units = await find_units(ctx, args.units)
    if not units:
        ctx.warn("Units not found in registry")
    return units


async def _trigger(
    ctx: Context, units: list[schema.Unit], state: TargetState, verb: str
) -> list[str]:
    """Set the desired state (one request); return the non-global units to wait for."""
    await ctx.client.set_desired([u.name or "" for u in units if u.desired_state != state], state)
    waiting_for = []
    for unit in units:
        if is_global(unit):
            ctx.say(f"Triggered global unit {unit.name} {verb}")
        else:
            waiting_for.append(unit.name or "")
    return waiting_for


async def run_stop(ctx: Context, args: argparse.Namespace) -> int:
    units = await _found(ctx, args)
    if not units:
        return 1 if units is None else 0
    named = set(names_of(args.units))
    units = [u for u in units if u.name in named or u.current_state != INACTIVE or is_global(u)]
    for unit in units:
        if not is_global(unit) and unit.current_state == INACTIVE:
            ctx.warn(f"Unable to stop unit {unit.name} in state inactive")
            return 1
    todo = [u for u in units if is_global(u) or u.current_state != LOADED]
    return await _move_and_wait(ctx, args, todo, LOADED, "stop", "stopped")


async def run_unload(ctx: Context, args: argparse.Namespace) -> int:
    units = await _found(ctx, args)
    if not units:
        return 1 if units is None else 0
    todo = [
        u
        for u in units
        if is_global(u) or u.current_state != INACTIVE or u.desired_state != INACTIVE
    ]
    return await _move_and_wait(ctx, args, todo, INACTIVE, "unload", "unloaded")


async def _move_and_wait(ctx: Context, args: argparse.Namespace, todo: list[schema.Unit],
                         state: TargetState, verb: str, done: str) -> int:
    """Set `state` on `todo`, wait as the block flags say, then report success on stderr."""
    names = await _trigger(ctx, todo, state, verb)
    waited = await waiting.wait_for_states(ctx, names, verb, state.value, args.block_attempts,
                                           args.no_block)
    if waited is None:
        return 1
    if names:
        ctx.warn(f"Successfully {done} units {go_list(names)}.")
    return 0


STOP = Command(
    "stop",
    "Instruct systemd to stop one or more units in the cluster",
    "fleetctl stop [--no-block|--block-attempts=N] UNIT...",
    configure_blocking_units,
    run_stop,
)
UNLOAD = Command(
    "unload",
    "Unschedule one or more units in the cluster",
    "fleetctl unload [--no-block|--block-attempts=N] UNIT...",
    configure_blocking_units,
    run_unload,
)
