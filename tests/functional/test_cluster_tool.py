"""The local cluster tool itself (vagrant/local-cluster): hosts, identity, power, network,
the 3-member etcd and the fault commands (freeze/thaw/kill-fleet, etcd-kill/start/freeze/thaw),
each checked by the real state (process states in /proc, etcd's own answers, systemd's).

These tests need the hosts and etcd, not a working fleetd (they use `cluster_hosts`).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
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
        assert f"etcd_servers={','.join(lc.etcd_endpoints)}\n" in conf
        assert f"etcd_username=fleet-{host}\n" in conf and "etcd_cafile=/etc/fleet/etcd-ca.crt\n" in conf
        assert "etcd_insecure" not in conf  # TLS and auth by default
        mode = lc.host_exec(host, "stat", "-c", "%a", "/etc/fleet/etcd.password").stdout.strip()
        assert mode == "600"
        assert "agent_ttl" not in conf  # fleetd's own default is exercised
        show = lc.host_exec(
            host, "systemctl", "show", "fleet.service", "-p", "ExecStart", "-p", "Environment"
        ).stdout
        assert "/usr/bin/python3 -m fleetd --config /etc/fleet/fleet.conf" in show
        assert "PYTHONPATH=/opt/fleet-hostlib:/opt/fleet" in show
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


# ---------------------------------------------------------------- etcd members


def proc_state(pid: int | str) -> str:
    """The single-letter state of a process of this machine ('' if it is gone or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""
    state = next(ln.split()[1] for ln in text.splitlines() if ln.startswith("State:"))
    return "" if state == "Z" else state


def member(lc: LocalCluster, n: int) -> dict[str, str]:
    return lc.etcd_status()[n - 1]


def member_get(lc: LocalCluster, n: int, key: str) -> str:
    """`key`'s value as member n alone has it (serializable read: no quorum, its own data)."""
    done = subprocess.run(
        ["etcdctl", f"--endpoints={lc.etcd_endpoints[n - 1]}", *lc.etcd_admin_flags(), "get",
         "--print-value-only", "--consistency=s", key],
        capture_output=True, text=True, timeout=20, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
    return done.stdout.strip()


def test_etcd_runs_three_healthy_members_with_one_leader(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    rows = lc.etcd_status()
    assert [r["member"] for r in rows] == ["e1", "e2", "e3"]
    assert [r["url"] for r in rows] == lc.etcd_endpoints
    assert lc.etcd_endpoints == [f"https://10.213.1.1:{p}" for p in (12379, 12389, 12399)]
    assert all(r["process"] == "running" and r["healthy"] == "true" for r in rows), rows
    assert all(proc_state(r["pid"]) in ("S", "R") for r in rows)
    assert sum(r["leader"] == "true" for r in rows) == 1
    members = lc.etcdctl("member", "list").stdout
    assert len(members.splitlines()) == 3 and all(f"e{i}," in members for i in (1, 2, 3))


def test_etcd_kill_then_start_rejoins_with_its_data(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    pid = member(lc, 2)["pid"]
    lc.etcd_kill(2)
    wait_until(lambda: proc_state(pid) == "", 5, "the killed member's process gone")
    assert member(lc, 2)["process"] == "dead"
    # the other two still have quorum (after an election, if e2 led)
    wait_until(lambda: lc.etcdctl("put", "/lc-test/while-e2-dead", "yes"), 15, "a write without e2")
    lc.etcd_start(2)
    row = member(lc, 2)
    assert row["process"] == "running" and row["healthy"] == "true" and row["pid"] != pid
    wait_until(lambda: member_get(lc, 2, "/lc-test/while-e2-dead") == "yes", 10,
               "e2 to catch up with the write it missed")
    lc.etcdctl("del", "/lc-test/while-e2-dead")


def test_etcd_freeze_and_thaw_stop_and_continue_the_member(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    pid = member(lc, 3)["pid"]
    lc.etcd_freeze(3)
    try:
        assert proc_state(pid) == "T"
        row = member(lc, 3)
        assert (row["process"], row["healthy"]) == ("frozen", "false")
    finally:
        lc.etcd_thaw(3)
    assert proc_state(pid) in ("S", "R")
    wait_until(lambda: member(lc, 3)["healthy"] == "true", 10, "e3 healthy after thaw")


# ---------------------------------------------------------------- fleetd faults


def outer_pid(lc: LocalCluster, host: str, inner: int) -> int:
    """This machine's pid of process `inner` of the host's pid namespace."""
    ns = Path(f"/proc/{lc.leader_pid(host)}/ns/pid").readlink()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            nspid = next(ln for ln in status.read_text().splitlines() if ln.startswith("NSpid:"))
            if nspid.split()[-1] == str(inner) and (status.parent / "ns" / "pid").readlink() == ns:
                return int(status.parent.name)
        except (OSError, StopIteration):
            continue
    raise AssertionError(f"{host}: no process {inner}")


def fleet_pid(lc: LocalCluster, host: str) -> int:
    return wait_until(lambda: lc.fleet_main_pid(host), 30, f"fleet.service main pid on {host}")


def test_freeze_and_thaw_stop_and_continue_fleetd(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    pid = outer_pid(lc, "h2", fleet_pid(lc, "h2"))
    lc.freeze("h2")
    try:
        assert proc_state(pid) == "T"
        assert proc_state(outer_pid(lc, "h1", fleet_pid(lc, "h1"))) != "T"  # only h2's
    finally:
        lc.thaw("h2")
    assert proc_state(pid) in ("S", "R")


def test_kill_fleet_kills_it_and_systemd_restarts_it(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    inner = fleet_pid(lc, "h3")
    pid = outer_pid(lc, "h3", inner)
    lc.kill_fleet("h3")
    wait_until(lambda: proc_state(pid) == "", 5, "the old fleetd gone")
    new = wait_until(lambda: (lambda p: p if p not in (0, inner) else 0)(lc.fleet_main_pid("h3")),
                     30, "fleet.service restarted with a new main pid")
    assert new != inner
    shown = lc.host_exec("h3", "systemctl", "show", "-p", "NRestarts", "--value", "fleet.service")
    assert int(shown.stdout) >= 1


def test_stop_host_powers_several_off_and_remove_host_forgets_one(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    lc.stop_host("h2", "h3")
    assert lc.running_hosts() == ["h1"]
    lc.start_host("h2", "h3", wait_fleet=False)
    assert lc.running_hosts() == ["h1", "h2", "h3"]
    lc.up(4, wait_fleet=False)
    assert lc.running_hosts() == ["h1", "h2", "h3", "h4"]
    lc.remove_host("h4")
    assert lc.hosts() == ["h1", "h2", "h3"]
    assert not (lc.state / "h4").exists()
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.count("lc-h4") == 0


def machine_key(lc: LocalCluster, host: str) -> bool:
    """Is host's presence key (on its fleetd's lease) in etcd?"""
    key = f"/_coreos.com/fleet/machines/{lc.machine_id(host)}"
    return bool(lc.etcdctl("get", "--keys-only", key).stdout.strip())


def test_kill_host_cuts_the_power_without_a_shutdown(cluster_hosts: LocalCluster):
    lc = cluster_hosts
    wait_until(lambda: machine_key(lc, "h3"), 60, "h3's fleetd registered in etcd")
    fleetd = outer_pid(lc, "h3", fleet_pid(lc, "h3"))
    leader = lc.leader_pid("h3")
    lc.kill_host("h3")
    # no shutdown ran: fleetd had no chance to revoke its lease, so its key outlives the host
    assert machine_key(lc, "h3")
    assert not lc.is_running("h3")
    assert proc_state(leader) == "" and proc_state(fleetd) == ""
    wait_until(lambda: not machine_key(lc, "h3"), 30, "h3's key to expire with its lease")
    lc.start_host("h3", wait_fleet=False)
    assert lc.is_running("h3") and lc.leader_pid("h3") != leader
    assert lc.host_exec("h3", "cat", "/etc/machine-id").stdout.strip() == lc.machine_id("h3")
