"""What every fleetctl command shares: the run context, the command record and common flags."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

from fleetctl.client import Client
from fleetd.api import schema
from fleetd.model.names import normalize_name

SIGN_WARNING = "WARNING: The signed/verified units feature is DEPRECATED and cannot be used."


@dataclass
class Context:
    """One command run: the API client and the two output streams."""

    client: Client
    out: TextIO
    err: TextIO

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
    parser.add_argument(
        "--fields", default=default_fields, help=f"columns to print (default {default_fields})"
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


async def find_units(ctx: Context, args: Iterable[str]) -> list[schema.Unit]:
    """The registry's units for these arguments, in argument order; missing ones skipped."""
    found = []
    for name in dict.fromkeys(names_of(args)):
        unit = await ctx.client.get_unit(name)
        if unit is not None:
            found.append(unit)
    return found


def go_list(names: Iterable[str]) -> str:
    """Go's %v of a string slice: `[a.service b.service]`."""
    return "[" + " ".join(names) + "]"
