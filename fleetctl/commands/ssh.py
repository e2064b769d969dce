"""ssh: open a shell (or run a command) on a machine or on the host of a unit.

Finds the address through the API (`fleetctl.sshcmd` decides), then replaces fleetctl with
the system `ssh` client (after the API client and any --tunnel are closed), so keys, agent and
~/.ssh/config are the user's own. The global SSH flags (--ssh-username, --strict-host-key-checking,
--known-hosts-file, --ssh-timeout) apply; with --tunnel the connection hops through the tunnel host.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from fleetctl import sshcmd
from fleetctl.commands.base import Command, Context
from fleetctl.render import is_global


def _exec(argv: Sequence[str]) -> None:
    sys.stdout.flush()
    os.execvp(argv[0], list(argv))


EXEC: list[Callable[[Sequence[str]], None]] = [_exec]  # tests replace it


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--machine", "-m", default="", help="machine id (a unique prefix is enough)")
    parser.add_argument("--unit", "-u", default="", help="a unit: connect to the machine running it")
    parser.add_argument("--forward-agent", "-A", "--A", dest="forward_agent", action="store_true",
                        help="forward the local ssh agent")
    parser.add_argument("--ssh-port", type=int, default=22, help="port of the remote sshd")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="[MACHINE|UNIT] [--] [CMD...]")


def split_args(args: argparse.Namespace) -> tuple[str, str, list[str]]:
    """(lookup, by, remote command) from the flags and positional words."""
    words = list(args.args)
    if args.unit or args.machine:
        lookup, by = (args.unit, "unit") if args.unit else (args.machine, "machine")
    elif words:
        lookup, by, words = words[0], "", words[1:]
    else:
        raise sshcmd.SshError("Provide one machine or unit.")
    return lookup, by, words[1:] if words[:1] == ["--"] else words


async def run_ssh(ctx: Context, args: argparse.Namespace) -> int:
    try:
        lookup, by, command = split_args(args)
        machines = await ctx.client.list_machines()
        units = {u.name or "": u for u in await ctx.client.list_units()}
        globals_ = frozenset(name for name, unit in units.items() if is_global(unit))
        address = sshcmd.resolve(lookup, machines, units, globals_, by)
    except sshcmd.SshError as exc:
        ctx.warn(str(exc))
        return 1
    if ctx.ssh.strict:  # ssh stores new host keys there, but makes no directory for it
        Path(ctx.ssh.known_hosts).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    opts = replace(ctx.ssh, interactive=True)  # ssh itself decides whether it can prompt
    ctx.handoff = sshcmd.command_line(address, command, args.ssh_port, args.forward_agent, opts)
    return 0


def hand_over(argv: list[str], err: TextIO) -> int:
    """Replace fleetctl with `argv` (ssh); 1 with a message if it cannot be run."""
    try:
        EXEC[0](argv)
    except OSError as exc:
        print(f"Error: cannot run ssh: {exc.strerror or exc}", file=err)
        return 1
    return 0


SSH = Command(
    "ssh",
    "Open interactive shell on a machine in the cluster",
    "fleetctl ssh [--machine=ID|--unit=NAME] [-A] [--ssh-port=N] {MACHINE|UNIT} [--] [CMD...]",
    configure,
    run_ssh,
)
