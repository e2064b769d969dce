"""Real cluster: every example in units/ does on hosts h1..h3 what its header says.

Driven with the fleetctl command, like a user following the header; checked against each
host's own systemd (`systemctl` and `journalctl` inside the host), the published endpoints
from another host, and etcd itself (etcdctl against the cluster's etcd) for the sidekick.
The hosts carry metadata host=hN. The container examples (web-container@, web-container-check)
have their own module, test_containers.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cluster import LocalCluster
from test_units import MOVE_TIMEOUT, REPO, active_on

UNITS = REPO / "units"
MIB = 1024 * 1024
GET = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())"


def unit_path(name: str) -> str:
    return str(UNITS / name)


def as_json(cluster: LocalCluster, *args: str) -> list[dict[str, Any]]:
    return list(json.loads(cluster.fleetctl(*args, "-o", "json").stdout))


def reasons(cluster: LocalCluster) -> dict[str, str]:
    return {row["unit"]: row["reason"] for row in as_json(cluster, "list-unit-files")
            if row.get("reason")}


def host_by_ip(cluster: LocalCluster) -> dict[str, str]:
    return {cluster.ip(h): h for h in cluster.hosts()}


def fetch(cluster: LocalCluster, client: str, url: str) -> str:
    """The body `url` serves, fetched from inside host `client` ("" if it did not answer)."""
    probe = cluster.host_exec(client, "python3", "-c", GET, url, check=False)
    return probe.stdout.strip() if probe.returncode == 0 else ""


def journal(cluster: LocalCluster, host: str, unit: str) -> str:
    return cluster.host_exec(host, "journalctl", "--no-pager", "-o", "cat", "-u", unit).stdout


def wait_hosts(cluster: LocalCluster, unit: str, count: int) -> list[str]:
    """Hosts whose systemd runs `unit`, once exactly `count` do."""
    return cluster.wait_until(lambda: (lambda hs: hs if len(hs) == count else None)(
        active_on(cluster, unit)), MOVE_TIMEOUT, f"{unit} active on {count} host(s)")


def etcd_value(cluster: LocalCluster, key: str) -> str:
    return cluster.etcdctl("get", key, "--print-value-only").stdout.strip()


def test_hello_runs_on_one_host_and_says_hello(cluster: LocalCluster) -> None:
    assert "Unit hello.service launched on" in cluster.fleetctl("start", unit_path("hello.service")).stdout
    (host,) = active_on(cluster, "hello.service")
    cluster.wait_until(lambda: f"Hello from {host}" in journal(cluster, host, "hello.service"),
                       MOVE_TIMEOUT, "the hello line in the host's journal")
    cluster.fleetctl("destroy", "hello.service")
    assert active_on(cluster, "hello.service") == []


def test_web_instances_spread_one_per_host_and_publish_their_address(cluster: LocalCluster) -> None:
    cluster.fleetctl("start", unit_path("web@.service"))
    homes = {i: active_on(cluster, f"web@{i}.service") for i in (1, 2, 3)}
    assert sorted(h for hs in homes.values() for h in hs) == ["h1", "h2", "h3"]
    want = sorted((f"web@{i}.service", cluster.ip(h), 8080, "tcp") for i, (h,) in homes.items())

    def listed() -> list[tuple[str, str, int, str]] | None:
        rows = sorted((r["unit"], r["ip"], r["port"], r["proto"])
                      for r in as_json(cluster, "endpoints"))
        return rows if rows == want else None

    cluster.wait_until(listed, MOVE_TIMEOUT, "fleetctl endpoints listing the three instances")
    for i, (host,) in homes.items():
        other = next(h for h in cluster.hosts() if h != host)
        assert fetch(cluster, other, f"http://{cluster.ip(host)}:8080/") == f"web@{i} on {host}"


def test_node_exporter_runs_on_every_host_and_serves_metrics(cluster: LocalCluster) -> None:
    out = cluster.fleetctl("start", unit_path("node-exporter.service")).stdout
    assert "Triggered global unit node-exporter.service start" in out
    assert sorted(wait_hosts(cluster, "node-exporter.service", 3)) == ["h1", "h2", "h3"]
    cluster.wait_until(lambda: len(as_json(cluster, "endpoints")) == 3, MOVE_TIMEOUT,
                       "one endpoint per host")
    for row in as_json(cluster, "endpoints", "node-exporter.service"):
        other = next(h for h in cluster.hosts() if cluster.ip(h) != row["ip"])
        url = f"http://{row['ip']}:{row['port']}/metrics"
        body = cluster.wait_until(lambda c=other, u=url: fetch(cluster, c, u),
                                  MOVE_TIMEOUT, f"metrics from {url}")
        assert body.startswith("node_load1 ") and "node_memory_MemAvailable_bytes " in body


def test_pinned_goes_where_its_metadata_allows_or_waits_with_the_reason(
        cluster: LocalCluster, tmp_path: Path) -> None:
    cluster.fleetctl("start", unit_path("pinned.service"))
    (host,) = active_on(cluster, "pinned.service")
    assert host in ("h2", "h3")
    nowhere = tmp_path / "pinned-nowhere.service"
    nowhere.write_text((UNITS / "pinned.service").read_text().replace(
        "MachineMetadata=host not in (h1)", "MachineMetadata=host in (h7, h8)"))
    cluster.fleetctl("start", "--no-block", str(nowhere))
    reason = cluster.wait_until(lambda: reasons(cluster).get("pinned-nowhere.service"),
                                MOVE_TIMEOUT, "a pending reason for pinned-nowhere.service")
    assert reason == "no machine matches metadata host in (h7, h8), zone!=a"
    assert active_on(cluster, "pinned-nowhere.service") == []


def fits(machine: dict[str, Any]) -> int:
    """How many batch workers (1 CPU, 256M each) the machine's announced capacity holds."""
    cpu, memory = machine["cpu"], machine["memory"]
    assert cpu and memory, f"capacity of {machine['machine']} is unknown: {machine}"
    return min(cpu // 1000, memory // (256 * MIB))


def test_batch_workers_fill_capacity_and_the_rest_wait_for_resources(
        cluster: LocalCluster) -> None:
    room = {host_by_ip(cluster)[m["ip"]]: fits(m) for m in as_json(cluster, "list-machines")}
    total = sum(room.values())
    assert 3 <= total <= 40, f"capacity {room} does not suit this test"
    count = total + 2
    cluster.fleetctl("start", "--no-block", "--instances", str(count),
                     unit_path("batch-worker@.service"))
    names = [f"batch-worker@{i}.service" for i in range(1, count + 1)]
    waiting = cluster.wait_until(lambda: (lambda r: r if len(r) == 2 else None)(
        {u: why for u, why in reasons(cluster).items() if u in names}),
        MOVE_TIMEOUT, "two batch workers pending")
    assert all(why.startswith("insufficient cpu") for why in waiting.values()), waiting

    def running() -> dict[str, list[str]] | None:
        found = {n: active_on(cluster, n) for n in names if n not in waiting}
        return found if all(found.values()) else None

    placed = cluster.wait_until(running, MOVE_TIMEOUT, f"{total} batch workers active")
    per_host = {h: sum(hs == [h] for hs in placed.values()) for h in room}
    assert per_host == room  # full, and never over what the host announced
    assert all(active_on(cluster, n) == [] for n in waiting)
    host = placed[names[0]][0]
    limits = cluster.host_exec(host, "systemctl", "show", "-p", "CPUQuotaPerSecUSec",
                               "-p", "MemoryMax", names[0]).stdout.split()
    assert sorted(limits) == ["CPUQuotaPerSecUSec=1s", f"MemoryMax={256 * MIB}"]


def test_web_announce_sidekick_sits_with_its_partner_and_keeps_a_leased_key(
        cluster: LocalCluster) -> None:
    cluster.fleetctl("start", unit_path("web@.service"), unit_path("web-announce@.service"))
    for i in (1, 2, 3):
        (host,) = active_on(cluster, f"web@{i}.service")
        assert active_on(cluster, f"web-announce@{i}.service") == [host]
        key, want = f"/services/web/{i}", f"{cluster.ip(host)}:8080"
        cluster.wait_until(lambda k=key, w=want: etcd_value(cluster, k) == w,
                           MOVE_TIMEOUT, f"{key} = {want} in etcd")
    lease = cluster.etcdctl("get", "/services/web/1", "-w", "json").stdout
    assert json.loads(lease)["kvs"][0].get("lease"), "the key is on a lease"

    (home,) = active_on(cluster, "web@1.service")
    cluster.fleetctl("stop", "web@1.service")
    cluster.wait_until(lambda: etcd_value(cluster, "/services/web/1") == "", MOVE_TIMEOUT,
                       "/services/web/1 deleted once web@1 stopped")
    state = cluster.host_exec(home, "systemctl", "is-active", "web-announce@1.service",
                              check=False).stdout.strip()
    assert state == "inactive"
    cluster.fleetctl("destroy", "web@2.service")
    cluster.wait_until(lambda: etcd_value(cluster, "/services/web/2") == "", MOVE_TIMEOUT,
                       "/services/web/2 deleted once web@2 was destroyed")
    assert etcd_value(cluster, "/services/web/3") != ""
