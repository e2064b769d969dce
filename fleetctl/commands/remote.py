"""status and journal: systemctl status / journalctl of units, run on the units' own hosts.

fleetd relays the request through etcd to the fleetd on the owning host, which runs the
command and streams the output back (no SSH, no keys: see docs/api.md "Remote commands").
Output is printed as it arrives; the exit code is the remote command's. `--ssh-port` and
`--sudo` are accepted for compatibility with fleet's scripts and ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from fleetctl.client import ApiError
from fleetctl.commands.base import Command, Context, names_of
from fleetd.model.remote import DEFAULT_LINES, OUTPUT_MODES

COMPAT = "accepted for compatibility with fleet and ignored (fleetd relays through the API)"


def _add_compat(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ssh-port", type=int, default=22, help=COMPAT)


def configure_status(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("units", nargs="*", metavar="UNIT")
    parser.add_argument("--output", "-o", choices=("text", "json"), default="text",
                        help="json: print every output record as one JSON list")
    _add_compat(parser)


def configure_journal(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("units", nargs="*", metavar="UNIT")
    parser.add_argument("--lines", "-n", type=int, default=DEFAULT_LINES,
                        help=f"number of recent journal lines to show (default {DEFAULT_LINES})")
    parser.add_argument("--follow", "-f", "--f", dest="follow", action="store_true",
                        help="keep printing new lines until interrupted (Ctrl-C)")
    parser.add_argument("--output", "-o", default="short", metavar="MODE",
                        help="journalctl output mode: " + ", ".join(OUTPUT_MODES))
    parser.add_argument("--sudo", action="store_true", help="accepted for compatibility and "
                        "ignored: fleetd runs journalctl as root on the unit's host")
    _add_compat(parser)


class Printer:
    """Prints one unit's records: data as it comes, errors on stderr; remembers the exit code."""

    def __init__(self, ctx: Context) -> None:
        self.ctx, self.code, self.machines = ctx, 0, 0

    def show(self, record: dict) -> None:
        if "data" in record:
            self.ctx.out.write(str(record["data"]))
            self.ctx.out.flush()
        elif "error" in record:
            self.ctx.warn(f"Error from machine {record.get('machine')}: {record['error']}")
            self.code = self.code or 1
        elif "exit" in record:
            code = record["exit"] if isinstance(record["exit"], int) else 1
            self.code = self.code or code


async def _records(ctx: Context, kind: str, name: str,
                   params: dict | None = None) -> AsyncIterator[dict]:
    method = "POST" if kind == "restart" else "GET"
    async for record in ctx.client.stream_records(method, ("units", name, kind), params):
        yield record


async def relay_print(ctx: Context, kind: str, name: str, params: dict | None = None) -> int:
    """Print `kind`'s output for one unit; the remote exit code (1 for a refusal)."""
    printer, last = Printer(ctx), None
    try:
        async for record in _records(ctx, kind, name, params):
            if last is not None and record.get("machine") != last:
                ctx.say("")  # a global unit: one block per machine
            last = record.get("machine")
            printer.show(record)
    except ApiError as exc:
        ctx.warn(exc.message)
        return 1
    return printer.code


async def run_status(ctx: Context, args: argparse.Namespace) -> int:
    if not args.units:
        ctx.warn("One or more units must be specified.")
        return 1
    if args.output == "json":
        return await _status_json(ctx, names_of(args.units))
    code = 0
    for index, name in enumerate(names_of(args.units)):
        if index:
            ctx.say("")
        code = await relay_print(ctx, "status", name) or code
    return code


async def _status_json(ctx: Context, names: list[str]) -> int:
    found, code = [], 0
    for name in names:
        try:
            async for record in _records(ctx, "status", name):
                found.append({"unit": name, **record})
                code = code or (record.get("exit") or 0) or (1 if "error" in record else 0)
        except ApiError as exc:
            ctx.warn(exc.message)
            code = code or 1
    ctx.say(json.dumps(found, indent=2))
    return code


async def run_journal(ctx: Context, args: argparse.Namespace) -> int:
    if len(args.units) != 1:
        ctx.warn("One unit file must be provided.")
        return 1
    if args.lines < 0:
        ctx.warn(f"--lines: expected a number >= 0, got {args.lines}")
        return 1
    params = {"lines": str(args.lines), "output": args.output,
              "follow": "true" if args.follow else "false"}
    job = relay_print(ctx, "journal", names_of(args.units)[0], params)
    return await _interruptible(job) if args.follow else await job


async def _interruptible(job: Coroutine[Any, Any, int]) -> int:
    """Run `job` until it ends or Ctrl-C (then the request is closed and fleetd stops journalctl)."""
    loop, task = asyncio.get_running_loop(), asyncio.ensure_future(job)
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return 130
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)


STATUS = Command(
    "status",
    "Output the status of one or more units in the cluster",
    "fleetctl status [-o json] UNIT...",
    configure_status,
    run_status,
)
JOURNAL = Command(
    "journal",
    "Print the journal of a unit in the cluster to stdout",
    "fleetctl journal [--lines=N] [--follow] [--output=MODE] UNIT",
    configure_journal,
    run_journal,
)
