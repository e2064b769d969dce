"""Real cluster: dynamic metadata through PATCH /fleet/v1/machines, and `list-units --watch`.

The PATCH goes to a host's own API socket with curl; where the unit runs is checked against the
hosts' systemd. The metadata must outlive `systemctl restart fleet` on that host.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from cluster import ClusterError, LocalCluster
from test_units import MOVE_TIMEOUT, active_on, table, write_unit

UNIT = "webmeta.service"


def fleet_logs(cluster: LocalCluster) -> str:
    return "".join(f"--- {h}: journalctl -u fleet.service (last 40 lines)\n"
                   f"{cluster.run_tool('logs', h, '-n', '40', check=False).stdout}"
                   for h in cluster.running_hosts())


def patch(cluster: LocalCluster, host: str, ops: list[dict]) -> None:
    sock = str(cluster.state / host / "fleet.sock")
    out = subprocess.run(
        ["curl", "-sS", "--unix-socket", sock, "-X", "PATCH", "-H", "Content-Type: application/json",
         "-d", json.dumps(ops), "-o", "/dev/stderr", "-w", "%{http_code}",
         "http://fleetd/fleet/v1/machines"],
        capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout == "204", out.stderr


def metadata_of(cluster: LocalCluster, host: str) -> str:
    rows = {r[0]: r[1] for r in table(cluster, "list-machines", "machine,metadata")}
    return rows.get(cluster.machine_id(host), "")


def test_patched_metadata_places_survives_restart_and_unplaces(cluster: LocalCluster,
                                                               tmp_path: Path) -> None:
    watcher, host = cluster.running_hosts()[:2]
    path = f"/{cluster.machine_id(host)}/metadata/role"
    unit = write_unit(tmp_path, UNIT, "\n[X-Fleet]\nMachineMetadata=role=web\n")
    watch = subprocess.Popen(
        [str(cluster.fleetctl_bin), "list-units", "--watch", "--full", "--fields=unit,machine,active"],
        env={**os.environ, "FLEETCTL_ENDPOINT": cluster.endpoint(watcher)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cluster.fleetctl("start", "--no-block", unit)
        time.sleep(5)
        assert active_on(cluster, UNIT) == []  # no host has role=web: the unit waits

        patch(cluster, host, [{"op": "add", "path": path, "value": {"value": "web"}}])
        try:
            cluster.wait_until(lambda: active_on(cluster, UNIT) == [host], MOVE_TIMEOUT,
                               f"{UNIT} active on {host}")
        except ClusterError as exc:  # an intermittent failure: say what every fleetd did
            raise ClusterError(f"{exc}\n{fleet_logs(cluster)}") from None
        assert "role=web" in metadata_of(cluster, host)

        cluster.host_exec(host, "systemctl", "restart", "fleet")
        cluster.wait_until(lambda: "role=web" in metadata_of(cluster, host), MOVE_TIMEOUT,
                           f"{host} back with role=web")
        time.sleep(3)
        assert active_on(cluster, UNIT) == [host]  # nothing moved

        patch(cluster, host, [{"op": "remove", "path": path}])
        cluster.wait_until(lambda: active_on(cluster, UNIT) == [], MOVE_TIMEOUT,
                           f"{UNIT} gone once role=web is removed")
        assert "role=web" not in metadata_of(cluster, host)
    finally:
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    tables = out.split("\n\n")  # with the legend, even an empty table is its header line
    assert all(t.startswith("UNIT") for t in tables), out
    first_active = next(i for i, t in enumerate(tables) if _shows_active(t))
    assert first_active > 0  # the watch showed the unit become active, after earlier tables
    assert not _shows_active(tables[-1])  # ... and leave once role=web was removed


def _shows_active(table_text: str) -> bool:
    rows = [re.split(r"\t+", line) for line in table_text.splitlines()]
    return any(row[0] == UNIT and row[-1] == "active" for row in rows)
