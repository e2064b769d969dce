"""destroy: delete units from the registry and (unless --no-block) wait until they are gone."""

from __future__ import annotations

import argparse

from fleetctl import waiting
from fleetctl.client import ClientError
from fleetctl.commands.base import Command, Context, add_block_flags, add_units_arg, find_units


async def run_destroy(ctx: Context, args: argparse.Namespace) -> int:
    if not args.units:
        ctx.warn("No units given")
        return 1
    units = await find_units(ctx, args.units)
    if not units:
        ctx.warn("Units not found in registry")
        return 0
    status = 0
    for unit in units:
        name = unit.name or ""
        try:
            await ctx.client.destroy_unit(name)
        except ClientError as exc:
            ctx.warn(f"Error destroying units: {exc}")
            status = 1
            continue
        if not args.no_block and not await waiting.wait_until_gone(ctx, name, args.block_attempts):
            status = 1
            continue
        ctx.say(f"Destroyed {name}")
    return status


def _configure(parser: argparse.ArgumentParser) -> None:
    add_units_arg(parser)
    add_block_flags(parser)


DESTROY = Command(
    "destroy",
    "Destroy one or more units in the cluster",
    "fleetctl destroy [--no-block|--block-attempts=N] UNIT...",
    _configure,
    run_destroy,
)
