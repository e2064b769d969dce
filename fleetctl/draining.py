"""`drain --lock` and `drain --wait`: take the maintenance lock, follow a drain until nothing
movable is left on the machine, or time out (one --timeout for both).

The lock is asked for every LOCK_POLL_SECONDS while fleetd answers that it is busy (its message,
naming the holders, is printed once and whenever it changes).

Every POLL_SECONDS one read of the machines (fleetd derives `drained`) and one of the units
placed on the machine. A line is printed whenever what is left changes: the units still to
move, and those that stay with the engine's reason. Exit 0 once the machine is drained (units
that cannot go anywhere may stay: they are listed), 1 after the timeout with what is left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from fleetctl import render
from fleetctl.client import ApiError
from fleetctl.commands.base import Context
from fleetd.api import schema

POLL_SECONDS = 1.0
LOCK_POLL_SECONDS = 2.0
DEFAULT_TIMEOUT = 600.0


def left_lines(short: str, state: str, units: Sequence[schema.Unit]) -> list[str]:
    """What is left on the machine, in words (pure)."""
    moving = sorted(u.name or "" for u in units if not u.pending_reason)
    staying = sorted((u.name or "", render.reason_legend(u.pending_reason))
                     for u in units if u.pending_reason)
    lines = []
    if moving:
        lines.append(f"machine {short} ({state}): {len(moving)} unit(s) to move: {', '.join(moving)}")
    elif state != "drained":
        lines.append(f"machine {short} ({state}): units are stopping there")
    lines += [f"  {name} stays: {reason}" for name, reason in staying]
    return lines


async def _look(ctx: Context, machine: str) -> tuple[str, list[schema.Unit]]:
    machines = {m.id: m for m in await ctx.client.list_machines()}
    found = machines.get(machine)
    state = (found.state or "ready") if found is not None else "away"
    return state, await ctx.client.list_units(machine_id=machine)


class Deadline:
    """One --timeout for every step of a command (0: none)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.ends = time.monotonic() + timeout if timeout > 0 else None

    def remaining(self) -> float | None:
        return None if self.ends is None else max(0.0, self.ends - time.monotonic())


async def take_lock(ctx: Context, machine: str, max_parallel: int, deadline: Deadline) -> bool:
    """Hold a slot of the maintenance lock for `machine`, waiting while it is busy."""
    said = None
    try:
        async with asyncio.timeout(deadline.remaining()):
            while True:
                try:
                    held = await ctx.client.lock_machine(machine, max_parallel)
                except ApiError as exc:
                    if exc.code != 409:
                        ctx.warn(f"Error: {exc.message}")
                        return False
                    if exc.message != said:
                        ctx.say(f"waiting for the maintenance lock: {exc.message}")
                        said = exc.message
                    await asyncio.sleep(LOCK_POLL_SECONDS)
                    continue
                ctx.say(f"Maintenance lock taken by machine {held.machine_id[:8]}")
                return True
    except TimeoutError:
        ctx.warn(f"Error: the maintenance lock was not free within {deadline.timeout:g} s "
                 f"(--timeout): {said}; nothing changed")
        return False


async def wait_drained(ctx: Context, machine: str, deadline: Deadline) -> int:
    short, shown, timeout = machine[:8], None, deadline.timeout
    lines: list[str] = []
    try:
        async with asyncio.timeout(deadline.remaining()):
            while True:
                state, units = await _look(ctx, machine)
                lines = left_lines(short, state, units)
                if lines != shown:
                    for line in lines:
                        ctx.say(line)
                    shown = lines
                if state == "drained":
                    ctx.say(f"Machine {short} drained")
                    return 0
                if state in ("ready", "cordoned"):
                    ctx.warn(f"Error: machine {short} is {state} now: someone stopped the drain")
                    return 1
                await asyncio.sleep(POLL_SECONDS)
    except TimeoutError:
        ctx.warn(f"Error: machine {short} was not drained within {timeout:g} s (--timeout)")
        for line in lines:
            ctx.warn(line)
        return 1
