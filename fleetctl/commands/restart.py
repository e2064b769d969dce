"""restart: fleet v1.0's restart of units, after lazy-creating them as `submit` does.

A unit not yet in the registry is created from its local file (or template) first, as fleet's
restart did; being new, it is inactive and so then refused like any inactive unit.

A non-global unit goes through fleet's states: loaded -> launched; launched -> loaded, wait,
launched, wait (it stays scheduled, usually on the same machine); a unit that is not loaded
anywhere (current state inactive) is refused. A global unit is restarted in place with
`systemctl restart` on every machine hosting it, relayed by fleetd (see commands.remote).
"""

from __future__ import annotations

import argparse

from fleetctl import submission, waiting
from fleetctl.client import ClientError
from fleetctl.commands.base import Command, Context, add_units_arg, find_units, names_of
from fleetctl.commands.remote import relay_print
from fleetctl.render import is_global
from fleetctl.resolve import ResolveError, plan_checked
from fleetd.api import schema
from fleetd.model.states import TargetState

INACTIVE, LOADED, LAUNCHED = TargetState.INACTIVE, TargetState.LOADED, TargetState.LAUNCHED


def configure(parser: argparse.ArgumentParser) -> None:
    add_units_arg(parser)
    parser.add_argument("--block-attempts", type=int, default=0, metavar="N",
                        help="wait at most N attempts of ~2 s each (0 = wait forever)")


async def _lazy_create(ctx: Context, args: argparse.Namespace) -> bool:
    """fleet's lazy create (no --replace: a differing local file only warns); False on error."""
    try:
        plans = await plan_checked(ctx, args.units, replace=False, allowed=frozenset({INACTIVE}))
        await submission.send(ctx, submission.entries(plans), no_block=False)
    except (ResolveError, ClientError) as exc:
        ctx.warn(f"Error creating units: {exc}")
        return False
    return True


async def run_restart(ctx: Context, args: argparse.Namespace) -> int:
    if not args.units:
        ctx.warn("No units given")
        return 1
    if not await _lazy_create(ctx, args):
        return 1
    units = await find_units(ctx, args.units)
    known = {u.name for u in units}
    code = 0
    for name in names_of(args.units):
        if name not in known:
            ctx.warn(f"unable to find unit {name}")
            code = 1
    for unit in units:
        code = await _restart(ctx, unit, args.block_attempts) or code
    return code


async def _restart(ctx: Context, unit: schema.Unit, attempts: int) -> int:
    name = unit.name or ""
    if is_global(unit):
        return await relay_print(ctx, "restart", name)
    if unit.current_state in (None, INACTIVE):
        ctx.warn(f"Unable to restart unit {name} in state inactive")
        return 1
    if unit.current_state == LAUNCHED and not await _move(ctx, name, LOADED, "stop", attempts):
        return 1
    return 0 if await _move(ctx, name, LAUNCHED, "start", attempts) else 1


async def _move(ctx: Context, name: str, state: TargetState, verb: str, attempts: int) -> bool:
    await ctx.client.set_desired([name], state)
    return await waiting.wait_for_states(ctx, [name], verb, state.value, attempts, False) is not None


RESTART = Command(
    "restart",
    "Restart one or more units in the cluster",
    "fleetctl restart [--block-attempts=N] UNIT...",
    configure,
    run_restart,
)
