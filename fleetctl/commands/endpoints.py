"""endpoints: where the active units with `[X-Fleet] Publish=` answer, as a table or JSON.

One row per published port: UNIT MACHINE IP PORT PROTO, sorted by unit, machine, port. Without
UNIT arguments every published endpoint is listed; an unknown unit is an error (exit 1).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from fleetctl import jsonout, render
from fleetctl.commands.base import Command, Context, add_table_flags
from fleetd.api import schema
from fleetd.errors import InvalidInput
from fleetd.model.names import normalize_name, validate_name

FIELDS = ("unit", "machine", "ip", "port", "proto")
DEFAULT = ",".join(FIELDS)


def endpoint_rows(endpoints: Iterable[schema.Endpoint], full: bool) -> list[dict[str, str]]:
    """One row per port, sorted; machine ids shortened unless `full`."""
    rows = [(e.unit, e.machine_id, p.port, p.proto, e.ip) for e in endpoints for p in e.ports]
    return [{"unit": unit, "machine": render.machine_id_legend(machine, full), "ip": ip,
             "port": str(port), "proto": proto}
            for unit, machine, port, proto, ip in sorted(rows)]


async def _gather(ctx: Context, names: list[str]) -> list[schema.Endpoint] | None:
    if not names:
        return await ctx.client.list_endpoints() or []
    found: list[schema.Endpoint] = []
    missing = False
    for name in names:
        listed = await ctx.client.list_endpoints(name)
        if listed is None:
            ctx.warn(f"Unit {name} not found")
            missing = True
        found += listed or []
    return None if missing else found


async def run_endpoints(ctx: Context, args: argparse.Namespace) -> int:
    try:
        names = list(dict.fromkeys(normalize_name(u) for u in args.units))
        for name in names:
            validate_name(name)
        fields = render.parse_fields(DEFAULT if args.fields is None else args.fields, FIELDS)
    except (InvalidInput, render.FieldError) as exc:
        ctx.warn(f"Error: {exc}")
        return 1
    endpoints = await _gather(ctx, names)
    if endpoints is None:
        return 1
    if args.output == "json":
        records = [{**r, "port": int(r["port"])} for r in endpoint_rows(endpoints, True)]
        ctx.out.write(jsonout.dump(records, fields))
    else:
        ctx.out.write(render.table(fields, endpoint_rows(endpoints, args.full), args.no_legend))
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("units", nargs="*", metavar="UNIT")
    add_table_flags(parser, DEFAULT)
    parser.add_argument("--output", "-o", choices=jsonout.OUTPUTS, default="table",
                        help="table (default) or json: a list of objects, machine ids whole")


ENDPOINTS = Command(
    "endpoints",
    "List where units with [X-Fleet] Publish= answer: machine, IP, port and protocol",
    "fleetctl endpoints [UNIT...] [--full] [--no-legend] [--fields=FIELDS] [-o table|json]",
    _configure,
    run_endpoints,
)
