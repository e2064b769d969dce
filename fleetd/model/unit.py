"""Registry records about units: the unit itself and its placement on a machine."""

from __future__ import annotations

from dataclasses import dataclass

from fleetd.model.states import TargetState


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit in the registry: its name, the hash of its file, and its desired state.

    `is_global` mirrors the file's `[X-Fleet] Global=`, so the registry can keep the small
    global/ prefix that every agent watches in step with the unit record.
    """

    name: str
    hash: str
    desired: TargetState
    is_global: bool = False


@dataclass(frozen=True, slots=True)
class Assignment:
    """The leader's decision that `unit` runs on `machine`, with the hash and state to reach."""

    unit: str
    machine: str
    hash: str
    desired: TargetState
