"""Real cluster: service discovery with `[X-Fleet] Publish=`, driven through `fleetctl endpoints`.

A unit serving HTTP on 8080 publishes its host's address while it runs; the address answers
from another host; `fleetctl stop` removes the entry, and when its host powers off the entry
goes with the host's lease and comes back with the new host's address once the unit moved.
"""

from __future__ import annotations

import re
from pathlib import Path

from cluster import LocalCluster
from test_units import active_on

WAIT = 40
WEB = """[Unit]
Description=discovery test web server
[Service]
WorkingDirectory=/tmp
ExecStart=/usr/bin/python3 -m http.server 8080 --bind 0.0.0.0
[X-Fleet]
Publish=8080
"""
FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=3).status)"


def endpoints(cluster: LocalCluster, *units: str) -> list[list[str]]:
    out = cluster.fleetctl("endpoints", "--no-legend", "--full", *units).stdout
    return [re.split(r"\t+", line) for line in out.splitlines() if line.strip()]


def row(cluster: LocalCluster, host: str) -> list[list[str]]:
    return [["web.service", cluster.machine_id(host), cluster.ip(host), "8080", "tcp"]]


def answers(cluster: LocalCluster, client: str, ip: str) -> bool:
    probe = cluster.host_exec(client, "python3", "-c", FETCH, f"http://{ip}:8080/", check=False)
    return probe.stdout.strip() == "200"


def test_published_endpoint_follows_the_unit(cluster: LocalCluster, tmp_path: Path) -> None:
    path = tmp_path / "web.service"
    path.write_text(WEB)
    cluster.fleetctl("start", str(path))
    (host,) = active_on(cluster, "web.service")
    cluster.wait_until(lambda: endpoints(cluster, "web.service") == row(cluster, host), WAIT,
                       "web.service's endpoint on its host")
    other = next(h for h in cluster.running_hosts() if h != host)
    cluster.wait_until(lambda: answers(cluster, other, cluster.ip(host)), WAIT,
                       "the published address answering from another host")

    cluster.fleetctl("stop", "web.service")
    cluster.wait_until(lambda: endpoints(cluster, "web.service") == [], WAIT, "no endpoint")
    assert endpoints(cluster) == []

    cluster.fleetctl("start", "web.service")
    (host,) = active_on(cluster, "web.service")
    cluster.wait_until(lambda: endpoints(cluster) == row(cluster, host), WAIT, "endpoint again")
    try:
        cluster.stop_host(host)
        cluster.wait_until(lambda: active_on(cluster, "web.service"), WAIT, "web.service moved")
        (moved,) = active_on(cluster, "web.service")
        assert moved != host
        cluster.wait_until(lambda: endpoints(cluster, "web.service") == row(cluster, moved), WAIT,
                           "the endpoint at the new host's address")
    finally:
        cluster.start_host(host)


def test_unknown_unit_is_an_error(cluster: LocalCluster) -> None:
    out = cluster.fleetctl("endpoints", "nope.service", check=False)
    assert (out.returncode, out.stderr.strip()) == (1, "Unit nope.service not found")
