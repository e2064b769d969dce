"""The agent alarms read from /metrics text, and the ledger that reports only their rises."""

from __future__ import annotations

from nemesis.alarms import AlarmLedger, read_alarms

PAGE = """# HELP fleet_agent_relist_catches_total Changes ...
# TYPE fleet_agent_relist_catches_total counter
fleet_agent_relist_catches_total 2.0
fleet_agent_relist_catches_created 1.7e+09
fleet_agent_pass_abandoned_total 0.0
"""


def test_read_alarms() -> None:
    assert read_alarms(PAGE) == {"fleet_agent_relist_catches_total": 2.0,
                                 "fleet_agent_pass_abandoned_total": 0.0}
    assert set(read_alarms("").values()) == {0.0}


def test_the_ledger_reports_rises_only_and_a_restart_counts_from_zero() -> None:
    ledger = AlarmLedger()
    catches = "fleet_agent_relist_catches_total"
    assert ledger.rises([("h1", {catches: 0.0})]) == []
    assert ledger.rises([("h1", {catches: 2.0})]) == [f"h1: {catches} +2"]
    assert ledger.rises([("h1", {catches: 2.0})]) == []  # reported once
    assert ledger.rises([("h1", {catches: 1.0})]) == [f"h1: {catches} +1"]  # fleetd restarted
    assert ledger.rises([("h2", {catches: 3.0})]) == [f"h2: {catches} +3"]  # first look: since start
