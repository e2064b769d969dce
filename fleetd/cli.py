"""`fleetd` command line: parse flags, load configuration, configure logging, run the server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import sys

from fleetd import __version__
from fleetd.config import load_config
from fleetd.errors import ConfigError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fleetd", description="fleetd: the per-host daemon of a fleet cluster (agent, engine, API).")
    parser.add_argument("--config", metavar="PATH",
                        help="config file (default /etc/fleet/fleet.conf if present); "
                             "FLEET_<KEY> environment variables override it")
    parser.add_argument("--version", action="version", version=f"fleetd version {__version__}")
    parser.add_argument("--stop-at-most-once", action="store_true",
                        help="stop this host's AtMostOnce units and exit (fleet.service runs this "
                             "after fleetd stopped, for whatever reason)")
    parser.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.extra == ["version"]:
        print(f"fleetd version {__version__}")
        return 0
    if args.extra:
        print("fleetd takes no arguments. Did you mean to invoke fleetctl instead?", file=sys.stderr)
        return 2
    if args.stop_at_most_once:
        return _stop_at_most_once(args.config)
    with contextlib.suppress(OSError, ValueError, AttributeError):  # stderr may have no fd
        faulthandler.enable()  # a watchdog kill (SIGABRT) leaves every thread's stack in the journal
    from fleetd import logs, server  # deferred: imports the I/O libraries

    try:
        cfg, ignored = load_config(args.config)
        logs.configure(cfg.verbosity)
        if ignored:
            logs.get_logger("config").warning("ignoring unknown or deprecated keys", keys=ignored)
        asyncio.run(server.run(cfg, args.config))
    except ConfigError as exc:
        print(f"fleetd: configuration error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def _stop_at_most_once(config: str | None) -> int:
    from fleetd.stop_at_most_once import stop_at_most_once

    try:
        cfg, _ = load_config(config)
    except ConfigError as exc:
        print(f"fleetd: configuration error: {exc}", file=sys.stderr)
        return 1
    return stop_at_most_once(cfg.units_directory)
