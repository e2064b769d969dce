"""cordon, drain, uncordon and unlock: take a machine out of scheduling, empty it, put it back.

MACHINE is a machine id, a unique prefix of one, or `--self` (the machine whose fleetd answers:
for scripts that run on the host itself). The state lives in the registry and outlives a
reboot; `drain --wait` follows the drain until nothing movable is left, and `drain --lock`
first takes the cluster-wide maintenance lock, which `uncordon` (or `unlock`) gives back
(fleetctl.draining).
"""

from __future__ import annotations

import argparse

from fleetctl import draining
from fleetctl.client import ApiError
from fleetctl.commands.base import Command, Context

SELF = "self"


def add_machine_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("machine", nargs="?", metavar="MACHINE",
                        help="machine id or unique id prefix")
    parser.add_argument("--self", dest="self_machine", action="store_true",
                        help="the machine whose fleetd answers (for scripts run on the host)")


def machine_of(ctx: Context, args: argparse.Namespace) -> str | None:
    """The MACHINE argument, or `self`; None (after saying why) when it is missing or doubled."""
    if bool(args.machine) == bool(args.self_machine):
        ctx.warn("Error: give exactly one of MACHINE or --self")
        return None
    return SELF if args.self_machine else str(args.machine)


async def change(ctx: Context, args: argparse.Namespace, state: str) -> str | None:
    """Ask for `state`; the resolved machine id, or None after printing fleetd's refusal."""
    machine = machine_of(ctx, args)
    if machine is None:
        return None
    if_locked = bool(getattr(args, "if_locked", False))
    try:
        done = await ctx.client.set_machine_state(machine, state, if_locked)
    except ApiError as exc:
        ctx.warn(f"Error: {exc.message}")
        return None
    short = done.machine_id[:8]
    if if_locked and not done.unlocked:
        ctx.say(f"Machine {short} holds no maintenance lock: left {done.state}")
    elif done.previous == done.state:
        ctx.say(f"Machine {short} is already {_word(done.state)}")
    else:
        ctx.say(f"Machine {short} {_verb(state)} (was {done.previous})")
    if done.unlocked:
        ctx.say(f"Maintenance lock of machine {short} released")
    return done.machine_id


def _word(state: str) -> str:
    return {"ready": "ready (not cordoned)"}.get(state, state)


def _verb(state: str) -> str:
    return {"ready": "uncordoned", "cordoned": "cordoned", "draining": "draining"}[state]


async def run_cordon(ctx: Context, args: argparse.Namespace) -> int:
    return 0 if await change(ctx, args, "cordoned") else 1


async def run_uncordon(ctx: Context, args: argparse.Namespace) -> int:
    return 0 if await change(ctx, args, "ready") else 1


async def run_drain(ctx: Context, args: argparse.Namespace) -> int:
    deadline = draining.Deadline(args.timeout)
    if args.lock:
        machine = machine_of(ctx, args)
        if machine is None or not await draining.take_lock(ctx, machine, args.max_parallel, deadline):
            return 1
    machine = await change(ctx, args, "draining")
    if machine is None:
        return 1
    if not args.wait:
        return 0
    return await draining.wait_drained(ctx, machine, deadline)


async def run_unlock(ctx: Context, args: argparse.Namespace) -> int:
    machine = machine_of(ctx, args)
    if machine is None:
        return 1
    try:
        done = await ctx.client.unlock_machine(machine)
    except ApiError as exc:
        ctx.warn(f"Error: {exc.message}")
        return 1
    ctx.say(f"Maintenance lock of machine {done.machine_id[:8]} released")
    return 0


def _configure_drain(parser: argparse.ArgumentParser) -> None:
    add_machine_arg(parser)
    parser.add_argument("--wait", action="store_true",
                        help="wait until nothing movable is left on the machine, printing progress")
    parser.add_argument("--lock", action="store_true",
                        help="first take the cluster-wide maintenance lock (wait while it is busy)")
    parser.add_argument("--max-parallel", type=int, default=1, metavar="N",
                        help="with --lock: at most N machines hold the lock at once (default 1)")
    parser.add_argument("--timeout", type=float, default=draining.DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="with --wait or --lock: give up after SECONDS in all, say what is left "
                        f"and exit 1 (default {draining.DEFAULT_TIMEOUT:g}; 0 = no limit)")


CORDON = Command(
    "cordon",
    "Mark a machine unschedulable: it gets no new units, and keeps those it has",
    "fleetctl cordon MACHINE|--self",
    add_machine_arg,
    run_cordon,
)
DRAIN = Command(
    "drain",
    "Cordon a machine and move its units to other machines (global units stay)",
    "fleetctl drain MACHINE|--self [--lock [--max-parallel N]] [--wait] [--timeout SECONDS]",
    _configure_drain,
    run_drain,
)
UNLOCK = Command(
    "unlock",
    "Release the maintenance lock a machine holds (for a host that will not come back)",
    "fleetctl unlock MACHINE|--self",
    add_machine_arg,
    run_unlock,
)
def _configure_uncordon(parser: argparse.ArgumentParser) -> None:
    add_machine_arg(parser)
    parser.add_argument("--if-locked", action="store_true",
                        help="only if the machine holds the maintenance lock (for a unit that "
                        "uncordons after the reboot of a rolling maintenance)")


UNCORDON = Command(
    "uncordon",
    "Make a cordoned or drained machine schedulable again; give up its maintenance lock",
    "fleetctl uncordon MACHINE|--self [--if-locked]",
    _configure_uncordon,
    run_uncordon,
)
