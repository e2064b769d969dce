"""Agent planning: the pure step from "what should run here" and "what is here" to systemd tasks.

Owns fleet's per-unit task table (docs/architecture.md) and the task order
unload < load < reload < stop < start, with one daemon-reload only when files changed, and
which assigned units the agent refuses outright (an invalid name) instead of planning them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum

from fleetd.model.names import refusal
from fleetd.model.states import TargetState


@dataclass(frozen=True, slots=True)
class Desired:
    """A unit this machine should have: its file hash and state (LOADED or LAUNCHED)."""

    name: str
    hash: str
    state: TargetState


@dataclass(frozen=True, slots=True)
class Current:
    """A unit as found on this machine: file hash ("" if the file is absent), started or not."""

    name: str
    hash: str
    launched: bool


class TaskKind(IntEnum):
    """Kinds of task, in the order they run within one pass."""

    UNLOAD = 0
    LOAD = 1
    RELOAD = 2
    STOP = 3
    START = 4


@dataclass(frozen=True, slots=True)
class Task:
    """One systemd operation on `unit` ("" for RELOAD, which is machine-wide)."""

    kind: TaskKind
    unit: str
    reason: str


def refused_names(names: Iterable[str]) -> dict[str, str]:
    """The names systemd or fleet would refuse, each with the reason to report. Such a unit can
    only come from a record written to etcd past the API; it never reaches planning."""
    return {name: f"invalid unit name: {why}" for name in names
            if (why := refusal(name)) is not None}


def plan_tasks(desired: Mapping[str, Desired], current: Mapping[str, Current]) -> tuple[Task, ...]:
    """Tasks that bring this machine from `current` to `desired`, in execution order."""
    tasks = [t for name in set(desired) | set(current) for t in _unit_tasks(desired, current, name)]
    if any(t.kind in (TaskKind.LOAD, TaskKind.UNLOAD) for t in tasks):
        tasks.append(Task(TaskKind.RELOAD, "", "unit files changed"))
    return tuple(sorted(tasks, key=lambda t: (t.kind, t.unit)))


def _unit_tasks(desired: Mapping[str, Desired], current: Mapping[str, Current], name: str) -> Iterator[Task]:
    want = desired.get(name)
    have = current.get(name, Current(name, "", False))
    if want is None:
        yield from _remove(have, "not assigned to this machine")
    elif want.state is TargetState.INACTIVE:
        yield from _remove(have, "desired state is inactive")
    elif not have.hash:
        yield from _install(want, "unit file is not present")
    elif have.hash != want.hash:
        yield Task(TaskKind.UNLOAD, name, f"unit file changed ({have.hash[:8]} -> {want.hash[:8]})")
        yield from _install(want, f"new unit file {want.hash[:8]}")
    else:
        yield from _converge(want, have)


def _remove(have: Current, reason: str) -> Iterator[Task]:
    if have.hash or have.launched:
        yield Task(TaskKind.UNLOAD, have.name, reason)


def _install(want: Desired, reason: str) -> Iterator[Task]:
    yield Task(TaskKind.LOAD, want.name, reason)
    if want.state is TargetState.LAUNCHED:
        yield Task(TaskKind.START, want.name, "desired state is launched")


def _converge(want: Desired, have: Current) -> Iterator[Task]:
    if want.state is TargetState.LAUNCHED and not have.launched:
        yield Task(TaskKind.START, want.name, "desired state is launched")
    elif want.state is TargetState.LOADED and have.launched:
        yield Task(TaskKind.STOP, want.name, "desired state is loaded")
