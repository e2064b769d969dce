"""What really runs: every running host's systemd, read from outside, once or every ~0.5 s.

`snapshot` asks each host's systemd (through nsenter, so a cut or frozen fleetd does not
matter) which `nem-*` units are active. `Sampler` does that in a background thread during a
fault and keeps, per unit, the worst instant: the largest number of hosts running it at once.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import defaultdict

from nemesis.cluster import LocalCluster

Snapshot = dict[str, set[str]]  # host -> active nem-* units


def host_units(lc: LocalCluster, host: str) -> set[str]:
    """Active nem-* units on one host; empty if the host is down."""
    try:
        leader = lc.leader_pid(host)
    except Exception:
        return set()
    cmd = ["nsenter", "-t", str(leader), "-a", "systemctl", "list-units", "--state=active",
           "--plain", "--no-legend", "--no-pager", "nem-*"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except subprocess.TimeoutExpired:
        return set()
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def snapshot(lc: LocalCluster) -> Snapshot:
    return {h: host_units(lc, h) for h in lc.running_hosts()}


def placements(snap: Snapshot) -> dict[str, list[str]]:
    """unit -> hosts running it."""
    where: dict[str, list[str]] = defaultdict(list)
    for host, units in sorted(snap.items()):
        for unit in units:
            where[unit].append(host)
    return where


class Sampler(threading.Thread):
    """Samples every `interval` s until stopped; `worst` maps unit -> max hosts seen at once."""

    def __init__(self, lc: LocalCluster, interval: float = 0.5):
        super().__init__(name="nemesis-sampler", daemon=True)
        self.lc, self.interval = lc, interval
        self.worst: dict[str, int] = defaultdict(int)
        self.samples: list[tuple[float, Snapshot]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            snap = snapshot(self.lc)
            self.samples.append((time.monotonic(), snap))
            for unit, hosts in placements(snap).items():
                self.worst[unit] = max(self.worst[unit], len(hosts))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)
