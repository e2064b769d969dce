"""list-units, list-unit-files and list-machines: fleet's tables.

Without --fields, list-unit-files adds a REASON column when some unit has a pending reason.
"""

from __future__ import annotations

import argparse

from fleetctl import render
from fleetctl.commands.base import Command, Context, add_table_flags


def _fields(
    ctx: Context, args: argparse.Namespace, valid: tuple[str, ...], default: str
) -> list[str] | None:
    try:
        return render.parse_fields(default if args.fields is None else args.fields, valid)
    except render.FieldError as exc:
        ctx.warn(str(exc))
        return None


async def run_list_units(ctx: Context, args: argparse.Namespace) -> int:
    fields = _fields(ctx, args, render.UNIT_FIELDS, render.UNIT_DEFAULT)
    if fields is None:
        return 1
    states = await ctx.client.list_states()
    machines = await ctx.client.list_machines()
    rows = render.state_rows(states, machines, args.full)
    ctx.out.write(render.table(fields, rows, args.no_legend))
    return 0


async def run_list_unit_files(ctx: Context, args: argparse.Namespace) -> int:
    fields = _fields(ctx, args, render.UNIT_FILE_FIELDS, render.UNIT_FILE_DEFAULT)
    if fields is None:
        return 1
    if "tmachine" in fields:
        ctx.warn(render.TMACHINE_WARNING)
    units = await ctx.client.list_units()
    if args.fields is None:
        fields = render.default_unit_file_fields(units)
    machines = await ctx.client.list_machines()
    rows = render.unit_file_rows(units, machines, args.full)
    ctx.out.write(render.table(fields, rows, args.no_legend))
    return 0


async def run_list_machines(ctx: Context, args: argparse.Namespace) -> int:
    fields = _fields(ctx, args, render.MACHINE_FIELDS, render.MACHINE_DEFAULT)
    if fields is None:
        return 1
    rows = render.machine_rows(await ctx.client.list_machines(), args.full)
    ctx.out.write(render.table(fields, rows, args.no_legend))
    for alarm in await ctx.client.list_alarms():
        ctx.warn(render.alarm_line(alarm))
    return 0


LIST_UNITS = Command(
    "list-units",
    "List the current state of units in the cluster",
    "fleetctl list-units [--full] [--no-legend] [--fields=FIELDS]",
    lambda p: add_table_flags(p, render.UNIT_DEFAULT),
    run_list_units,
)
LIST_UNIT_FILES = Command(
    "list-unit-files",
    "List the units that exist in the cluster",
    "fleetctl list-unit-files [--full] [--no-legend] [--fields=FIELDS]",
    lambda p: add_table_flags(p, render.UNIT_FILE_DEFAULT),
    run_list_unit_files,
)
LIST_MACHINES = Command(
    "list-machines",
    "Enumerate the current hosts in the cluster",
    "fleetctl list-machines [--full] [--no-legend] [--fields=FIELDS]",
    lambda p: add_table_flags(p, render.MACHINE_DEFAULT),
    run_list_machines,
)
