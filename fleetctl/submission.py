"""What submit, load and start send: one POST /units for everything they write and activate.

Owns the batch, built without I/O: each unit a plan writes, once and in plan order, created or
replaced with the target state when the command activates it (otherwise with none, so it is
stored `inactive`), then each other unit to activate whose stored desired state differs. After
the one send: fleet's `Unit X inactive` line (with --no-block `Triggered unit X submit`) for
every unit the POST created or replaced, and an entry the server refused as an error.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from fleetctl.client import ApiError
from fleetctl.commands.base import Context
from fleetctl.resolve import Plan, Registry
from fleetd.api import schema
from fleetd.model.states import TargetState
from fleetd.model.unitfile import UnitFile


def entries(
    plans: Sequence[Plan],
    activate: Collection[str] = (),
    target: TargetState | None = None,
    registry: Registry | None = None,
) -> list[schema.Unit]:
    """The POST body's units: the writes, then the desired-state changes still needed."""
    wanted, options, stored = set(activate), _Options(), registry or {}
    writes: dict[str, UnitFile] = {}
    for plan in plans:
        if plan.unitfile is not None:
            writes.setdefault(plan.name, plan.unitfile)
    batch = [
        schema.Unit(name=name, options=options.of(unitfile),
                    desired_state=target if name in wanted else None)
        for name, unitfile in writes.items()
    ]
    return batch + [
        schema.Unit(name=name, desired_state=target)
        for name in dict.fromkeys(activate)
        if name not in writes and (name not in stored or stored[name].desired_state != target)
    ]


class _Options:
    """Wire options per content: instances of one template share one list."""

    def __init__(self) -> None:
        self._by_hash: dict[str, list[schema.UnitOption]] = {}

    def of(self, unitfile: UnitFile) -> list[schema.UnitOption]:
        digest = unitfile.hash
        if digest not in self._by_hash:
            self._by_hash[digest] = [
                schema.UnitOption(section=o.section, name=o.name, value=o.value)
                for o in unitfile.options
            ]
        return self._by_hash[digest]


async def send(ctx: Context, batch: Sequence[schema.Unit], no_block: bool) -> None:
    """POST the batch (no request when it is empty) and print a line per unit written.

    Raises the client's errors: ApiError when the server refused the request (it wrote
    nothing) or an entry redone after a race (the other entries were written).
    """
    results = await ctx.client.submit_units(batch) if batch else []
    for result in results:
        if result.status == 201:
            ctx.say(f"Triggered unit {result.name} submit" if no_block else f"Unit {result.name} inactive")
    refused = next((r for r in results if r.status >= 400), None)
    if refused is not None:
        raise ApiError(refused.status, f'unit "{refused.name}": {refused.message}')
