"""`drain --wait`: follow a drain until nothing movable is left on the machine, or time out.

Every POLL_SECONDS one read of the machines (fleetd derives `drained`) and one of the units
placed on the machine. A line is printed whenever what is left changes: the units still to
move, and those that stay with the engine's reason. Exit 0 once the machine is drained (units
that cannot go anywhere may stay: they are listed), 1 after the timeout with what is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from fleetctl import render
from fleetctl.commands.base import Context
from fleetd.api import schema

POLL_SECONDS = 1.0
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


async def wait_drained(ctx: Context, machine: str, timeout: float) -> int:
    short, shown = machine[:8], None
    lines: list[str] = []
    try:
        async with asyncio.timeout(timeout if timeout > 0 else None):
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
