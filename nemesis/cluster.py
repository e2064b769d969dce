"""The real local cluster: a thin Python face on `vagrant/local-cluster`.

Used by the real-cluster tests (tests/conftest.py) and by the nemesis runner. `LocalCluster`
runs the tool (hosts are systemd-nspawn containers with a real systemd, a 3-member etcd on the
bridge, fleetd as fleet.service in every host), reads its state directory,
runs fleetctl from this checkout's .venv against a live host's API socket, and runs commands
inside hosts. Every failure raises `ClusterError` with the command and its output, so a failing
test says what the tool said.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "vagrant" / "local-cluster"
# the fleetctl installed beside the running Python (.venv/bin/fleetctl for `make test`, also
# from a git worktree that runs with another checkout's venv and PYTHONPATH=the worktree)
FLEETCTL = Path(sys.executable).parent / "fleetctl"
STATE = Path(os.environ.get("LOCAL_CLUSTER_STATE", "/run/fleet-local-cluster"))
API_PORT = 49153  # every host's TLS API (api_listen=<ip>:49153, api_auth=token/cert)

T = TypeVar("T")


class ClusterError(AssertionError):
    """A tool, fleetctl or in-host command failed, or a wait timed out."""


def _describe(proc: subprocess.CompletedProcess[str]) -> str:
    cmd = " ".join(str(a) for a in proc.args)
    return (
        f"`{cmd}` exited {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout.rstrip()}\n--- stderr ---\n{proc.stderr.rstrip()}"
    )


def _run(
    args: Sequence[str | os.PathLike[str]],
    *,
    check: bool,
    timeout: float,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.run(
            [str(a) for a in args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise ClusterError(
            f"`{' '.join(str(a) for a in args)}` did not finish within {timeout}s\n"
            f"--- stdout ---\n{e.stdout or ''}\n--- stderr ---\n{e.stderr or ''}"
        ) from None
    if check and proc.returncode != 0:
        raise ClusterError(_describe(proc))
    return proc


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> T:
    """Poll `predicate` until it returns something truthy, and return that.

    Exceptions raised by the predicate count as "not yet"; the last one (or the last falsy
    value) is quoted in the failure message: "timed out after 10s waiting for <what>".
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as e:  # any failure means "not yet"
            last = e
        if time.monotonic() >= deadline:
            raise ClusterError(
                f"timed out after {timeout}s waiting for {what}; last result: {last!r}"
            )
        time.sleep(interval)


class LocalCluster:
    """Drive `vagrant/local-cluster` and the hosts it made."""

    def __init__(self, tool: Path = TOOL, state: Path = STATE, fleetctl_bin: Path = FLEETCTL):
        self.tool = tool
        self.state = state
        self.fleetctl_bin = fleetctl_bin

    # -- the tool

    def run_tool(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 300,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return _run([self.tool, *args], check=check, timeout=timeout, env=env)

    def up(self, n: int = 3, wait_fleet: bool = True, timeout: float = 600) -> None:
        """Bring up hosts h1..hN (idempotent); with wait_fleet, until fleetd answers in each."""
        env = {} if wait_fleet else {"LOCAL_CLUSTER_NO_WAIT_FLEET": "1"}
        self.run_tool("up", str(n), timeout=timeout, env=env)

    def down(self, check: bool = True) -> None:
        self.run_tool("down", check=check, timeout=120)

    def status(self) -> str:
        return self.run_tool("status").stdout

    # -- state

    def hosts(self) -> list[str]:
        """All hosts of the cluster, running or powered off, in order (h1, h2, ..., h10)."""
        if not self.state.is_dir():
            return []
        names = [p.parent.name for p in self.state.glob("*/ip")]
        return sorted(names, key=lambda n: (len(n), n))

    def is_running(self, name: str) -> bool:
        try:
            pid = int((self.state / name / "nspawn.pid").read_text())
            leader = int((self.state / name / "leader").read_text())
        except (OSError, ValueError):
            return False
        return Path(f"/proc/{pid}").exists() and Path(f"/proc/{leader}").exists()

    def running_hosts(self) -> list[str]:
        return [h for h in self.hosts() if self.is_running(h)]

    def machine_id(self, name: str) -> str:
        return self._read(name, "machine-id")

    def ip(self, name: str) -> str:
        return self._read(name, "ip")

    def leader_pid(self, name: str) -> int:
        """PID (as seen from this machine) of the host's systemd."""
        return int(self._read(name, "leader"))

    @property
    def etcd_endpoints(self) -> list[str]:
        """Every etcd member's client URL as the hosts reach it (on the bridge), member 1 first."""
        return (self.state / "etcd" / "endpoints").read_text().split()

    @property
    def etcd_endpoint(self) -> str:
        """The first etcd member's client URL."""
        return self.etcd_endpoints[0]

    def endpoint(self, name: str) -> str:
        """FLEETCTL_ENDPOINT for the host's fleetd API."""
        return f"unix://{self.state / name / 'fleet.sock'}"

    def api_url(self, name: str) -> str:
        """The host's TCP API: https with a certificate signed by `api_ca_file()`."""
        return f"https://{self.ip(name)}:{API_PORT}"

    def api_token(self) -> str:
        """The bearer token every host's TCP API accepts (or a client certificate: `env --mtls`)."""
        return self._state_file("api/token")

    def api_ca_file(self) -> str:
        """Path of the CA certificate that signed every host's API certificate."""
        return str(self.state / "api" / "ca.crt")

    def ssh_identity(self) -> str:
        """Path of the private key that logs in as root on every host (sshd on port 22)."""
        return str(self.state / "ssh" / "id_ed25519")

    def scrape_metrics(self, name: str, timeout: float = 10) -> str:
        """GET /metrics from host `name`'s fleetd over its API socket (as an operator's
        `curl --unix-socket`); raises OSError if it does not answer."""
        path = self.endpoint(name).removeprefix("unix://")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: fleet\r\n\r\n")
            raw = b"".join(iter(lambda: sock.recv(65536), b""))
        head, _, body = raw.partition(b"\r\n\r\n")
        if head.split(b" ", 2)[1:2] != [b"200"] or b"text/plain" not in head:
            raise OSError(f"GET /metrics on {name}: {head.decode(errors='replace')}")
        return body.decode()

    def is_cut(self, name: str) -> bool:
        out = _run(["ip", "-o", "link", "show", f"lc-{name}"], check=True, timeout=10).stdout
        flags = out.split("<", 1)[1].split(">", 1)[0].split(",")
        return "UP" not in flags

    def _read(self, name: str, what: str) -> str:
        return self._state_file(f"{name}/{what}")

    def _state_file(self, relative: str) -> str:
        path = self.state / relative
        try:
            return path.read_text().strip()
        except OSError as e:
            raise ClusterError(f"cannot read {path}: {e}") from None

    # -- commands

    def fleetctl(
        self, *args: str, host: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run this checkout's fleetctl against `host`'s API (default: the first running host)."""
        if host is None:
            running = self.running_hosts()
            if not running:
                raise ClusterError("fleetctl: no running host in the local cluster")
            host = running[0]
        env = {"FLEETCTL_ENDPOINT": self.endpoint(host)}
        return _run([self.fleetctl_bin, *args], check=check, timeout=timeout, env=env)

    def host_exec(
        self, name: str, *cmd: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` inside host `name` (e.g. "systemctl", "is-active", "hello.service")."""
        return self.run_tool("exec", name, *cmd, check=check, timeout=timeout)

    def stop_host(self, *names: str) -> None:
        """Clean power-off (systemd inside halts) of the hosts at once; each keeps its identity."""
        self.run_tool("stop-host", *names, timeout=60)

    def start_host(self, *names: str, wait_fleet: bool = True) -> None:
        env = {} if wait_fleet else {"LOCAL_CLUSTER_NO_WAIT_FLEET": "1"}
        self.run_tool("start-host", *names, timeout=180, env=env)

    def kill_host(self, *names: str) -> None:
        """Hard power-off of the hosts at once: no shutdown runs, fleetd revokes nothing."""
        self.run_tool("kill-host", *names, timeout=60)

    def remove_host(self, *names: str) -> None:
        """Power the hosts off and forget them: the cluster shrinks."""
        self.run_tool("remove-host", *names, timeout=60)

    def freeze(self, name: str) -> None:
        """SIGSTOP fleetd's main process in host `name`."""
        self.run_tool("freeze", name, timeout=30)

    def thaw(self, name: str) -> None:
        self.run_tool("thaw", name, timeout=30)

    def kill_fleet(self, name: str) -> None:
        """SIGKILL fleetd in host `name`; its systemd restarts it."""
        self.run_tool("kill-fleet", name, timeout=30)

    def fleet_main_pid(self, name: str) -> int:
        """fleet.service's MainPID in the host's own pid namespace (0: not running)."""
        out = self.host_exec(name, "systemctl", "show", "-p", "MainPID", "--value", "fleet.service")
        return int(out.stdout.strip() or 0)

    # -- etcd members (1-based)

    def etcd_status(self) -> list[dict[str, str]]:
        """One dict per member: member, url, pid, process (running/frozen/dead), healthy, leader."""
        lines = self.run_tool("etcd-status", timeout=60).stdout.splitlines()
        keys = [k.lower() for k in lines[0].split()]
        return [dict(zip(keys, ln.split(), strict=True)) for ln in lines[1:] if ln.strip()]

    def etcd_leader(self) -> int | None:
        """The member number of etcd's leader, if a healthy member says it leads."""
        for row in self.etcd_status():
            if row["leader"] == "true":
                return int(row["member"].lstrip("e"))
        return None

    def restore_etcd(self) -> None:
        """Start killed members again and thaw frozen ones."""
        for row in self.etcd_status():
            member = int(row["member"].lstrip("e"))
            if row["process"] == "dead":
                self.etcd_start(member)
            elif row["process"] == "frozen":
                self.etcd_thaw(member)

    def etcd_kill(self, n: int) -> None:
        self.run_tool("etcd-kill", str(n), timeout=30)

    def etcd_start(self, n: int) -> None:
        self.run_tool("etcd-start", str(n), timeout=60)

    def etcd_freeze(self, n: int) -> None:
        self.run_tool("etcd-freeze", str(n), timeout=30)

    def etcd_thaw(self, n: int) -> None:
        self.run_tool("etcd-thaw", str(n), timeout=30)

    def etcdctl(self, *args: str, timeout: float = 10,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        """etcdctl (v3 API) against every member, as etcd's root user over TLS when the
        cluster's etcd has them (the tool keeps the CA and root's password in its state)."""
        cmd = ["etcdctl", f"--endpoints={','.join(self.etcd_endpoints)}", "--command-timeout=3s",
               *self.etcd_admin_flags(), *args]
        return _run(cmd, check=check, timeout=timeout, env={"ETCDCTL_API": "3"})

    def etcd_admin_flags(self) -> list[str]:
        """etcdctl's TLS and root-user flags for this cluster's etcd (none for a plain one)."""
        pki = self.state / "etcd-pki"
        if not (pki / "ca.crt").is_file():
            return []
        password = (pki / "root.password").read_text().strip()
        return [f"--cacert={pki / 'ca.crt'}", f"--user=root:{password}"]

    def cut(self, name: str) -> None:
        """Take the host's network link down: it can reach nothing, nothing can reach it."""
        self.run_tool("cut", name, timeout=30)

    def heal(self, name: str) -> None:
        self.run_tool("heal", name, timeout=30)

    def wait_until(
        self, predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.2
    ) -> T:
        return wait_until(predicate, timeout, what, interval)
