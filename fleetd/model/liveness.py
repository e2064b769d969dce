"""Failure-detection timings: everything fleetd derives from `agent_ttl` and `fence_grace` (pure).

One place says how the agent's keep-alives, the agent's fencing deadline and the engine's
waits relate, because AtMostOnce is only safe if they keep this order (t0 = the agent's last
successful keep-alive):

    t0 + fence_after       the agent stops its AtMostOnce units (it cannot prove it is alive)
    t0 + ttl               at the earliest, etcd expires the lease and the machine vanishes
    vanished + settle      the engine re-places the machine's ordinary units
    vanished + hold_fenced the engine re-places its AtMostOnce units

so a fenced unit is stopped at least `ttl - fence_after + hold_fenced` seconds before any
other machine may start it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SETTLE_SLACK = 0.5  # etcd checks lease expiry every 500 ms: leases that die together vanish within this
REJOIN_MARGIN = 2.0  # time the engine gets to act on a vanished machine before it may come back


@dataclass(frozen=True, slots=True)
class Liveness:
    """Timings for a cluster whose machines hold leases of `agent_ttl` seconds."""

    agent_ttl: float = 5.0
    fence_grace: float = 2.0

    @property
    def ttl(self) -> int:
        """The lease TTL granted (etcd takes whole seconds)."""
        return max(1, math.ceil(self.agent_ttl))

    @property
    def keepalive(self) -> float:
        """How often an agent renews its lease."""
        return self.ttl / 5

    @property
    def fence_after(self) -> float:
        """Seconds without a successful keep-alive after which AtMostOnce units are stopped."""
        return self.ttl / 2

    @property
    def settle(self) -> float:
        """How long the engine waits after a machine vanished before re-placing its units, so
        that machines failing together are seen together (the mass-failure brake needs that)."""
        return self.keepalive + SETTLE_SLACK

    @property
    def hold_fenced(self) -> float:
        """How long after a machine vanished the engine waits to re-place its AtMostOnce units."""
        return max(self.settle, self.fence_grace)

    @property
    def rejoin_after(self) -> float:
        """After its lease lapsed, an agent restarts AtMostOnce units only this long after its
        last successful keep-alive (by then the engine has moved them, or kept them here)."""
        return self.ttl + self.hold_fenced + REJOIN_MARGIN
