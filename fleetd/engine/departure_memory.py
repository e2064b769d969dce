"""The leader's memory of vanished machines, and the mass-failure alarm it raises and clears.

`Departures.holds(model, now)` is called before every pass. It keeps, between passes, when each
machine was first seen gone, which machines the brake holds and which an operator released
(by deleting the alarm), and hands the decisions to the pure `fleetd.engine.departures`.
`alarm_ops` says what to write so that alarms/mass-failure is raised exactly while the brake
holds. A new leader picks a raised alarm up from the registry and goes on braking.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from fleetd.engine import departures
from fleetd.engine.departures import MASS_FAILURE, Holds
from fleetd.engine.view import LeaderView
from fleetd.model.liveness import Liveness
from fleetd.registry import codec
from fleetd.registry.kv import Op

WallClock = Callable[[], str]


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class Departures:
    """Departed machines as one leader session saw them."""

    def __init__(self, timing: Liveness, enabled: bool = True, wall_clock: WallClock = _utc_now) -> None:
        self.timing = timing
        self.enabled = enabled
        self.left: dict[str, float] = {}
        self.braked: frozenset[str] = frozenset()
        self.confirmed: set[str] = set()
        self._live: frozenset[str] = frozenset()
        self._alarm_seen = False
        self._since = ""
        self._wall_clock = wall_clock

    def resume(self, model: LeaderView) -> None:
        """At the start of a leader session: go on braking where a previous leader stopped."""
        record = model.alarms.get(MASS_FAILURE)
        if record is not None:
            self.braked = frozenset(codec.decode_alarm(record)[0])
            self._alarm_seen = True
        self._live = frozenset(model.machines)

    def holds(self, model: LeaderView, now: float) -> Holds:
        live = frozenset(model.machines)
        referenced = model.assigned.keys()  # machines that still hold assignments
        self._notice_confirmation(model)
        self.left = departures.track(self.left, live, self._live, referenced, now)
        self.confirmed &= set(self.left)
        holds = departures.decide(self.left, len(live), self.braked, self.confirmed, now,
                                  self.timing, self.enabled)
        self.left = departures.prune(self.left, holds, referenced, now, self.timing)
        self._live, self.braked = live, holds.braked
        return holds

    def _notice_confirmation(self, model: LeaderView) -> None:
        """The alarm we raised is gone: an operator confirmed the braked machines are dead."""
        raised = MASS_FAILURE in model.alarms
        if self.braked and self._alarm_seen and not raised:
            self.confirmed |= self.braked
            self.braked = frozenset()
        self._alarm_seen = raised

    def alarm_ops(self, model: LeaderView, holds: Holds,
                  make_op: Callable[[str, str | None], Op]) -> list[Op]:
        """Raise, update or clear alarms/mass-failure to match `holds`."""
        stored = model.alarms.get(MASS_FAILURE)
        if not holds.braked:
            self._since = ""
            return [make_op(MASS_FAILURE, None)] if stored is not None else []
        earlier = codec.decode_alarm(stored)[1] if stored else ""
        self._since = self._since or earlier or self._wall_clock()
        record = departures.alarm_record(holds.braked, len(model.machines), self._since)
        return [make_op(MASS_FAILURE, record)] if record != stored else []

