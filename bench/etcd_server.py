"""Real etcd servers for tests and benchmarks: one node or a small cluster on free loopback ports.

Not a test module (tests/conftest.py and bench.engine use it). `EtcdCluster` owns the
processes, their data dirs (on tmpfs when there is one) and their logs; it starts members with
fast raft timings, waits for /health, checks that the member answering is ours (by name), and
stops members by PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ETCD = shutil.which("etcd")
# Raft heartbeat / election timeout (ms). The tests' members fail over in a fraction of a second;
# a loaded benchmark keeps etcd's own defaults, which survive a starved CPU (see bench.cluster).
TEST_TIMINGS = (20, 200)
ETCD_DEFAULT_TIMINGS = (100, 1000)


@dataclass(frozen=True)
class ServerTLS:
    """PEM files for members that serve clients over TLS and demand a client cert signed by `ca`.

    `client_cert`/`client_key` are what the health checks present.
    """

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path

    def etcd_flags(self) -> list[str]:
        return ["--cert-file", str(self.cert), "--key-file", str(self.key),
                "--trusted-ca-file", str(self.ca), "--client-cert-auth"]

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


class EtcdStartError(RuntimeError):
    """A member did not come up healthy; the message holds its log tail."""


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    scheme: str = "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports that were free a moment ago (all held open while choosing)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _scratch_root() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _http_json(url: str, body: bytes | None = None, timeout: float = 0.5,
               context: ssl.SSLContext | None = None) -> dict:
    request = urllib.request.Request(url, data=body)
    with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
        return json.loads(resp.read())


class EtcdCluster:
    """`size` etcd members on loopback. Use as a context manager, or start()/stop()."""

    def __init__(self, size: int = 1, binary: str | None = None, data_root: str | None = None,
                 tls: ServerTLS | None = None, timings: tuple[int, int] = TEST_TIMINGS,
                 nice: int = 0) -> None:
        """`data_root`: where the data dirs go (default: tmpfs when there is one, else $TMPDIR).

        `tls`: serve clients over https with client-cert auth (peers stay on http).
        `timings`: raft's heartbeat interval and election timeout in ms (see TEST_TIMINGS).
        `nice`: the members' CPU priority (negative: ahead of everything else on the machine).
        """
        self.timings, self.nice = timings, nice
        found = binary or ETCD
        if found is None:
            raise EtcdStartError("etcd is not installed (apt-get install etcd-server)")
        self.binary: str = found
        self.token = f"fleetd-test-{uuid.uuid4().hex[:8]}"
        self.workdir = Path(tempfile.mkdtemp(prefix="fleetd-etcd-", dir=data_root or _scratch_root()))
        ports = free_ports(2 * size)
        self.members = [
            Member(f"{self.token}-m{i + 1}", ports[2 * i], ports[2 * i + 1],
                   self.workdir / f"m{i + 1}", self.workdir / f"m{i + 1}.log")
            for i in range(size)
        ]
        self.tls = tls
        self._context = tls.client_context() if tls else None
        for m in self.members:
            m.scheme = "https" if tls else "http"

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def _command(self, m: Member) -> list[str]:
        cluster = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        return [
            *(["nice", "-n", str(self.nice)] if self.nice else []),
            self.binary, "--name", m.name, "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", cluster, "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", str(self.timings[0]), "--election-timeout", str(self.timings[1]),
            "--logger", "zap", "--log-outputs", "stderr",
            *(self.tls.etcd_flags() if self.tls else []),
        ]

    def _spawn(self, m: Member) -> None:
        with open(m.log_path, "ab") as log:
            m.proc = subprocess.Popen(self._command(m), stdout=log, stderr=log,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    def start(self, timeout: float = 10.0) -> EtcdCluster:
        for m in self.members:
            self._spawn(m)
        try:
            for m in self.members:
                self.wait_healthy(m, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, m: Member, timeout: float = 10.0) -> None:
        """Until /health is true on m's port and the member answering there is m itself."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if m.proc is None or m.proc.poll() is not None:
                raise EtcdStartError(f"{m.name} exited:\n{m.log_tail()}")
            if self._is_healthy(m):
                return
            time.sleep(0.02)
        raise EtcdStartError(f"{m.name} not healthy after {timeout} s:\n{m.log_tail()}")

    def _is_healthy(self, m: Member) -> bool:
        try:
            healthy = _http_json(f"{m.client_url}/health", context=self._context).get("health") == "true"
            listing = _http_json(f"{m.client_url}/v3/cluster/member/list", b"{}", context=self._context)
        except (OSError, ValueError):
            return False
        me = listing.get("header", {}).get("member_id")
        return healthy and any(x.get("ID") == me and x.get("name") == m.name
                               for x in listing.get("members", []))

    def _status(self, m: Member) -> dict:
        return _http_json(f"{m.client_url}/v3/maintenance/status", b"{}")

    def metrics(self, index: int) -> str:
        """Member `index`'s Prometheus page."""
        request = urllib.request.Request(f"{self.members[index].client_url}/metrics")
        with urllib.request.urlopen(request, timeout=5, context=self._context) as resp:
            return resp.read().decode()

    def db_bytes(self, index: int) -> int:
        """The size of member `index`'s backend database."""
        return int(self._status(self.members[index]).get("dbSize", 0))

    def leader_index(self) -> int:
        """Which member leads now (asked of the first live member)."""
        live = [m for m in self.members if m.proc is not None and m.proc.poll() is None]
        leader_id = self._status(live[0])["leader"]
        ids = [self._status(m)["header"]["member_id"] if m in live else None for m in self.members]
        return ids.index(leader_id)

    def move_leader(self, index: int, timeout: float = 5.0) -> None:
        """Make member `index` the raft leader (the request must go to the current leader)."""
        target = self._status(self.members[index])["header"]["member_id"]
        deadline = time.monotonic() + timeout
        while (current := self.leader_index()) != index:
            if time.monotonic() > deadline:
                raise EtcdStartError(f"leadership did not move to {self.members[index].name}")
            body = json.dumps({"targetID": target}).encode()
            try:
                _http_json(f"{self.members[current].client_url}/v3/maintenance/transfer-leadership",
                           body, timeout=2.0)
            except OSError:
                time.sleep(0.05)

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Signal one member (SIGKILL: crash; SIGSTOP: freeze) and reap it if it died."""
        proc = self.members[index].proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                proc.wait(5)

    def restart(self, index: int, timeout: float = 10.0) -> None:
        m = self.members[index]
        self._stop_member(m)
        self._spawn(m)
        self.wait_healthy(m, timeout)

    def _stop_member(self, m: Member) -> None:
        proc, m.proc = m.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)  # a frozen member cannot act on SIGTERM
        proc.terminate()
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def stop(self) -> None:
        for m in self.members:
            self._stop_member(m)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
