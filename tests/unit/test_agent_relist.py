"""Tier 2: the agent's safety net: a watch that stalls without an error is healed by a relist,
and what the relist caught is counted (fleet_agent_relist_catches_total), since it is a bug."""

from __future__ import annotations

from unittest.mock import patch

from test_loops import Solo, cancel, eventually

from fleetd.agent import reconciler
from fleetd.agent.mirror import Mirror
from fleetd.model.states import TargetState
from fleetd.observe import NoRecorder


class Catches(NoRecorder):
    def __init__(self) -> None:
        self.caught = 0

    def agent_relist_catches(self, keys: int) -> None:
        self.caught += keys


async def test_a_stalled_watch_is_healed_by_the_periodic_relist() -> None:
    deaf = patch.object(Mirror, "apply", lambda self, event: None)  # every watch event is lost
    with patch.object(reconciler, "RELIST_SECONDS", 0.3), deaf:
        solo = Solo()
        solo.node.agent.recorder = recorder = Catches()
        await solo.start()
        try:
            await solo.assign(TargetState.LAUNCHED, "late.service")  # the watch "misses" it
            await eventually(lambda: solo.running() == {"late.service"}, timeout=5)
            await eventually(lambda: recorder.caught == 1, timeout=5)  # at the next check
        finally:
            assert solo.task is not None
            await cancel(solo.task)
