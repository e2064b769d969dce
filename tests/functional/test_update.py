"""Real cluster: `fleetctl update` rolls new content over a template's running instances one at a
time, checked against each host's own systemd while it happens, and rolls a failing one back."""

from __future__ import annotations

import threading
from pathlib import Path

from cluster import LocalCluster

UNITS = [f"web@{n}.service" for n in (1, 2, 3)]


def template(version: str, exec_start: str | None = None) -> str:
    """ExecStartPre keeps a restarting instance `activating` for 2 s, long enough for the sampler
    to see every instance that is down at once."""
    run = exec_start or f"/bin/sh -c 'echo {version}; exec sleep infinity'"
    return (f"[Unit]\nDescription=web {version}\n\n[Service]\nExecStartPre=/bin/sleep 2\n"
            f"ExecStart={run}\n")


def active_units(cluster: LocalCluster) -> dict[str, str]:
    """Unit -> host whose systemd reports it active."""
    found: dict[str, str] = {}
    for host in cluster.running_hosts():
        out = cluster.host_exec(host, "systemctl", "is-active", *UNITS, check=False).stdout
        for unit, state in zip(UNITS, out.split(), strict=False):
            if state == "active":
                found[unit] = host
    return found


def runs(cluster: LocalCluster, version: str) -> bool:
    """Every instance is active on some host and that host's unit file is `version`."""
    where = active_units(cluster)
    return len(where) == len(UNITS) and all(
        f"echo {version};" in cluster.host_exec(host, "systemctl", "cat", unit).stdout
        for unit, host in where.items())


class Sampler(threading.Thread):
    """Counts, every ~0.3 s, how many instances no host reports active; keeps the maximum."""

    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(daemon=True)
        self.cluster, self.stop, self.most_down, self.samples = cluster, threading.Event(), 0, 0

    def run(self) -> None:
        while not self.stop.is_set():
            down = len(UNITS) - len(active_units(self.cluster))
            self.most_down, self.samples = max(self.most_down, down), self.samples + 1
            self.stop.wait(0.3)


def test_rolling_update_and_rollback(cluster: LocalCluster, tmp_path: Path) -> None:
    path = tmp_path / "web@.service"
    path.write_text(template("v1"))
    cluster.fleetctl("start", *(str(tmp_path / u) for u in UNITS))
    assert runs(cluster, "v1")

    path.write_text(template("v2"))
    sampler = Sampler(cluster)
    sampler.start()
    done = cluster.fleetctl("update", "--batch", "1", "--min-healthy-seconds", "2",
                            "--block-attempts", "20", str(path), check=False, timeout=180)
    sampler.stop.set()
    sampler.join()
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stdout.splitlines() if "updating" in line][-1].startswith("batch 3/3")
    assert sampler.samples >= 5 and sampler.most_down <= 1, (sampler.samples, sampler.most_down)
    assert runs(cluster, "v2")

    path.write_text(template("v3", "/bin/false"))
    failed = cluster.fleetctl("update", "--batch", "1", "--min-healthy-seconds", "2",
                              "--block-attempts", "20", "--rollback", str(path), check=False,
                              timeout=180)
    assert failed.returncode == 1, failed.stdout
    assert "Rolling back web@1.service" in failed.stderr
    assert "batch 2/3" not in failed.stdout
    assert runs(cluster, "v2")
