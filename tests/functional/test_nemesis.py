"""Real cluster: one run of every nemesis scenario (python -m nemesis runs them N times).

Each test grows the session cluster to 5 hosts (3-member etcd), injects one fault with the
mixed workload running, and asserts fleetd's goals as read from every host's systemd and
from etcd: no fenced unit ever on two hosts at once, no constraint violated, nothing lost,
and the cluster converged after the heal. A failure prints everything the checker saw.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nemesis import report
from nemesis.cluster import LocalCluster
from nemesis.runner import HOSTS, restore, run_once
from nemesis.scenarios import SCENARIOS

pytestmark = pytest.mark.cluster

CONVERGE_TIMEOUT = 40


@pytest.fixture(scope="module")
def five_hosts(cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The session cluster grown to h1..h5. Afterwards a fresh cluster of the session's size:
    the faults leave fleetd and etcd in states (left members, vanished machines, alarms) that
    later modules must not inherit."""
    before = len(cluster.hosts())
    cluster.up(HOSTS)
    yield cluster
    restore(cluster)
    cluster.down()
    cluster.up(before)


def fleet_view(lc: LocalCluster) -> str:
    """fleet's own view after the run, and every host's recent fleetd log, for the failure message."""
    machines = lc.fleetctl("list-machines", "--full", check=False)
    units = lc.fleetctl("list-units", "--full", check=False)
    logs = "".join(f"--- {host}: journalctl -u fleet.service (last 40 lines)\n"
                   f"{lc.run_tool('logs', host, '-n', '40', check=False).stdout}"
                   for host in lc.running_hosts())
    return (f"fleetctl list-machines:\n{machines.stdout}{machines.stderr}\n"
            f"fleetctl list-units:\n{units.stdout}\n{logs}")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_one_run_meets_the_goals(five_hosts: LocalCluster, scenario: str) -> None:
    result = run_once(five_hosts, scenario, 1, CONVERGE_TIMEOUT)
    seen = (f"{report.table([result])}\nfigures: {result.figures}\n{report.evidence([result])}\n"
            f"{fleet_view(five_hosts)}")
    assert result.fenced_duplicates == [], seen
    assert result.violations == [], seen
    assert result.lost == [], seen
    assert result.converged, seen
