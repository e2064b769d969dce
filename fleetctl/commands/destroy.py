"""destroy: delete units from the registry and (unless --no-block) wait until they are gone.

A template argument destroys all its instances in the registry first, then the template. Each
unit is one DELETE; the wait for all of them shares one state listing per poll.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fleetctl import waiting
from fleetctl.client import ClientError
from fleetctl.commands.base import Command, Context, configure_blocking_units, find_units


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
    """Delete each unit in order, wait for them all, print `Destroyed X` for each unit gone;
    1 if any delete or wait failed."""
    deleted = []
    for name in names:
        try:
            await ctx.client.destroy_unit(name)
        except ClientError as exc:
            ctx.warn(f"Error destroying units: {exc}")
            continue
        deleted.append(name)
    gone = deleted if no_block else await waiting.wait_until_gone(ctx, deleted, attempts)
    for name in gone:
        ctx.say(f"Destroyed {name}")
    return 0 if len(gone) == len(names) else 1


DESTROY = Command(
    "destroy",
    "Destroy one or more units in the cluster (a template: its instances, then itself)",
    "fleetctl destroy [--no-block|--block-attempts=N] UNIT...",
    configure_blocking_units,
    run_destroy,
)
