"""Where global units run (pure): the one rule the engine and every agent share.

A global unit runs on each machine whose metadata it accepts, unless it conflicts (either
direction) with a unit assigned there or with a global unit accepted there before it (name order).
The engine uses this to count global units toward load, resources and conflicts; the agent uses it
to decide which global units to run on its own host. Capacity is not checked for global units.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleetd.model.machine import Machine
from fleetd.model.requirements import Requirements, conflicts, metadata_matches


def globals_on(
    machine: Machine, global_units: Mapping[str, Requirements], resident: Mapping[str, Requirements]
) -> tuple[str, ...]:
    """Names of the global units that run on `machine`, given the units assigned to it."""
    accepted: list[str] = []
    for name in sorted(global_units):
        req = global_units[name]
        if not metadata_matches(req, machine.metadata):
            continue
        if any(conflicts(name, req, other, other_req) for other, other_req in resident.items()):
            continue
        if any(conflicts(name, req, other, global_units[other]) for other in accepted):
            continue
        accepted.append(name)
    return tuple(accepted)
