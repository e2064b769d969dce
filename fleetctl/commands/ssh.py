"""ssh: open a shell (or run a command) on a machine or on the host of a unit.

Finds the address through the API (`fleetctl.sshcmd` decides), then replaces fleetctl with
the system `ssh` client, so keys, agent, known hosts and ~/.ssh/config are the user's own.
The remote user is the current user unless `--ssh-user` / FLEETCTL_SSH_USER is given.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

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
    parser.add_argument("--ssh-user", "--ssh-username", dest="ssh_user", default=None,
                        help="remote user (default FLEETCTL_SSH_USER, else the current user)")
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
    user = args.ssh_user or os.environ.get("FLEETCTL_SSH_USER") or None
    argv = sshcmd.command_line(address, command, args.ssh_port, user, args.forward_agent)
    try:
        EXEC[0](argv)
    except OSError as exc:
        ctx.warn(f"Error: cannot run ssh: {exc.strerror or exc}")
        return 1
    return 0


SSH = Command(
    "ssh",
    "Open interactive shell on a machine in the cluster",
    "fleetctl ssh [--machine=ID|--unit=NAME] [-A] [--ssh-port=N] {MACHINE|UNIT} [--] [CMD...]",
    configure,
    run_ssh,
)
