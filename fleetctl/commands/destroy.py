"""destroy: delete units from the registry and (unless --no-block) wait until they are gone.

A template argument destroys all its instances in the registry first, then the template. The
units go in DELETE /units requests of 1000 (fleetd removes them in txns of 42); the wait for all
of them shares one state listing per poll. The whole command gives up after --timeout seconds.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fleetctl import waiting
from fleetctl.client import ClientError
from fleetctl.commands.base import (
    Command,
    Context,
    add_timeout_flag,
    configure_blocking_units,
    find_units,
    within_timeout,
)


async def run_destroy(ctx: Context, args: argparse.Namespace) -> int:
    if not args.units:
        ctx.warn("No units given")
        return 1
    units = await find_units(ctx, args.units, templates_too=True)
    if not units:
        ctx.warn("Units not found in registry")
        return 0
    return await destroy_units(ctx, [u.name or "" for u in units], args.no_block, args.block_attempts)


async def destroy_units(ctx: Context, names: Sequence[str], no_block: bool, attempts: int) -> int:
    """Delete the units (one DELETE /units per 1000), wait for them all, print `Destroyed X`
    for each unit gone (one already gone counts); 1 if any delete or wait failed."""
    if not names:
        return 0
    try:
        results = await ctx.client.destroy_units(names)
    except ClientError as exc:
        ctx.warn(f"Error destroying units: {exc}")
        return 1
    for result in results:
        if result.status not in (204, 404):
            ctx.warn(f'Error destroying units: unit "{result.name}": {result.message}')
    deleted = [r.name for r in results if r.status in (204, 404)]
    gone = deleted if no_block else await waiting.wait_until_gone(ctx, deleted, attempts)
    for name in gone:
        ctx.say(f"Destroyed {name}")
    return 0 if len(gone) == len(names) else 1


def _configure(parser: argparse.ArgumentParser) -> None:
    configure_blocking_units(parser)
    add_timeout_flag(parser)


DESTROY = Command(
    "destroy",
    "Destroy one or more units in the cluster (a template: its instances, then itself)",
    "fleetctl destroy [--no-block|--block-attempts=N] [--timeout=SECONDS] UNIT...",
    _configure,
    within_timeout("destroy", run_destroy),
)
