"""move: re-place one unit, on a named machine or wherever the scheduler would put it now.

fleetd checks the move with the scheduler's own rules before writing anything (a machine that
breaks the unit's constraints is refused with the reason, exit 1); the engine's leader then
moves it. Unless `--no-block`, fleetctl waits until the unit is placed on its new machine and
that machine reports it in its desired state.
"""

from __future__ import annotations

import argparse
import asyncio

from fleetctl.client import ApiError
from fleetctl.commands.base import Command, Context, names_of

POLL_SECONDS = 0.5
DEFAULT_TIMEOUT = 120.0


async def run_move(ctx: Context, args: argparse.Namespace) -> int:
    (name,) = names_of([args.unit])
    try:
        result = await ctx.client.move_unit(name, args.machine)
    except ApiError as exc:
        ctx.warn(f"Error: {exc.message}")
        return 1
    away, to = result.away[:8], result.to[:8]
    if args.no_block:
        ctx.say(f"Unit {name} moving from {away} to {to}")
        return 0
    try:
        async with asyncio.timeout(args.timeout if args.timeout > 0 else None):
            where = await arrived(ctx, name, result.away)
    except TimeoutError:
        ctx.warn(f"Error: unit {name} did not arrive on {to} within {args.timeout:g} s (--timeout); "
                 "see fleetctl list-unit-files")
        return 1
    ctx.say(f"Unit {name} moved from {away} to {where[:8]}")
    return 0


async def arrived(ctx: Context, name: str, away: str) -> str:
    """Wait until the unit is placed off `away` and in its desired state there; its machine."""
    while True:
        unit = await ctx.client.get_unit(name)
        if unit is None:
            raise TimeoutError  # destroyed meanwhile: it will never arrive
        if unit.machine_id and unit.machine_id != away and unit.current_state == unit.desired_state:
            return unit.machine_id
        await asyncio.sleep(POLL_SECONDS)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("unit", metavar="UNIT")
    parser.add_argument("machine", nargs="?", metavar="MACHINE",
                        help="machine id, unique id prefix or self (default: where the scheduler "
                        "would place the unit now, never its current machine)")
    parser.add_argument("--no-block", action="store_true",
                        help="do not wait until the unit runs on its new machine")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"give up waiting after SECONDS and exit 1 (default {DEFAULT_TIMEOUT:g}; "
                        "0 = no limit)")


MOVE = Command(
    "move",
    "Re-place one unit: on MACHINE, or wherever the scheduler would put it now",
    "fleetctl move UNIT [MACHINE] [--no-block] [--timeout SECONDS]",
    _configure,
    run_move,
)
