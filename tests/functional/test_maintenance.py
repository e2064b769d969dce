"""Real cluster: a rolling maintenance over all hosts with the example units, one host at a time.

units/maintenance.service and units/maintenance-uncordon.service run on every host as fleet
Global units, calling fleetctl inside the host (`--self`, the local socket). Two lines differ
from the examples: FLEETCTL (the hosts have no fleetctl on PATH: fleetd's source is bound at
/opt/fleet) and MAINTENANCE_REBOOT, which only leaves a mark in /run that this test answers with
a real power cycle of that host (`stop-host`, `start-host`), because a reboot inside a local
cluster host would end its container. All three hosts start their turn at the same moment (the
worst case for the lock). A monitor samples, about every second, each host's own systemd for
the 3 instances of a service and list-machines for the machine states, and the test shows at
least 2 instances active at every sample and never more than one host in maintenance (not
ready, or away).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import LocalCluster
from test_lifecycle import states
from test_units import REPO, write_unit

UNITS = REPO / "units"
FLEETCTL_IN_HOST = "env PYTHONPATH=/opt/fleet-hostlib:/opt/fleet /usr/bin/python3 -m fleetctl"
REBOOT_MARK = "/run/maintenance-reboot"
INSTANCES = [f"roll@{i}.service" for i in (1, 2, 3)]
TURN_TIMEOUT = 240


@pytest.fixture(autouse=True)
def _ready_and_unlocked(cluster: LocalCluster) -> Iterator[None]:
    yield
    for host in cluster.hosts():
        cluster.fleetctl("unlock", cluster.machine_id(host), check=False)
        cluster.fleetctl("uncordon", cluster.machine_id(host), check=False)


def for_hosts(name: str, tmp_path: Path) -> str:
    """units/<name> with fleetctl found in the hosts and the reboot left to this test."""
    text = (UNITS / name).read_text()
    text = text.replace("Environment=FLEETCTL=fleetctl", f'Environment="FLEETCTL={FLEETCTL_IN_HOST}"')
    text = text.replace('Environment="MAINTENANCE_REBOOT=systemctl reboot"',
                        f'Environment="MAINTENANCE_REBOOT=touch {REBOOT_MARK}"')
    text = text.replace('Environment="MAINTENANCE_UPDATE=apt-get update -qq && '
                        'DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq"',
                        'Environment="MAINTENANCE_UPDATE=echo updated"')
    assert "fleetctl\n" not in text and "systemctl reboot" not in text and "apt-get" not in text
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _next_turn(cluster: LocalCluster, rebooted: list[str]) -> str:
    """The next host that asks for its reboot; on a timeout the failure shows every host's
    maintenance journal."""
    try:
        return cluster.wait_until(lambda: next(
            (h for h in cluster.running_hosts() if h not in rebooted and cluster.host_exec(
                h, "test", "-e", REBOOT_MARK, check=False).returncode == 0), None),
            TURN_TIMEOUT, "the next host asking for its reboot")
    except AssertionError as exc:
        journals = [cluster.host_exec(h, "journalctl", "--no-pager", "-n", "15", "-u",
                                      "maintenance.service", "-u", "maintenance-uncordon.service",
                                      check=False).stdout for h in cluster.running_hosts()]
        raise AssertionError(f"{exc}\nrebooted so far: {rebooted}\n" + "\n".join(journals)) from None


class Monitor(threading.Thread):
    """Samples active instances (each host's systemd) and hosts in maintenance (list-machines)."""

    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.samples: list[tuple[int, frozenset[str]]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(Exception):  # a host powering off mid-sample: take the next
                self.samples.append((self.active(), self.in_maintenance()))
            time.sleep(0.5)

    def active(self) -> int:
        count = 0
        for host in self.cluster.running_hosts():
            out = self.cluster.host_exec(host, "systemctl", "is-active", *INSTANCES, check=False)
            count += out.stdout.split().count("active")
        return count

    def in_maintenance(self) -> frozenset[str]:
        shown = states(self.cluster)
        return frozenset(h for h in self.cluster.hosts() if shown.get(h, "away") != "ready")


def test_rolling_maintenance_keeps_two_of_three_up_and_one_host_at_a_time(
        cluster: LocalCluster, tmp_path: Path) -> None:
    paths = [write_unit(tmp_path, n, "\n[X-Fleet]\nConflicts=roll@*.service\n") for n in INSTANCES]
    cluster.fleetctl("start", *paths)
    cluster.fleetctl("load", for_hosts("maintenance.service", tmp_path))
    cluster.fleetctl("start", for_hosts("maintenance-uncordon.service", tmp_path))
    monitor = Monitor(cluster)
    monitor.start()
    for host in cluster.hosts():  # every host's timer fires at once
        cluster.host_exec(host, "systemctl", "start", "--no-block", "maintenance.service")
    rebooted: list[str] = []
    while len(rebooted) < len(cluster.hosts()):
        host = _next_turn(cluster, rebooted)
        assert states(cluster)[host] == "drained"
        cluster.stop_host(host)
        cluster.start_host(host)
        rebooted.append(host)
        cluster.wait_until(lambda back=host: states(cluster).get(back) == "ready", TURN_TIMEOUT,
                           f"{host} uncordoned after its boot")
    cluster.wait_until(lambda: monitor.active() == 3, TURN_TIMEOUT, "all 3 instances active")
    monitor.stopping.set()
    monitor.join(30)
    assert monitor.samples, "the monitor took no sample"
    assert min(active for active, _ in monitor.samples) >= 2, monitor.samples
    assert max(len(hosts) for _, hosts in monitor.samples) == 1, monitor.samples
    assert {h for _, hosts in monitor.samples for h in hosts} == set(cluster.hosts())
    assert sorted(rebooted) == sorted(cluster.hosts())
