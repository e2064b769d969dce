"""The local cluster tool itself (vagrant/local-cluster): hosts, identity, power and network.

These tests need the hosts and etcd, not a working fleetd (they use `cluster_hosts`).
"""

from __future__ import annotations

import re
import subprocess
from urllib.parse import urlparse

import pytest
from cluster import TOOL, ClusterError, LocalCluster, wait_until

pytestmark = pytest.mark.cluster


def etcd_reachable(lc: LocalCluster, host: str) -> bool:
    """Can `host` open a TCP connection to etcd on the bridge (1 s timeout)?"""
    url = urlparse(lc.etcd_endpoint)
    code = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({url.hostname!r}, {url.port}), timeout=1).close()\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    return lc.host_exec(host, "python3", "-c", code, check=False, timeout=20).returncode == 0


def test_up_gives_three_running_hosts_with_distinct_identities(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    assert lc.hosts() == ["h1", "h2", "h3"]
    assert lc.running_hosts() == ["h1", "h2", "h3"]
    ids = [lc.machine_id(h) for h in lc.hosts()]
    ips = [lc.ip(h) for h in lc.hosts()]
    assert len(set(ids)) == 3 and len(set(ips)) == 3
    for host, machine_id, ip in zip(lc.hosts(), ids, ips, strict=True):
        assert re.fullmatch(r"[0-9a-f]{32}", machine_id)
        assert lc.host_exec(host, "cat", "/etc/machine-id").stdout.strip() == machine_id
        assert lc.host_exec(host, "hostname").stdout.strip() == host
        addrs = lc.host_exec(host, "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
        assert f"inet {ip}/24" in addrs


def test_each_host_runs_its_own_systemd(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    leaders = {lc.leader_pid(h) for h in lc.hosts()}
    assert len(leaders) == 3
    for host in lc.hosts():
        state = lc.host_exec(host, "systemctl", "is-system-running", check=False).stdout.strip()
        assert state in ("running", "degraded"), f"{host}: {state}"
        assert lc.host_exec(host, "cat", "/proc/1/comm").stdout.strip() == "systemd"


def test_status_lists_every_host(cluster_hosts: LocalCluster):
    out = cluster_hosts.status()
    assert "etcd: healthy" in out
    for host in cluster_hosts.hosts():
        line = next(ln for ln in out.splitlines() if ln.startswith(host + " "))
        assert cluster_hosts.machine_id(host) in line
        assert cluster_hosts.ip(host) in line
        assert " up" in line


def test_exec_passes_output_and_exit_code(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    done = lc.host_exec("h2", "bash", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert (done.returncode, done.stdout, done.stderr.strip().splitlines()[-1]) == (
        7,
        "out\n",
        "err",
    )


def test_fleet_service_is_installed_from_the_repo(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    for host in lc.hosts():
        conf = lc.host_exec(host, "cat", "/etc/fleet/fleet.conf").stdout
        assert f"public_ip={lc.ip(host)}\n" in conf
        assert f"metadata=host={host}\n" in conf
        assert f"etcd_servers={lc.etcd_endpoint}\n" in conf
        show = lc.host_exec(
            host, "systemctl", "show", "fleet.service", "-p", "ExecStart", "-p", "Environment"
        ).stdout
        assert "/usr/bin/python3 -m fleetd --config /etc/fleet/fleet.conf" in show
        assert "PYTHONPATH=/opt/fleet/.hostlib:/opt/fleet" in show
        # the checkout is there, read-only
        assert lc.host_exec(host, "test", "-f", "/opt/fleet/vagrant/fleet.service").returncode == 0
        assert lc.host_exec(host, "touch", "/opt/fleet/x", check=False).returncode != 0


def test_up_again_changes_nothing(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    before = {h: lc.leader_pid(h) for h in lc.hosts()}
    lc.up(3, wait_fleet=False)
    assert {h: lc.leader_pid(h) for h in lc.hosts()} == before


def test_stop_and_start_host_keeps_its_identity(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    machine_id, ip = lc.machine_id("h3"), lc.ip("h3")
    lc.stop_host("h3")
    assert not lc.is_running("h3")
    assert lc.running_hosts() == ["h1", "h2"]
    stopped = lc.host_exec("h3", "true", check=False)
    assert stopped.returncode != 0 and "not running" in stopped.stderr
    assert re.search(r"^h3 .* stopped ", lc.status(), re.M)
    lc.stop_host("h3")  # idempotent

    lc.start_host("h3", wait_fleet=False)
    assert lc.is_running("h3")
    assert (lc.machine_id("h3"), lc.ip("h3")) == (machine_id, ip)
    assert lc.host_exec("h3", "cat", "/etc/machine-id").stdout.strip() == machine_id
    assert f"inet {ip}/24" in lc.host_exec("h3", "ip", "-4", "-o", "addr").stdout
    # the volatile overlay lost fleet.conf; start-host put it back
    assert f"public_ip={ip}" in lc.host_exec("h3", "cat", "/etc/fleet/fleet.conf").stdout


def test_env_names_the_first_running_host(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    out = lc.run_tool("env").stdout
    assert out == f"export FLEETCTL_ENDPOINT={lc.endpoint('h1')}\n"
    lc.stop_host("h1")
    assert lc.run_tool("env").stdout == f"export FLEETCTL_ENDPOINT={lc.endpoint('h2')}\n"


def test_cut_and_heal_toggle_reachability(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    assert etcd_reachable(lc, "h1")
    lc.cut("h1")
    assert lc.is_cut("h1")
    assert not etcd_reachable(lc, "h1")
    assert etcd_reachable(lc, "h2")  # only h1 is cut
    lc.cut("h1")  # idempotent
    lc.heal("h1")
    assert not lc.is_cut("h1")
    wait_until(lambda: etcd_reachable(lc, "h1"), 10, "h1 to reach etcd after heal")


def test_unknown_host_is_a_clear_error(cluster_hosts: LocalCluster):
    with pytest.raises(ClusterError, match="no host 'h9'"):
        cluster_hosts.stop_host("h9")


def test_usage_without_arguments():
    done = subprocess.run([str(TOOL)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "usage: vagrant/local-cluster COMMAND" in done.stderr
    helped = subprocess.run([str(TOOL), "--help"], capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0 and "stop-host NAME" in helped.stdout
