"""cat: print a unit file as the registry stores it (normalized)."""

from __future__ import annotations

import argparse

from fleetctl.commands.base import Command, Context, names_of
from fleetctl.render import unit_file


async def run_cat(ctx: Context, args: argparse.Namespace) -> int:
    if len(args.units) != 1:
        ctx.warn("One unit file must be provided")
        return 1
    name = names_of(args.units)[0]
    unit = await ctx.client.get_unit(name)
    if unit is None:
        ctx.warn(f"Unit {name} not found")
        return 1
    ctx.out.write(unit_file(unit).serialize())
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("units", nargs="*", metavar="UNIT")


CAT = Command(
    "cat", "Output the contents of a submitted unit", "fleetctl cat UNIT", _configure, run_cat
)
