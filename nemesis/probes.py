"""Questions the scenarios ask the cluster: who leads, the lease TTL, alarms, when a unit runs.

The engine leader is read from etcd (`<prefix>leader` holds the leader's machine id) and
mapped to a host name through the tool's state directory. The brake alarm is looked for in
`fleetctl list-machines` (a "mass-failure" line on stderr) and in `GET /fleet/v1/alarms`;
the keys under `<prefix>alarms/` are counted too.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time

from fleetd.config import FleetConfig
from nemesis.cluster import LocalCluster
from nemesis.sampler import placements, snapshot

PREFIX = FleetConfig.model_fields["etcd_key_prefix"].default


def engine_leader(lc: LocalCluster) -> str | None:
    """The host whose fleetd holds the engine leader key, if any."""
    out = lc.etcdctl("get", "--print-value-only", f"{PREFIX}leader").stdout.strip()
    by_id = {lc.machine_id(h): h for h in lc.hosts()}
    return by_id.get(out.strip('"'))


def wait_real_leader(lc: LocalCluster, timeout: float) -> str | None:
    """Until the leader key names a cluster host and sits on a lease; that host (None on timeout)."""
    deadline = time.monotonic() + timeout
    by_id = {lc.machine_id(h): h for h in lc.hosts()}
    while time.monotonic() < deadline:
        out = lc.etcdctl("get", "-w", "json", f"{PREFIX}leader", check=False).stdout
        kvs = json.loads(out or "{}").get("kvs", []) if out.strip().startswith("{") else []
        if kvs and kvs[0].get("lease"):
            host = by_id.get(base64.b64decode(kvs[0]["value"]).decode())
            if host is not None:
                return host
        time.sleep(0.1)
    return None


def lease_ttl(lc: LocalCluster, host: str) -> float:
    """fleetd's agent_ttl on `host`: fleet.conf's value, else fleetd's own default."""
    conf = lc.host_exec(host, "cat", "/etc/fleet/fleet.conf").stdout
    for line in conf.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "agent_ttl":
            return FleetConfig(agent_ttl=value.strip()).agent_ttl
    return FleetConfig().agent_ttl


def wait_running(lc: LocalCluster, unit: str, since: float, timeout: float) -> float | None:
    """Seconds from `since` until `unit` is active on some host (None on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if placements(snapshot(lc)).get(unit):
            return time.monotonic() - since
        time.sleep(0.2)
    return None


def wait_activating(lc: LocalCluster, host: str, units: set[str], timeout: float) -> bool:
    """Until one of `units` is at least activating on `host` (its StartUnit job is open)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = lc.host_exec(host, "systemctl", "list-units", "--plain", "--no-legend",
                           "--state=activating,active", "nem-*", check=False).stdout
        if {ln.split()[0] for ln in out.splitlines() if ln.strip()} & units:
            return True
        time.sleep(0.05)
    return False


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def api_alarms(lc: LocalCluster, host: str) -> list[object]:
    """`GET /fleet/v1/alarms` on `host`'s API socket; [] when absent or unanswered."""
    conn = _UnixHTTP(str(lc.state / host / "fleet.sock"), timeout=3)
    try:
        conn.request("GET", "/fleet/v1/alarms")
        resp = conn.getresponse()
        body = resp.read()
        return list(json.loads(body).get("alarms") or []) if resp.status == 200 else []
    except (OSError, ValueError, AttributeError):
        return []
    finally:
        conn.close()


def alarm_seen(lc: LocalCluster, host: str) -> bool:
    """Does fleet show a mass-failure alarm (list-machines stderr or the API)?"""
    done = lc.fleetctl("list-machines", host=host, check=False, timeout=15)
    return "mass-failure" in done.stderr or bool(api_alarms(lc, host))


def alarms_in_etcd(lc: LocalCluster) -> int:
    """Keys under `<prefix>alarms/` (where the engine keeps raised alarms), 0 if none."""
    out = lc.etcdctl("get", "--prefix", "--keys-only", f"{PREFIX}alarms/").stdout
    return len([ln for ln in out.splitlines() if ln.strip()])
