"""Stall reports (fleetd.stall): an overdue pass is logged once per period, with where it waits."""

from __future__ import annotations

import asyncio
from typing import Any

from fleetd.stall import StallWatch, stack_of


class Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append((event, fields))


async def _stuck_in_a_systemd_job(watch: StallWatch, release: asyncio.Event) -> None:
    watch.begin()
    try:
        await _wait_for_job(release)
    finally:
        watch.end()


async def _wait_for_job(release: asyncio.Event) -> None:
    await release.wait()


async def test_an_overdue_pass_is_reported_with_its_stack_once_per_period() -> None:
    log, release = Log(), asyncio.Event()
    watch = StallWatch("agent pass", 30.0, log)
    task = asyncio.create_task(_stuck_in_a_systemd_job(watch, release))
    await asyncio.sleep(0)
    began = asyncio.get_running_loop().time()
    for offset in (10.0, 31.0, 45.0, 62.0):  # 61 - 31 can round to 29.99...
        watch.check(began + offset)
    assert [event for event, _ in log.warnings] == ["agent pass still running"] * 2
    stack = log.warnings[0][1]["stack"]
    assert any("_stuck_in_a_systemd_job" in f for f in stack)
    assert any("_wait_for_job" in f for f in stack)
    release.set()
    await task
    watch.check(began + 200.0)  # the pass ended: nothing more to say
    assert len(log.warnings) == 2


async def test_no_report_without_a_pass() -> None:
    log = Log()
    watch = StallWatch("agent pass", 1.0, log)
    watch.check(1000.0)
    assert log.warnings == []


async def test_stack_of_a_finished_task_is_empty() -> None:
    task = asyncio.create_task(asyncio.sleep(0))
    await task
    assert stack_of(task) == []


async def _events(release: asyncio.Event):  # type: ignore[no-untyped-def]
    await _wait_for_job(release)
    yield 1


async def _follow_a_watch(release: asyncio.Event) -> None:
    async for _ in _events(release):
        pass


async def test_the_stack_goes_into_an_async_generator() -> None:
    """A watch is an async generator: the report must show where inside it the pass waits."""
    release = asyncio.Event()
    task = asyncio.create_task(_follow_a_watch(release))
    await asyncio.sleep(0)
    stack = stack_of(task)
    assert [f.rsplit(" ", 1)[-1] for f in stack[:-1]] == ["_follow_a_watch", "_events",
                                                        "_wait_for_job", "wait"]
    assert stack[-1].startswith("awaiting ")
    release.set()
    await task
