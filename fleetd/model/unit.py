"""Registry records about units: the unit itself and its placement on a machine."""

from __future__ import annotations

from dataclasses import dataclass

from fleetd.model.states import TargetState


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit in the registry: its name, the hash of its file, and its desired state."""

    name: str
    hash: str
    desired: TargetState


@dataclass(frozen=True, slots=True)
class Assignment:
    """The leader's decision that `unit` runs on `machine`, with the hash and state to reach."""

    unit: str
    machine: str
    hash: str
    desired: TargetState
