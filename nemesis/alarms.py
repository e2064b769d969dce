"""The agent's alarms, read from each host's /metrics: counters that stay 0 in a healthy cluster.

`fleet_agent_relist_catches_total` counts changes a safety-net listing found that an agent's
watches never delivered; `fleet_agent_pass_abandoned_total` counts agent passes that hung past
their timeout. Either going up means a watch or a pass is broken, whatever the test was
doing (tests/conftest.py fails the real-cluster test that saw it). An `AlarmLedger`
remembers what it last read per host, so a run sees only the rises since its last look (a
restarted fleetd starts again from 0).
"""

from __future__ import annotations

from collections.abc import Iterable

ALARMS = ("fleet_agent_relist_catches_total", "fleet_agent_pass_abandoned_total")


def read_alarms(metrics_text: str) -> dict[str, float]:
    """The alarm counters in a Prometheus text page (0 for one that is absent)."""
    found = dict.fromkeys(ALARMS, 0.0)
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name in found:
            found[name] = float(value)
    return found


class AlarmLedger:
    """The last alarm values seen per host; `rises` reports what went up since."""

    def __init__(self) -> None:
        self._seen: dict[str, dict[str, float]] = {}

    def rises(self, readings: Iterable[tuple[str, dict[str, float]]]) -> list[str]:
        """`host: alarm +N` for every alarm that rose since the last reading of that host."""
        found = []
        for host, values in readings:
            before = self._seen.get(host, {})
            for name, value in values.items():
                last = before.get(name, 0.0)
                if value < last:  # fleetd restarted: its counters began again at 0
                    last = 0.0
                if value > last:
                    found.append(f"{host}: {name} +{value - last:g}")
            self._seen[host] = values
        return found
