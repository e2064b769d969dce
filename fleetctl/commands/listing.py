"""list-units, list-unit-files and list-machines: fleet's tables.

Without --fields, list-unit-files adds a REASON column when some unit has a pending reason;
list-units prints, under its table on stderr, why a failed unit stays failed when fleet knows.
`--output json` (`-o json`) prints the same rows as a JSON list instead (see fleetctl.jsonout).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from fleetctl import jsonout, render
from fleetctl.commands import watching
from fleetctl.commands.base import Command, Context, add_table_flags
from fleetd.api import schema


def _configure(default_fields: str) -> Callable[[argparse.ArgumentParser], None]:
    def configure(parser: argparse.ArgumentParser) -> None:
        add_table_flags(parser, default_fields)
        parser.add_argument("--output", "-o", choices=jsonout.OUTPUTS, default="table",
                            help="table (default) or json: a list of objects with every field")
    return configure


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "output", "table") == "json")


def _fields(
    ctx: Context, args: argparse.Namespace, valid: tuple[str, ...], default: str,
    keys: tuple[str, ...] = (),
) -> list[str] | None:
    if _json(args):
        valid, default = keys, ",".join(k for k in keys if k != "tmachine")
    try:
        return render.parse_fields(default if args.fields is None else args.fields, valid)
    except render.FieldError as exc:
        ctx.warn(str(exc))
        return None


async def run_list_units(ctx: Context, args: argparse.Namespace) -> int:
    fields = _fields(ctx, args, render.UNIT_FIELDS, render.UNIT_DEFAULT, jsonout.UNIT_KEYS)
    if fields is None:
        return 1
    states = await ctx.client.list_states()
    machines = await ctx.client.list_machines()
    if _json(args):
        ctx.out.write(jsonout.dump(jsonout.state_records(states, machines), fields))
        return 0
    rows = render.state_rows(states, machines, args.full)
    ctx.out.write(render.table(fields, rows, args.no_legend))
    await _why_failed(ctx, states)
    return 0


async def _why_failed(ctx: Context, states: list[schema.UnitState]) -> None:
    """Under the table, on stderr: why a failed unit stays failed, when fleet says why (e.g.
    its RescheduleAttempts are used up); one listing, only when some unit is failed."""
    failed = sorted({s.name for s in states if s.systemd_active_state == "failed" and not s.reason})
    if not failed:
        return
    reasons = {u.name: u.pending_reason for u in await ctx.client.list_units() if u.pending_reason}
    for name in failed:
        if name in reasons:
            ctx.warn(f"{name}: {render.reason_legend(reasons[name])}")


async def run_list_unit_files(ctx: Context, args: argparse.Namespace) -> int:
    fields = _fields(ctx, args, render.UNIT_FILE_FIELDS, render.UNIT_FILE_DEFAULT,
                     jsonout.UNIT_FILE_KEYS)
    if fields is None:
        return 1
    if "tmachine" in fields:
        ctx.warn(render.TMACHINE_WARNING)
    units = await ctx.client.list_units()
    if _json(args):
        machines = await ctx.client.list_machines()
        ctx.out.write(jsonout.dump(jsonout.unit_file_records(units, machines), fields))
        return 0
    if args.fields is None:
        fields = render.default_unit_file_fields(units)
    machines = await ctx.client.list_machines()
    rows = render.unit_file_rows(units, machines, args.full)
    ctx.out.write(render.table(fields, rows, args.no_legend))
    return 0


async def run_list_machines(ctx: Context, args: argparse.Namespace) -> int:
    fields = _fields(ctx, args, render.MACHINE_FIELDS, render.MACHINE_DEFAULT, jsonout.MACHINE_KEYS)
    if fields is None:
        return 1
    if _json(args):
        ctx.out.write(jsonout.dump(jsonout.machine_records(await ctx.client.list_machines()), fields))
        return 0
    rows = render.machine_rows(await ctx.client.list_machines(), args.full)
    ctx.out.write(render.table(fields, rows, args.no_legend))
    for alarm in await ctx.client.list_alarms():
        ctx.warn(render.alarm_line(alarm))
    return 0


LIST_UNITS = Command(
    "list-units",
    "List the current state of units in the cluster",
    "fleetctl list-units [--full] [--no-legend] [--fields=FIELDS] [-o table|json] [--watch]",
    watching.with_watch_flag(_configure(render.UNIT_DEFAULT)),
    watching.watchable(run_list_units),
)
LIST_UNIT_FILES = Command(
    "list-unit-files",
    "List the units that exist in the cluster",
    "fleetctl list-unit-files [--full] [--no-legend] [--fields=FIELDS] [-o table|json]",
    _configure(render.UNIT_FILE_DEFAULT),
    run_list_unit_files,
)
LIST_MACHINES = Command(
    "list-machines",
    "Enumerate the current hosts in the cluster",
    "fleetctl list-machines [--full] [--no-legend] [--fields=FIELDS] [-o table|json]",
    _configure(render.MACHINE_DEFAULT),
    run_list_machines,
)
