"""Real cluster: fleetctl status / journal / restart of a unit on another host than the one
fleetctl talks to, relayed through etcd, checked against that host's own systemd and journal."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import uuid
from pathlib import Path

from cluster import LocalCluster

ASK, OWNER = "h1", "h2"  # fleetctl talks to h1's fleetd; the unit runs on h2


def echo_unit(tmp_path: Path, token: str, xfleet: str) -> str:
    path = tmp_path / "echo.service"
    path.write_text(
        "[Unit]\nDescription=echo " + token + "\n\n[Service]\nType=exec\n"
        "ExecStart=/bin/bash -c 'i=0; while true; do i=$$((i+1)); "
        f"echo \"{token} tick $$i\"; sleep 1; done'\n\n[X-Fleet]\n{xfleet}\n")
    return str(path)


def show(cluster: LocalCluster, host: str, prop: str) -> str:
    return cluster.host_exec(host, "systemctl", "show", "-p", prop, "--value",
                             "echo.service").stdout.strip()


def host_journal(cluster: LocalCluster, host: str) -> list[str]:
    return cluster.host_exec(host, "journalctl", "--unit=echo.service", "--no-pager", "-n", "200",
                             "-o", "cat").stdout.splitlines()


def journalctls(cluster: LocalCluster, host: str) -> list[str]:
    """Processes named journalctl on `host` (the hosts have no pgrep)."""
    scan = ("for f in /proc/[0-9]*/comm; do [ \"$(cat $f 2>/dev/null)\" = journalctl ] "
            "&& echo $f; done; true")
    return cluster.host_exec(host, "bash", "-c", scan).stdout.split()


def start_on_owner(cluster: LocalCluster, tmp_path: Path, token: str) -> None:
    unit = echo_unit(tmp_path, token, f"MachineID={cluster.machine_id(OWNER)}")
    cluster.fleetctl("start", unit, host=ASK)
    cluster.wait_until(lambda: sum(token in line for line in host_journal(cluster, OWNER)) >= 6,
                       30, "six lines of the unit in its host's journal")


def test_status_and_journal_come_from_the_owning_host(cluster: LocalCluster, tmp_path: Path):
    token = uuid.uuid4().hex
    start_on_owner(cluster, tmp_path, token)
    status = cluster.fleetctl("status", "echo.service", host=ASK)
    assert f"echo.service - echo {token}" in status.stdout
    assert "Active: active (running)" in status.stdout
    assert f"Main PID: {show(cluster, OWNER, 'MainPID')}" in status.stdout
    own = cluster.host_exec(OWNER, "systemctl", "status", "-l", "--no-pager", "echo.service")
    assert status.stdout.splitlines()[0] == own.stdout.splitlines()[0]

    journal = cluster.fleetctl("journal", "-n", "5", "-o", "cat", "echo.service", host=ASK)
    lines = journal.stdout.splitlines()
    assert len(lines) == 5 and all(token in line for line in lines), lines
    assert set(lines) <= set(host_journal(cluster, OWNER))
    short = cluster.fleetctl("journal", "--lines", "3", "echo.service", host=ASK).stdout
    entries = [ln for ln in short.splitlines() if not ln.startswith("-- ")]  # older headers
    assert len(entries) == 3 and f"h2 bash[{show(cluster, OWNER, 'MainPID')}]" in entries[-1]
    assert f"{token} tick" in entries[-1]


def test_journal_follow_streams_new_lines_and_stops_journalctl(cluster: LocalCluster,
                                                               tmp_path: Path):
    token = uuid.uuid4().hex
    start_on_owner(cluster, tmp_path, token)
    before = set(host_journal(cluster, OWNER))
    assert journalctls(cluster, OWNER) == []
    env = {**os.environ, "FLEETCTL_ENDPOINT": cluster.endpoint(ASK)}
    follow = subprocess.Popen([str(cluster.fleetctl_bin), "journal", "-f", "-n", "0", "-o", "cat",
                               "echo.service"], stdout=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in follow.stdout or ()], daemon=True).start()
    try:
        line = lines.get(timeout=8).strip()
        running = journalctls(cluster, OWNER)  # the follow, on the unit's host
    finally:
        follow.kill()
        follow.wait(10)
    assert token in line and line not in before
    assert len(running) == 1
    cluster.wait_until(lambda: journalctls(cluster, OWNER) == [],
                       15, "journalctl -f on the unit's host to be stopped")


def test_restart_starts_a_new_process_on_the_units_host(cluster: LocalCluster, tmp_path: Path):
    token = uuid.uuid4().hex
    start_on_owner(cluster, tmp_path, token)
    pid, since = show(cluster, OWNER, "MainPID"), show(cluster, OWNER, "ActiveEnterTimestamp")
    out = cluster.fleetctl("restart", "echo.service", host=ASK).stdout
    assert "Unit echo.service launched" in out
    cluster.wait_until(lambda: show(cluster, OWNER, "ActiveState") == "active", 20, "active again")
    assert show(cluster, OWNER, "MainPID") not in ("0", pid)
    assert show(cluster, OWNER, "ActiveEnterTimestamp") != since


def test_restart_of_a_global_unit_restarts_it_on_every_host(cluster: LocalCluster,
                                                            tmp_path: Path):
    cluster.fleetctl("start", echo_unit(tmp_path, uuid.uuid4().hex, "Global=true"), host=ASK)
    hosts = cluster.running_hosts()
    cluster.wait_until(lambda: all(show(cluster, h, "ActiveState") == "active" for h in hosts),
                       30, "the global unit active on every host")
    pids = {h: show(cluster, h, "MainPID") for h in hosts}
    cluster.fleetctl("restart", "echo.service", host=ASK)
    for host in hosts:
        assert show(cluster, host, "MainPID") not in ("0", pids[host]), host
    refused = cluster.fleetctl("journal", "echo.service", host=ASK, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == "Unable to retrieve journal of global unit echo.service."
