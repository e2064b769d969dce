"""Loops that must never end (fleetd.loop.forever): one that does stops its group, loudly.

asyncio.TaskGroup drops a child that ends cancelled without the group asking, so before
`forever` a CancelledError leaking out of a library call inside the agent's watch ended that
watch silently, while the agent's loop ran on with a mirror that no longer heard anything.
"""

from __future__ import annotations

import asyncio

import pytest
from test_loops import Solo, cancel

from fleetd.loop import LoopEnded, forever


async def _returns() -> None:
    return None


async def _cancelled_inside() -> None:
    raise asyncio.CancelledError  # what grpc raises for a call its channel cancelled


async def _runs() -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize(("loop", "says"), [(_returns, "returned"), (_cancelled_inside, "escaped")])
async def test_a_loop_that_ends_raises_loop_ended(loop, says: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LoopEnded, match=says):
        await forever(loop(), "the loop")


async def test_cancelling_the_task_itself_is_a_plain_cancellation() -> None:
    task = asyncio.create_task(forever(_runs(), "the loop"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_watch_cancelled_from_inside_stops_the_daemon_instead_of_deafening_the_agent() -> None:
    solo = Solo()
    await solo.start()
    assert solo.task is not None
    try:
        solo.node.agent.assigned.run = _cancelled_inside  # type: ignore[method-assign]
        agent = asyncio.create_task(solo.node.agent.run())
        done, _ = await asyncio.wait([agent], timeout=5)
        assert done, "the agent ran on without its watch"
        with pytest.raises(ExceptionGroup) as failure:
            agent.result()
        assert failure.group_contains(LoopEnded, match="agent-watch-assign")
    finally:
        await cancel(solo.task)
