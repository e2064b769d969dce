"""Real cluster: issue 17's attacks, replayed against the local cluster's etcd (TLS, auth on,
one etcd user per host), each refused with nothing stored and nothing run.

The attack: from a shell on a host, write a unit file, a unit record and a global record
(the unit runs a command as root on every host), and put a lease-less leader key. Replayed
as an unprivileged user with no credentials (over TLS with the public CA, and over plain
HTTP), and with the credentials of an agent-only host (made for h3 by `fleetd etcd-setup`,
as an operator would). The same writes made with etcd's root user show the payload is real:
the command then runs on every host. A lease-less leader key put with root's credentials is
replaced by a real leader within one lease TTL, and scheduling goes on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from cluster import LocalCluster
from test_units import HELLO, PREFIX, active_on

from fleetd.model.states import TargetState
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from nemesis import probes

pytestmark = pytest.mark.cluster

KEYS = Keys(PREFIX)
NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
CA = "/etc/fleet/etcd-ca.crt"
RUN_TIMEOUT = 30


class Payload:
    """The three keys of the attack: a global unit whose command leaves a marker file."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.name, self.marker = f"pwn-{tag}.service", f"/run/pwned-{tag}"
        text = (f"[Service]\nExecStart=/bin/touch {self.marker}\nType=oneshot\n"
                "[X-Fleet]\nGlobal=true\n")
        unit_file = UnitFile.parse(text)
        record = codec.encode_unit(Unit(self.name, unit_file.hash, TargetState.LAUNCHED,
                                        is_global=True))
        self.writes = [(KEYS.file(unit_file.hash), unit_file.serialize()),
                       (KEYS.unit(self.name), record), (KEYS.global_unit(self.name), record)]


def host_etcdctl(lc: LocalCluster, host: str, *args: str, user: tuple[str, ...] = NOBODY,
                 endpoints: str | None = None) -> subprocess.CompletedProcess[str]:
    """etcdctl inside `host` as `user` (default: nobody, no etcd credentials)."""
    return lc.host_exec(host, *user, "env", "ETCDCTL_API=3", "etcdctl",
                        f"--endpoints={endpoints or ','.join(lc.etcd_endpoints)}",
                        "--dial-timeout=2s", "--command-timeout=3s", *args, check=False, timeout=30)


def stored(lc: LocalCluster, writes: list[tuple[str, str]]) -> list[str]:
    """Which of the (key, value) `writes` etcd holds (asked as root)."""
    return [k for k, v in writes if lc.etcdctl("get", "--print-value-only", k).stdout.strip() == v]


def ran_anywhere(lc: LocalCluster, payload: Payload) -> list[str]:
    return [h for h in lc.running_hosts()
            if lc.host_exec(h, "test", "-e", payload.marker, check=False).returncode == 0]


@pytest.fixture
def agent_only(cluster: LocalCluster) -> Iterator[str]:
    """An agent-only etcd user for h3's machine, its password in h3's /root (mode 0600);
    yields etcdctl's --user value for it. Removed afterwards."""
    user, pki = "sec-agent-h3", cluster.state / "etcd-pki"
    password = pki / f"{user}.password"
    password.write_text(uuid.uuid4().hex + "\n")
    password.chmod(0o600)
    env = {**os.environ, "FLEET_ETCD_SERVERS": ",".join(cluster.etcd_endpoints),
           "FLEET_ETCD_CAFILE": str(pki / "ca.crt"), "FLEET_ETCD_USERNAME": "root",
           "FLEET_ETCD_PASSWORD_FILE": str(pki / "root.password")}
    subprocess.run([sys.executable, "-m", "fleetd", "etcd-setup", "--user", user, "--password-file",
                    str(password), "--machine", cluster.machine_id("h3"), "--roles", "agent"],
                   env=env, check=True, capture_output=True, text=True, timeout=60)
    yield f"{user}:{password.read_text().strip()}"
    cluster.etcdctl("user", "delete", user, check=False)
    cluster.etcdctl("role", "delete", f"{user}-grants", check=False)
    password.unlink()


def test_an_unprivileged_user_without_credentials_writes_nothing(cluster: LocalCluster) -> None:
    payload = Payload()
    for host in cluster.running_hosts():
        for key, value in [*payload.writes, (KEYS.leader, "intruder")]:
            over_tls = host_etcdctl(cluster, host, f"--cacert={CA}", "put", key, value)
            assert over_tls.returncode != 0 and "user name is empty" in over_tls.stderr, over_tls
            plain = host_etcdctl(cluster, host, "put", key, value, endpoints=",".join(
                e.replace("https:", "http:") for e in cluster.etcd_endpoints))
            assert plain.returncode != 0, plain
        for secret in ("/etc/fleet/etcd.password", "/etc/fleet/etcd-units.env", "/etc/fleet/api.token"):
            read = cluster.host_exec(host, *NOBODY, "cat", secret, check=False)
            assert read.returncode != 0 and "Permission denied" in read.stderr, (host, secret)
    assert stored(cluster, payload.writes) == []
    assert probes.wait_real_leader(cluster, 1) is not None  # the real leader key is untouched
    assert ran_anywhere(cluster, payload) == []


def test_an_agent_only_hosts_credentials_write_only_its_own_reports(
        cluster: LocalCluster, agent_only: str) -> None:
    payload = Payload()
    as_agent = ("--cacert", CA, "--user", agent_only)
    h1 = cluster.machine_id("h1")
    forbidden = [*payload.writes, (KEYS.leader, "intruder"), (KEYS.machine(h1), "{}"),
                 (KEYS.assignment(h1, payload.name), "{}"),
                 (KEYS.assignment(cluster.machine_id("h3"), payload.name), "{}"),
                 (KEYS.exec_request(h1, "sec"), "{}")]
    for key, value in forbidden:
        refused = host_etcdctl(cluster, "h3", *as_agent, "put", key, value, user=())
        assert refused.returncode != 0 and "permission denied" in refused.stderr, (key, refused)
    assert stored(cluster, forbidden) == []
    own = KEYS.state("sec-probe.service", cluster.machine_id("h3"))
    assert host_etcdctl(cluster, "h3", *as_agent, "put", own, "{}", user=()).returncode == 0
    assert host_etcdctl(cluster, "h3", *as_agent, "del", own, user=()).returncode == 0
    assert ran_anywhere(cluster, payload) == []


def test_the_same_writes_with_roots_credentials_run_the_command_everywhere(
        cluster: LocalCluster) -> None:
    """The payload is real: only etcd's refusals stopped it above."""
    payload = Payload()
    for key, value in payload.writes:
        cluster.etcdctl("put", key, value)
    cluster.wait_until(lambda: ran_anywhere(cluster, payload) == cluster.running_hosts(),
                       RUN_TIMEOUT, f"{payload.marker} on every host")
    cluster.fleetctl("destroy", payload.name)


def test_a_lease_less_leader_key_put_with_roots_credentials_is_replaced(cluster: LocalCluster) -> None:
    ttl = probes.lease_ttl(cluster, "h1")
    cluster.etcdctl("put", KEYS.leader, "intruder")
    assert probes.wait_real_leader(cluster, ttl) is not None, "the forged leader key stood a lease TTL"
    cluster.fleetctl("start", str(HELLO))
    cluster.wait_until(lambda: len(active_on(cluster, "hello.service")) == 1, RUN_TIMEOUT,
                       "hello.service running after the forgery")
    logs = "".join(cluster.run_tool("logs", h, "-n", "200", check=False).stdout
                   for h in cluster.running_hosts())
    assert "ignoring forged leader key" in logs

