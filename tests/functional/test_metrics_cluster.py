"""Real cluster: GET /metrics on each host's fleetd moves with what the cluster does.

Scrapes go where an operator's Prometheus would: the host's unix socket (no token) and the
host's TCP API (TLS with the cluster's CA, bearer token). Where units run is checked in the
hosts' own systemd, as in test_units.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

from cluster import LocalCluster
from prometheus_client.parser import text_string_to_metric_families
from test_units import HELLO, MOVE_TIMEOUT, active_on, host_of, leader, write_unit

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def metrics(cluster: LocalCluster, host: str) -> Samples:
    return parse(cluster.scrape_metrics(host))


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def leader_host(cluster: LocalCluster) -> str:
    return host_of(cluster, cluster.wait_until(lambda: leader(cluster), 20, "an engine leader"))


def test_placing_a_unit_moves_the_leaders_counters(cluster: LocalCluster) -> None:
    boss = leader_host(cluster)
    before = metrics(cluster, boss)
    assert value(before, "fleet_engine_is_leader") == 1
    assert all(value(metrics(cluster, h), "fleet_engine_is_leader") == 0
               for h in cluster.running_hosts() if h != boss)

    cluster.fleetctl("start", str(HELLO))
    (runs_on,) = active_on(cluster, "hello.service")

    after = metrics(cluster, boss)
    assert (value(after, "fleet_engine_placements_total")
            >= value(before, "fleet_engine_placements_total") + 1)
    assert (value(after, "fleet_engine_reconcile_duration_seconds_count")
            > value(before, "fleet_engine_reconcile_duration_seconds_count"))
    assert value(after, "fleet_registry_operation_duration_seconds_count", operation="txn") > 0
    assert value(metrics(cluster, runs_on), "fleet_agent_task_count_total", task="start") >= 1


def test_a_pending_unit_shows_under_its_reason(cluster: LocalCluster, tmp_path: Path) -> None:
    path = write_unit(tmp_path, "nowhere.service", "\n[X-Fleet]\nMachineMetadata=host=nosuchhost\n")
    cluster.fleetctl("start", "--no-block", path)
    boss = leader_host(cluster)
    cluster.wait_until(
        lambda: value(metrics(cluster, boss), "fleet_engine_pending_units", reason="metadata") >= 1,
        20, "the leader to count the unit as pending on metadata")
    assert active_on(cluster, "nowhere.service") == []


def test_metrics_over_tcp_need_tls_and_the_token(cluster: LocalCluster) -> None:
    host = cluster.running_hosts()[0]
    url = cluster.api_url(host) + "/metrics"
    tls = ssl.create_default_context(cafile=cluster.api_ca_file())
    try:
        urllib.request.urlopen(url, context=tls, timeout=10)
        raise AssertionError("GET /metrics over TCP without the token was served")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {cluster.api_token()}"})
    with urllib.request.urlopen(request, context=tls, timeout=10) as resp:
        body = resp.read().decode()
    assert ("fleet_engine_is_leader", ()) in parse(body)


def test_a_dead_leader_is_replaced_and_its_unit_evicted(cluster: LocalCluster,
                                                        tmp_path: Path) -> None:
    """Stop the leader's fleetd with hello.service placed on its host: another engine takes
    over (leader gauge and start time) and evicts the unit from the machine that went away."""
    boss = leader_host(cluster)
    path = write_unit(tmp_path, "on-leader.service",
                      f"\n[X-Fleet]\nMachineID={cluster.machine_id(boss)}\n")
    cluster.fleetctl("start", path)
    assert active_on(cluster, "on-leader.service") == [boss]
    stopped_at = time.time()
    cluster.host_exec(boss, "systemctl", "stop", "fleet.service")
    try:
        others = [h for h in cluster.running_hosts() if h != boss]

        def new_leader() -> str | None:
            return next((h for h in others
                         if value(metrics(cluster, h), "fleet_engine_is_leader") == 1), None)

        heir = cluster.wait_until(new_leader, MOVE_TIMEOUT, "another fleetd to report leadership")
        now = metrics(cluster, heir)
        assert value(now, "fleet_engine_leader_changes_total") >= 1
        assert value(now, "fleet_engine_leader_start_time_seconds") >= stopped_at - 1
        cluster.wait_until(
            lambda: value(metrics(cluster, heir), "fleet_engine_evictions_total",
                          reason="machine_gone") >= 1,
            MOVE_TIMEOUT, "the new leader to evict the unit from the machine that went away")
    finally:
        cluster.host_exec(boss, "systemctl", "start", "fleet.service")
