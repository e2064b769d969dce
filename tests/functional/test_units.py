"""Real cluster: what a user does with fleetctl, checked against each host's own systemd.

Every check of where a unit runs asks the host's systemd (`systemctl` inside the host),
never fleet; fleet's own view (list-units, list-machines) is checked separately.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cluster import LocalCluster

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "units" / "hello.service"
PREFIX = "/_coreos.com/fleet/"
MOVE_TIMEOUT = 40  # agent_ttl (5 s) + reconcile + start, with a wide margin for a loaded CI box


def active_on(cluster: LocalCluster, unit: str) -> list[str]:
    """Hosts whose systemd says `unit` is active."""
    return [h for h in cluster.running_hosts()
            if cluster.host_exec(h, "systemctl", "is-active", unit, check=False).stdout.strip()
            == "active"]


def unit_file_on(cluster: LocalCluster, host: str, unit: str) -> bool:
    probe = cluster.host_exec(host, "test", "-e", f"/run/fleet/units/{unit}", check=False)
    return probe.returncode == 0


def table(cluster: LocalCluster, verb: str, fields: str) -> list[list[str]]:
    out = cluster.fleetctl(verb, "--no-legend", "--full", f"--fields={fields}").stdout
    return [re.split(r"\t+", line) for line in out.splitlines() if line.strip()]


def write_unit(tmp_path: Path, name: str, extra: str = "") -> str:
    path = tmp_path / name
    path.write_text(HELLO.read_text() + extra)
    return str(path)


def leader(cluster: LocalCluster) -> str:
    return cluster.etcdctl("get", f"{PREFIX}leader", "--print-value-only").stdout.strip()


def host_of(cluster: LocalCluster, machine_id: str) -> str:
    return next(h for h in cluster.hosts() if cluster.machine_id(h) == machine_id)


def test_start_runs_unit_on_exactly_one_host(cluster: LocalCluster) -> None:
    out = cluster.fleetctl("start", str(HELLO)).stdout
    assert "Unit hello.service launched on" in out
    (host,) = active_on(cluster, "hello.service")
    rows = table(cluster, "list-units", "unit,machine,active,sub")
    assert rows == [["hello.service", f"{cluster.machine_id(host)}/{cluster.ip(host)}",
                     "active", "running"]]


def test_stop_unload_destroy(cluster: LocalCluster) -> None:
    cluster.fleetctl("start", str(HELLO))
    (host,) = active_on(cluster, "hello.service")

    cluster.fleetctl("stop", "hello.service")
    assert active_on(cluster, "hello.service") == []
    load = cluster.host_exec(host, "systemctl", "show", "-p", "LoadState", "--value",
                             "hello.service").stdout.strip()
    assert load == "loaded" and unit_file_on(cluster, host, "hello.service")
    assert table(cluster, "list-unit-files", "unit,dstate,state") == [
        ["hello.service", "loaded", "loaded"]]

    cluster.fleetctl("unload", "hello.service")
    assert not unit_file_on(cluster, host, "hello.service")
    assert table(cluster, "list-unit-files", "unit,dstate,state") == [
        ["hello.service", "inactive", "inactive"]]

    cluster.fleetctl("start", "hello.service")
    cluster.fleetctl("destroy", "hello.service")
    assert table(cluster, "list-unit-files", "unit") == []
    assert table(cluster, "list-units", "unit") == []
    for h in cluster.running_hosts():
        assert not unit_file_on(cluster, h, "hello.service")
    assert active_on(cluster, "hello.service") == []


def test_machine_metadata_places_unit_on_matching_host(cluster: LocalCluster,
                                                       tmp_path: Path) -> None:
    for target in ("h2", "h3"):
        name = f"meta-{target}.service"
        path = write_unit(tmp_path, name, f"\n[X-Fleet]\nMachineMetadata=host={target}\n")
        cluster.fleetctl("start", path)
        assert active_on(cluster, name) == [target]


def test_unit_moves_when_its_host_powers_off(cluster: LocalCluster) -> None:
    cluster.fleetctl("start", str(HELLO))
    (first,) = active_on(cluster, "hello.service")
    cluster.stop_host(first)

    def moved() -> list[str]:
        return [h for h in active_on(cluster, "hello.service") if h != first]

    (second,) = cluster.wait_until(moved, MOVE_TIMEOUT, "hello.service active on another host")
    assert second != first
    machines = [row[0] for row in table(cluster, "list-machines", "machine")]
    cluster.wait_until(lambda: cluster.machine_id(first) not in
                       [r[0] for r in table(cluster, "list-machines", "machine")],
                       MOVE_TIMEOUT, "the dead host to leave list-machines")
    assert cluster.machine_id(second) in machines
    rows = cluster.wait_until(
        lambda: [r for r in table(cluster, "list-units", "unit,machine,active")
                 if r[2] == "active"], MOVE_TIMEOUT, "list-units to show the unit active")
    assert rows == [["hello.service", f"{cluster.machine_id(second)}/{cluster.ip(second)}",
                     "active"]]


def test_new_leader_places_units_after_leader_fleetd_is_killed(cluster: LocalCluster,
                                                               tmp_path: Path) -> None:
    old = host_of(cluster, cluster.wait_until(lambda: leader(cluster), 20, "an engine leader"))
    cluster.host_exec(old, "sh", "-c",
                      "systemctl kill -s SIGKILL fleet.service; systemctl stop fleet.service")
    try:
        new = cluster.wait_until(lambda: (lambda m: m and m != cluster.machine_id(old) and m)(
            leader(cluster)), MOVE_TIMEOUT, "another host's fleetd to become leader")
        endpoint_host = next(h for h in cluster.running_hosts() if h != old)
        path = write_unit(tmp_path, "after-failover.service")
        out = cluster.fleetctl("start", path, host=endpoint_host).stdout
        assert "launched on" in out
        running = active_on(cluster, "after-failover.service")
        assert len(running) == 1
        assert host_of(cluster, new) != old
    finally:
        cluster.host_exec(old, "systemctl", "start", "fleet.service")


@pytest.mark.parametrize("verb", ["start", "load"])
def test_missing_unit_file_is_a_clear_error(cluster: LocalCluster, verb: str) -> None:
    proc = cluster.fleetctl(verb, "/nonexistent/nothing.service", check=False)
    assert proc.returncode == 1
    assert "nothing.service" in proc.stderr
    assert table(cluster, "list-unit-files", "unit") == []
