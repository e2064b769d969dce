"""Blocking until units reach a state (fleet §1.4, with its documented bugs fixed).

Owns the poll cadence (every 250 ms; one attempt = ~2 s; `--block-attempts` N = N attempts,
0 = forever), the `Unit X launched on 113f16a7.../10.0.0.1` / `Triggered unit X start` lines, and
start's extra wait for systemd's ActiveState=active, which honours the same attempt budget.
While a unit waits, the engine's pending reason (why it cannot be placed) is printed to stderr
when it first appears and whenever it changes, so a wait that may last forever is not silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from fleetctl import render
from fleetctl.commands.base import Context
from fleetd.api import schema

POLL_INTERVAL = 0.25
ATTEMPT_SECONDS = 2.0


def polls_allowed(attempts: int) -> int | None:
    """How many polls the attempt budget allows; None means forever."""
    if attempts <= 0:
        return None
    return attempts * round(ATTEMPT_SECONDS / POLL_INTERVAL)


def triggered(ctx: Context, names: Sequence[str], verb: str) -> None:
    for name in names:
        ctx.say(f"Triggered unit {name} {verb}")


async def wait_for_states(
    ctx: Context, names: Sequence[str], verb: str, state: str, attempts: int, no_block: bool
) -> list[schema.Unit] | None:
    """Wait for every unit's current state; return them, or None if any timed out."""
    if no_block:
        triggered(ctx, names, verb)
        return []
    results = await asyncio.gather(*(_wait_one(ctx, n, state, attempts) for n in names))
    if any(r is None for r in results):
        return None
    return [u for u in results if u is not None]


async def _wait_one(ctx: Context, name: str, state: str, attempts: int) -> schema.Unit | None:
    budget = polls_allowed(attempts)
    polls, reason = 0, None
    while budget is None or polls < budget:
        unit = await ctx.client.get_unit(name)
        if unit is not None and _value(unit.current_state) == state:
            ctx.say(await _reached(ctx, unit, state))
            return unit
        reason = _report_reason(ctx, name, unit, reason)
        polls += 1
        await asyncio.sleep(POLL_INTERVAL)
    ctx.warn(f"timed out waiting for unit {name} to report state {state}")
    return None


def _report_reason(ctx: Context, name: str, unit: schema.Unit | None, last: str | None) -> str | None:
    """Print the unit's pending reason if it is new; return it as the last one seen."""
    reason = render.reason_legend(unit.pending_reason if unit is not None else None) or None
    if reason is not None and reason != last:
        ctx.warn(f"Unit {name} cannot be placed yet: {reason}")
    return reason


async def _reached(ctx: Context, unit: schema.Unit, state: str) -> str:
    line = f"Unit {unit.name} {state}"
    if unit.machine_id and state != "inactive":
        ips = render.ips(await ctx.client.list_machines())
        line += " on " + render.machine_legend(unit.machine_id, ips.get(unit.machine_id, ""), False)
    return line


def _value(state: object) -> str:
    return str(getattr(state, "value", state or ""))


async def wait_for_active(ctx: Context, units: Sequence[schema.Unit], attempts: int) -> bool:
    """After `launched`: wait until systemd reports each unit active on its machine."""
    results = await asyncio.gather(*(_wait_active(ctx, u, attempts) for u in units))
    return all(results)


async def _wait_active(ctx: Context, unit: schema.Unit, attempts: int) -> bool:
    name, machine = unit.name or "", unit.machine_id
    budget, polls, last = polls_allowed(attempts), 0, "unknown"
    while budget is None or polls < budget:
        states = await ctx.client.list_states(unit_name=name, machine_id=machine)
        state = next((s for s in states if s.name == name), None)
        if state is not None:
            last = f"{state.systemd_active_state}/{state.systemd_sub_state}"
            if state.systemd_active_state == "failed":
                ctx.warn(f"Unit {name} failed to start: systemd reports {last}")
                return False
            if state.systemd_active_state == "active" and state.systemd_load_state == "loaded":
                return True
        polls += 1
        await asyncio.sleep(POLL_INTERVAL)
    ctx.warn(f"timed out waiting for unit {name} to become active in systemd (last state {last})")
    return False


async def wait_until_gone(ctx: Context, name: str, attempts: int) -> bool:
    """destroy: wait until no machine reports a state for the unit any more."""
    budget, polls = polls_allowed(attempts), 0
    while budget is None or polls < budget:
        if not await ctx.client.list_states(unit_name=name):
            return True
        polls += 1
        await asyncio.sleep(POLL_INTERVAL)
    ctx.warn(f"timed out waiting for unit {name} to be removed from its machines")
    return False
