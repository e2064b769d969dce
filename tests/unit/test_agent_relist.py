"""Tier 2: the agent's safety net: a watch that stalls without an error is healed by a relist."""

from __future__ import annotations

from unittest.mock import patch

from test_loops import Solo, cancel, eventually

from fleetd.agent import reconciler
from fleetd.model.states import TargetState


async def test_a_stalled_watch_is_healed_by_the_periodic_relist() -> None:
    with patch.object(reconciler, "RELIST_SECONDS", 0.3):
        solo = Solo()
        await solo.start()
        try:
            solo.node.agent.assigned.apply = lambda event: None  # type: ignore[method-assign]
            await solo.assign(TargetState.LAUNCHED, "late.service")  # the watch "misses" it
            await eventually(lambda: solo.running() == {"late.service"}, timeout=5)
        finally:
            assert solo.task is not None
            await cancel(solo.task)
