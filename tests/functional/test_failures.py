"""Real cluster: what fleetd does when fleetd itself stops, and who may talk to its API.

Checked on the hosts' own systemd: a clean `systemctl stop fleet` leaves ordinary units
running and stops AtMostOnce ones (nothing else could keep their promise), which fleetd starts
again when it is back; the API socket is not world-accessible.
"""

from __future__ import annotations

from pathlib import Path

from cluster import LocalCluster
from test_units import active_on, write_unit

WAIT = 40


def test_stopping_fleetd_stops_only_at_most_once_units(cluster: LocalCluster, tmp_path: Path) -> None:
    plain = write_unit(tmp_path, "keeps-running.service")
    once = write_unit(tmp_path, "once.service", "\n[X-Fleet]\nAtMostOnce=true\n")
    host = cluster.running_hosts()[0]
    pin = f"\nMachineID={cluster.machine_id(host)}\n"
    Path(plain).write_text(Path(plain).read_text() + "\n[X-Fleet]" + pin)
    Path(once).write_text(Path(once).read_text() + pin)
    cluster.fleetctl("start", plain, once)
    assert active_on(cluster, "keeps-running.service") == [host]
    assert active_on(cluster, "once.service") == [host]
    other = next(h for h in cluster.running_hosts() if h != host)
    try:
        cluster.host_exec(host, "systemctl", "stop", "fleet.service", timeout=60)
        assert active_on(cluster, "keeps-running.service") == [host]
        assert active_on(cluster, "once.service") == []
        journal = cluster.host_exec(host, "journalctl", "-u", "fleet.service", "--no-pager", "-n", "30")
        assert "stopping AtMostOnce units: once.service" in journal.stdout
    finally:
        cluster.host_exec(host, "systemctl", "start", "fleet.service", timeout=60)
    cluster.wait_until(lambda: active_on(cluster, "once.service") == [host], WAIT,
                       "once.service running again where it is assigned")
    cluster.fleetctl("destroy", "keeps-running.service", "once.service", host=other)


def test_api_socket_is_owner_and_group_only(cluster: LocalCluster) -> None:
    host = cluster.running_hosts()[0]
    mode = cluster.host_exec(host, "stat", "-L", "-c", "%a %U", "/run/fleet.sock").stdout.split()
    assert mode == ["660", "root"]
