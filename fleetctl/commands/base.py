"""What every fleetctl command shares: the run context, the command record and common flags."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

from fleetctl import templates
from fleetctl.client import Client
from fleetctl.sshcmd import SshOptions
from fleetd.api import schema
from fleetd.model.names import normalize_name

SIGN_WARNING = "WARNING: The signed/verified units feature is DEPRECATED and cannot be used."


@dataclass
class Context:
    """One command run: the API client, the two output streams and the global SSH flags.

    A command that hands the terminal to another program (ssh) sets `handoff` to its argv;
    fleetctl execs it after closing the API client and any --tunnel.
    """

    client: Client
    out: TextIO
    err: TextIO
    ssh: SshOptions = SshOptions()
    handoff: list[str] | None = None

    def say(self, message: str) -> None:
        print(message, file=self.out)

    def warn(self, message: str) -> None:
        print(message, file=self.err)


Runner = Callable[[Context, argparse.Namespace], Awaitable[int]]


@dataclass(frozen=True)
class Command:
    """A verb: its name, one-line help, how it adds its flags and how it runs."""

    name: str
    summary: str
    usage: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Runner


def add_units_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("units", nargs="*", metavar="UNIT")


def add_block_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-block",
        action="store_true",
        help="do not wait until the units have reached the desired state",
    )
    parser.add_argument(
        "--block-attempts",
        type=int,
        default=0,
        metavar="N",
        help="wait at most N attempts of ~2 s each (0 = wait forever)",
    )


DEFAULT_TIMEOUT = 600.0  # seconds: start and destroy give up after this, waits included


def add_timeout_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up after SECONDS in all, waiting included, and exit 1 (default "
        f"{DEFAULT_TIMEOUT:g}; 0 = no limit)",
    )


def within_timeout(verb: str, run: Runner) -> Runner:
    """`run`, given up after `--timeout` seconds with a message saying what may be left."""

    async def bounded(ctx: Context, args: argparse.Namespace) -> int:
        try:
            async with asyncio.timeout(args.timeout if args.timeout > 0 else None) as deadline:
                return await run(ctx, args)
        except TimeoutError:
            if not deadline.expired():
                raise
        ctx.warn(f"Error: fleetctl {verb} did not finish within {args.timeout:g} s (--timeout): "
                 f"what it sent may still be under way; see fleetctl list-unit-files")
        return 1

    return bounded


def configure_blocking_units(parser: argparse.ArgumentParser) -> None:
    """UNIT... plus --no-block/--block-attempts: the arguments of stop, unload and destroy."""
    add_units_arg(parser)
    add_block_flags(parser)


def add_create_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--replace",
        action="store_true",
        help="replace the unit in the registry if the local file differs",
    )
    parser.add_argument("--sign", action="store_true", help=argparse.SUPPRESS)


def add_table_flags(
    parser: argparse.ArgumentParser, default_fields: str, full: bool = True
) -> None:
    parser.add_argument("--no-legend", action="store_true", help="do not print a header row")
    parser.add_argument(  # None = the default, so a command can tell it was not given
        "--fields", default=None, help=f"columns to print (default {default_fields})"
    )
    if full:
        parser.add_argument(
            "--full",
            "-l",
            "--l",
            dest="full",
            action="store_true",
            help="do not shorten machine ids and hashes",
        )


def names_of(args: Iterable[str]) -> list[str]:
    return [normalize_name(arg) for arg in args]


async def find_units(
    ctx: Context, args: Iterable[str], templates_too: bool = False
) -> list[schema.Unit]:
    """The registry's units for these arguments, in argument order; missing ones skipped.

    A template stands for its instances in the registry, followed by the template itself
    when `templates_too` (destroy). One GET for a single plain unit, else one listing.
    """
    names = names_of(args)
    listed = await _listing(ctx, names)
    found: dict[str, schema.Unit] = {}
    for name in names:
        for unit in _units_for(name, listed, templates_too):
            found.setdefault(unit.name or "", unit)
    return list(found.values())


async def _listing(ctx: Context, names: list[str]) -> dict[str, schema.Unit]:
    if len(names) == 1 and not templates.is_template(names[0]):
        unit = await ctx.client.get_unit(names[0])
        return {names[0]: unit} if unit is not None else {}
    return {u.name or "": u for u in await ctx.client.list_units()}


def _units_for(name: str, listed: dict[str, schema.Unit], templates_too: bool) -> list[schema.Unit]:
    if not templates.is_template(name):
        return [listed[name]] if name in listed else []
    wanted = templates.instances_in(name, listed) + ([name] if templates_too else [])
    return [listed[n] for n in wanted if n in listed]


def go_list(names: Iterable[str]) -> str:
    """Go's %v of a string slice: `[a.service b.service]`."""
    return "[" + " ".join(names) + "]"
