"""Filters of GET /fleet/v1/units (fleet had none, #1132): parsed and applied here, no I/O.

`?unitName=GLOB` (fleet's glob, as in Conflicts=: * ? [...]), `?desiredState=inactive|loaded|launched` and
`?machineID=ID` (units placed on that machine) combine with AND; pagination then runs over
what is left, so page tokens stay valid for one filter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fleetd.errors import InvalidInput
from fleetd.model.requirements import glob_match
from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment, Unit

MAX_PATTERN = 256


@dataclass(frozen=True, slots=True)
class UnitFilter:
    """What a listing keeps; None fields keep everything."""

    name_glob: str | None = None
    desired: TargetState | None = None
    machine: str | None = None

    @property
    def needs_placements(self) -> bool:
        return self.machine is not None

    def keeps(self, name: str, desired: Callable[[], TargetState], machine: str | None) -> bool:
        """Whether the unit `name` (placed on `machine`) passes; `desired` is asked only when
        the filter looks at the desired state (it decodes the unit)."""
        return ((self.name_glob is None or glob_match(self.name_glob, name))
                and (self.machine is None or machine == self.machine)
                and (self.desired is None or desired() is self.desired))


def parse_unit_filter(query: Mapping[str, str]) -> UnitFilter:
    """Read the query parameters; InvalidInput (400) names the one that is wrong."""
    glob, desired, machine = query.get("unitName"), query.get("desiredState"), query.get("machineID")
    if glob is not None and not 0 < len(glob) <= MAX_PATTERN:
        raise InvalidInput(f"unitName must be a pattern of 1 to {MAX_PATTERN} characters")
    if desired is not None and desired not in {s.value for s in TargetState}:
        raise InvalidInput(f'desiredState must be inactive, loaded or launched, not "{desired}"')
    if machine is not None and not (machine.isalnum() and machine.isascii() and len(machine) <= 64):
        raise InvalidInput(f'machineID "{machine}" is not a machine id')
    return UnitFilter(glob, TargetState(desired) if desired else None, machine)


def apply_unit_filter(units: Sequence[Unit], placed: Mapping[str, Assignment],
                      wanted: UnitFilter) -> list[Unit]:
    """The units `wanted` keeps, in the order given."""
    def machine(name: str) -> str | None:
        return placed[name].machine if name in placed else None

    return [u for u in units if wanted.keeps(u.name, lambda u=u: u.desired, machine(u.name))]
