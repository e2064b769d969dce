"""Blocking until units reach a state (as fleet's fleetctl blocked, with its known bugs fixed).

Owns the poll cadence (every 250 ms; one attempt = ~2 s; `--block-attempts` N = N attempts,
0 = forever), the `Unit X launched on 113f16a7.../10.0.0.1` / `Triggered unit X start` lines, and
start's extra wait for systemd's ActiveState=active, which honours the same attempt budget.
Every poll reads all the units still waited for at once: one listing (with its pages), or one
GET when a single unit is left; never a request per unit. While a unit waits, the engine's
pending reason (why it cannot be placed) is printed to stderr when it first appears and whenever
it changes, so a wait that may last forever is not silent. On a terminal, stderr also carries one
updating progress line (fleetctl.progress): `waiting for 3 units: 1 launched, 2 loaded (attempt 4)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from fleetctl import progress, render
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


async def poll_until(check: Callable[[], Awaitable[bool]], attempts: int) -> bool:
    """Run `check` every POLL_INTERVAL until it returns True; False once the budget is spent."""
    budget, polls = polls_allowed(attempts), 0
    while budget is None or polls < budget:
        if await check():
            return True
        polls += 1
        await asyncio.sleep(POLL_INTERVAL)
    return False


async def _units(ctx: Context, names: Sequence[str]) -> dict[str, schema.Unit]:
    """The named units as the API shows them now (absent ones missing)."""
    if len(names) == 1:
        unit = await ctx.client.get_unit(names[0])
        return {names[0]: unit} if unit is not None else {}
    return {u.name or "": u for u in await ctx.client.list_units()}


async def _states(ctx: Context, names: Sequence[str]) -> dict[str, list[schema.UnitState]]:
    """Unit name -> the states machines report for it now."""
    found = await ctx.client.list_states(unit_name=names[0] if len(names) == 1 else None)
    grouped: dict[str, list[schema.UnitState]] = {}
    for state in found:
        grouped.setdefault(state.name, []).append(state)
    return grouped


# current state ----------------------------------------------------------------------------------


async def wait_for_states(
    ctx: Context, names: Sequence[str], verb: str, state: str, attempts: int, no_block: bool
) -> list[schema.Unit] | None:
    """Wait for every unit's current state; return them, or None if any timed out."""
    if no_block:
        triggered(ctx, names, verb)
        return []
    waiter = _StateWaiter(ctx, names, state)
    try:
        if not waiter.pending or await poll_until(waiter.poll, attempts):
            return [waiter.found[name] for name in waiter.names]
    finally:
        waiter.line.clear()
    for name in waiter.pending:
        ctx.warn(f"timed out waiting for unit {name} to report state {state}")
    return None


class _StateWaiter:
    """Units waited for until they report `state`: those arrived, and the others' last reason."""

    def __init__(self, ctx: Context, names: Sequence[str], state: str) -> None:
        self.ctx, self.state, self.names = ctx, state, list(dict.fromkeys(names))
        self.found: dict[str, schema.Unit] = {}
        self.reasons: dict[str, str | None] = {}
        self.line, self.polls = progress.Line(ctx.err), 0

    @property
    def pending(self) -> list[str]:
        return [name for name in self.names if name not in self.found]

    async def poll(self) -> bool:
        """One read of every pending unit; print those that arrived and new reasons."""
        units = await _units(self.ctx, self.pending)
        arrived = [units[n] for n in self.pending if n in units and self._arrived(units[n])]
        self.line.clear()
        for line in await _reached(self.ctx, arrived, self.state):
            self.ctx.say(line)
        self.found.update((unit.name or "", unit) for unit in arrived)
        for name in self.pending:
            self.reasons[name] = _report_reason(self.ctx, name, units.get(name), self.reasons.get(name))
        self._show(units)
        return not self.pending

    def _show(self, units: dict[str, schema.Unit]) -> None:
        now = {n: self.state for n in self.found}
        now.update((n, _value(units[n].current_state) if n in units else "missing") for n in self.pending)
        counts = {self.state: 0} | {s: 0 for s in sorted(set(now.values()))}
        for current in now.values():
            counts[current] += 1
        attempt = progress.attempt_of(self.polls, round(ATTEMPT_SECONDS / POLL_INTERVAL))
        self.polls += 1
        if self.pending:
            self.line.show(progress.waiting_text(len(self.names), counts, attempt))

    def _arrived(self, unit: schema.Unit) -> bool:
        return _value(unit.current_state) == self.state


def _report_reason(ctx: Context, name: str, unit: schema.Unit | None, last: str | None) -> str | None:
    """Print the unit's pending reason if it is new; return it as the last one seen."""
    reason = render.reason_legend(unit.pending_reason if unit is not None else None) or None
    if reason is not None and reason != last:
        ctx.warn(f"Unit {name} cannot be placed yet: {reason}")
    return reason


async def _reached(ctx: Context, units: Sequence[schema.Unit], state: str) -> list[str]:
    """`Unit X state`, with ` on machine.../ip` when placed (one machine listing for all)."""
    placed = state != "inactive" and any(u.machine_id for u in units)
    ips = render.ips(await ctx.client.list_machines()) if placed else {}
    lines = []
    for unit in units:
        line = f"Unit {unit.name} {state}"
        if unit.machine_id and state != "inactive":
            line += " on " + render.machine_legend(unit.machine_id, ips.get(unit.machine_id, ""), False)
        lines.append(line)
    return lines


def _value(state: object) -> str:
    return str(getattr(state, "value", state or ""))


# systemd active ---------------------------------------------------------------------------------


async def wait_for_active(ctx: Context, units: Sequence[schema.Unit], attempts: int) -> bool:
    """After `launched`: wait until systemd reports each unit active on its machine."""
    waiter = _ActiveWaiter(ctx, units)
    if waiter.machines and not await poll_until(waiter.poll, attempts):
        for name in waiter.machines:
            ctx.warn(f"timed out waiting for unit {name} to become active in systemd "
                     f"(last state {waiter.last[name]})")
        return False
    return not waiter.failed


class _ActiveWaiter:
    """Units (name -> assigned machine) waited for until systemd reports them active there."""

    def __init__(self, ctx: Context, units: Sequence[schema.Unit]) -> None:
        self.ctx = ctx
        self.machines = {u.name or "": u.machine_id for u in units}
        self.last = dict.fromkeys(self.machines, "unknown")
        self.failed = False

    async def poll(self) -> bool:
        """One read of the states; settle each unit that is active or failed."""
        states = await _states(self.ctx, list(self.machines))
        for name, machine in list(self.machines.items()):
            found = [s for s in states.get(name, []) if machine is None or s.machine_id == machine]
            if found:
                self._settle(name, found[0])
        return not self.machines

    def _settle(self, name: str, state: schema.UnitState) -> None:
        self.last[name] = f"{state.systemd_active_state}/{state.systemd_sub_state}"
        if state.systemd_active_state == "failed":
            self.ctx.warn(f"Unit {name} failed to start: systemd reports {self.last[name]}")
            self.failed = True
            del self.machines[name]
        elif state.systemd_active_state == "active" and state.systemd_load_state == "loaded":
            del self.machines[name]


# gone -------------------------------------------------------------------------------------------


async def wait_until_gone(ctx: Context, names: Sequence[str], attempts: int) -> list[str]:
    """destroy: wait until no machine reports a state for the units; return those gone."""
    left, line, polls = set(names), progress.Line(ctx.err), [0]

    async def poll() -> bool:
        left.intersection_update(await _states(ctx, sorted(left)))
        counts = {"removed": len(names) - len(left), "still reported": len(left)}
        if left:
            line.show(progress.waiting_text(len(names), counts, progress.attempt_of(
                polls[0], round(ATTEMPT_SECONDS / POLL_INTERVAL))))
        polls[0] += 1
        return not left

    if left:
        try:
            await poll_until(poll, attempts)
        finally:
            line.clear()
    for name in names:
        if name in left:
            ctx.warn(f"timed out waiting for unit {name} to be removed from its machines")
    return [name for name in names if name not in left]
