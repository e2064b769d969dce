"""`fleetd` command line: parse flags, load configuration, configure logging, run the server.

`fleetd etcd-setup` (an operator's command, run with etcd's root user) creates or updates the
etcd user of one host with the permissions of its roles (`fleetd.registry.permissions`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import os
import sys

from fleetd import __version__
from fleetd.config import load_config
from fleetd.errors import ConfigError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fleetd", description="fleetd: the per-host daemon of a fleet cluster (agent, engine, API).",
        epilog="`fleetd etcd-setup --help`: make a host's etcd user for its roles (operators).")
    parser.add_argument("--config", metavar="PATH",
                        help="config file (default /etc/fleet/fleet.conf if present); "
                             "FLEET_<KEY> environment variables override it")
    parser.add_argument("--version", action="version", version=f"fleetd version {__version__}")
    parser.add_argument("--stop-at-most-once", action="store_true",
                        help="stop this host's AtMostOnce units and exit (fleet.service runs this "
                             "after fleetd stopped, for whatever reason)")
    parser.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def parse_setup_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fleetd etcd-setup",
        description="Create or update the etcd user of one host, with exactly the permissions its "
                    "roles need. Connects as the configuration says (etcd_servers, TLS files, "
                    "etcd_key_prefix), as etcd_username, which must hold etcd's root role here: "
                    "e.g. FLEET_ETCD_USERNAME=root FLEET_ETCD_PASSWORD_FILE=/root/etcd-root fleetd "
                    "etcd-setup ...")
    parser.add_argument("--config", metavar="PATH", help="config file, as for fleetd")
    parser.add_argument("--user", required=True, help="the host's etcd user (its etcd_username)")
    parser.add_argument("--password-file", required=True, metavar="PATH",
                        help="the user's password (mode 0600; the host's etcd_password_file)")
    parser.add_argument("--machine", required=True, metavar="ID",
                        help="the host's machine id (/etc/machine-id on the host)")
    parser.add_argument("--roles", default="agent,engine,api",
                        help="the host's roles, as in its fleet.conf (default: agent,engine,api)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["etcd-setup"]:
        return _etcd_setup(parse_setup_args(argv[1:]))
    args = parse_args(argv)
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


def _etcd_setup(args: argparse.Namespace) -> int:
    from fleetd import server  # deferred: imports the I/O libraries
    from fleetd.errors import FleetError

    try:
        cfg, _ = load_config(args.config, {**os.environ, "FLEET_ROLES": args.roles})
        print(asyncio.run(server.etcd_setup(cfg, args.user, args.password_file, args.machine)))
    except ConfigError as exc:
        print(f"fleetd etcd-setup: {exc}", file=sys.stderr)
        return 1
    except FleetError as exc:
        print(f"fleetd etcd-setup: etcd refused or failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _stop_at_most_once(config: str | None) -> int:
    from fleetd.stop_at_most_once import stop_at_most_once

    try:
        cfg, _ = load_config(config)
    except ConfigError as exc:
        print(f"fleetd: configuration error: {exc}", file=sys.stderr)
        return 1
    return stop_at_most_once(cfg.units_directory)
