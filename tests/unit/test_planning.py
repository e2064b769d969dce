"""Agent planning: fleet's per-unit task table and the task order within one pass."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetd.agent.planning import Current, Desired, Task, TaskKind, plan_tasks
from fleetd.model.states import TargetState

UNLOAD, LOAD, RELOAD, STOP, START = (
    TaskKind.UNLOAD,
    TaskKind.LOAD,
    TaskKind.RELOAD,
    TaskKind.STOP,
    TaskKind.START,
)
LOADED, LAUNCHED, INACTIVE = TargetState.LOADED, TargetState.LAUNCHED, TargetState.INACTIVE
A = "a.service"


def kinds(desired: list[Desired], current: list[Current]) -> list[tuple[TaskKind, str]]:
    tasks = plan_tasks({d.name: d for d in desired}, {c.name: c for c in current})
    return [(t.kind, t.unit) for t in tasks]


@pytest.mark.parametrize(
    ("desired", "current", "expected"),
    [
        # not desired, present locally -> unload
        ([], [Current(A, "h1", False)], [(UNLOAD, A), (RELOAD, "")]),
        ([], [Current(A, "h1", True)], [(UNLOAD, A), (RELOAD, "")]),
        ([Desired(A, "h1", INACTIVE)], [Current(A, "h1", True)], [(UNLOAD, A), (RELOAD, "")]),
        # not desired, not present -> nothing
        ([], [Current(A, "", False)], []),
        ([], [], []),
        # desired, absent -> load (+ start)
        ([Desired(A, "h1", LOADED)], [], [(LOAD, A), (RELOAD, "")]),
        ([Desired(A, "h1", LAUNCHED)], [], [(LOAD, A), (RELOAD, ""), (START, A)]),
        ([Desired(A, "h1", LAUNCHED)], [Current(A, "", False)], [(LOAD, A), (RELOAD, ""), (START, A)]),
        # hash differs -> unload, load (+ start)
        ([Desired(A, "h2", LOADED)], [Current(A, "h1", False)], [(UNLOAD, A), (LOAD, A), (RELOAD, "")]),
        (
            [Desired(A, "h2", LAUNCHED)],
            [Current(A, "h1", True)],
            [(UNLOAD, A), (LOAD, A), (RELOAD, ""), (START, A)],
        ),
        # same file: start or stop only, no reload
        ([Desired(A, "h1", LAUNCHED)], [Current(A, "h1", False)], [(START, A)]),
        ([Desired(A, "h1", LOADED)], [Current(A, "h1", True)], [(STOP, A)]),
        # converged
        ([Desired(A, "h1", LAUNCHED)], [Current(A, "h1", True)], []),
        ([Desired(A, "h1", LOADED)], [Current(A, "h1", False)], []),
    ],
)
def test_task_table(
    desired: list[Desired], current: list[Current], expected: list[tuple[TaskKind, str]]
) -> None:
    assert kinds(desired, current) == expected


def test_tasks_sorted_by_kind_then_name_with_one_reload() -> None:
    desired = [
        Desired("c.service", "h1", LAUNCHED),
        Desired("b.service", "h1", LOADED),
        Desired("d.service", "h1", LAUNCHED),
    ]
    current = [
        Current("z.service", "h9", True),
        Current("b.service", "h1", True),
        Current("d.service", "h1", False),
        Current("a.service", "h9", False),
    ]
    assert kinds(desired, current) == [
        (UNLOAD, "a.service"),
        (UNLOAD, "z.service"),
        (LOAD, "c.service"),
        (RELOAD, ""),
        (STOP, "b.service"),
        (START, "c.service"),
        (START, "d.service"),
    ]


def test_every_task_has_a_reason() -> None:
    tasks = plan_tasks({A: Desired(A, "h2", LAUNCHED)}, {A: Current(A, "h1", True)})
    assert all(isinstance(t, Task) and t.reason for t in tasks)
    assert "changed" in tasks[0].reason


_hash = st.sampled_from(["", "h1", "h2"])
_names = st.sampled_from(["a.service", "b.service", "c.service"])


@given(
    st.dictionaries(_names, st.tuples(st.sampled_from(["h1", "h2"]), st.sampled_from([LOADED, LAUNCHED]))),
    st.dictionaries(_names, st.tuples(_hash, st.booleans())),
)
def test_executing_the_plan_converges(
    want: dict[str, tuple[str, TargetState]], have: dict[str, tuple[str, bool]]
) -> None:
    desired = {n: Desired(n, h, s) for n, (h, s) in want.items()}
    current = {n: Current(n, h, launched) for n, (h, launched) in have.items()}
    for task in plan_tasks(desired, current):
        current = _execute(task, desired, current)
    assert plan_tasks(desired, current) == ()
    assert {n for n, c in current.items() if c.hash} == set(desired)


def _execute(task: Task, desired: dict[str, Desired], current: dict[str, Current]) -> dict[str, Current]:
    """A model of the agent's systemd: what each task does to the machine's state."""
    after = dict(current)
    if task.kind is TaskKind.UNLOAD:
        after.pop(task.unit, None)
    elif task.kind is TaskKind.LOAD:
        after[task.unit] = Current(task.unit, desired[task.unit].hash, False)
    elif task.kind in (TaskKind.START, TaskKind.STOP):
        assert task.unit in after and after[task.unit].hash, "start/stop of an unloaded unit"
        after[task.unit] = Current(task.unit, after[task.unit].hash, task.kind is TaskKind.START)
    return after
