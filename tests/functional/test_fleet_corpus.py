"""Real cluster: every real fleet unit file of tests/data/fleet-corpus, through the real fleetctl.

Each file is used unchanged, under the name it had in its repository. All of them are
submitted; the one fleet refused is refused with fleet's message. Then every unit whose
[X-Fleet] constraints can hold on the local cluster (3 hosts, metadata host=h1..h3, no other
keys) is started, a template as one instance.

"Starts" means: fleetd places the unit (its file is in /run/fleet/units on exactly one host, on
every host for a global unit, and on the host its constraints name) and that host's agent asks
systemd to start it: systemd shows the unit left the inactive state, or the host's fleetd log
records the start task (systemd may refuse a start, e.g. for a missing Requires=docker.service).
Whether the payload then runs is not checked: most of these units run docker images that the
hosts neither have nor can download. The units whose constraints cannot hold here (a metadata
key no host has, a MachineOf peer no one submits) must stay unplaced.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cluster import LocalCluster
from test_units import REPO, table

CORPUS = REPO / "tests" / "data" / "fleet-corpus"
REFUSED = {"myapp.service": "unexpected newline encountered while parsing option name"}
GLOBAL = ["deis-logspout.service", "deis-store-daemon.service", "deis-kube-proxy.service",
          "deis-mesos-slave.service", "deis-swarm-node.service", "conflict-global.1.service"]
ANYWHERE = [
    "hello.service", "ping.service", "pong.service", "pong.1.service", "global.service",
    "socket-activated.service", "simplehttp.service", "web@8000.service", "vulcan.service",
    "deis-builder.service", "deis-database.service", "deis-store-gateway.service",
    "conflict.multiple.1.service", "conflicts-with-hello.service", "subgun-http@1.service",
    "apache@1.service", "registry@1.service", "deis-router.service", "deis-router@1.service",
    "ssh.pool-1@1.1.service",
]
# follower -> the unit it must share a machine with (MachineOf / X-ConditionMachineOf)
FOLLOWERS = {"subgun-presence@1.service": "subgun-http@1.service",
             "apache-discovery@1.service": "apache@1.service",
             "ssh.pool-1.register@1.1.service": "ssh.pool-1@1.1.service"}
APART = [("conflicts-with-hello.service", "hello.service"),
         ("deis-router.service", "deis-router@1.service")]
# role=control (no host has it), hostname=h1 (the hosts' key is host), peer redis-demo.service
NEVER = ["coreos-deploy.service", "metadata@h1.service", "etcd-amb-redis.service"]
START_TIMEOUT = 240


def unpack(tmp_path: Path) -> dict[str, Path]:
    """The corpus under the files' own names in `tmp_path`: name -> path."""
    found = {}
    for source in sorted(CORPUS.glob("*__*")):
        name = source.name.split("__", 1)[1]
        found[name] = tmp_path / name
        shutil.copyfile(source, found[name])
    return found


def host_view(cluster: LocalCluster, host: str, units: list[str]) -> dict[str, bool]:
    """Placed unit -> whether a start was asked of this host's systemd."""
    files = cluster.host_exec(host, "ls", "-1", "/run/fleet/units", check=False).stdout.split()
    placed = [u for u in units if u in files]
    if not placed:
        return {}
    show = cluster.host_exec(host, "systemctl", "show", "--property=Id,ActiveState,"
                             "InactiveExitTimestampMonotonic", *placed, check=False).stdout
    left = {props.get("Id") for props in _blocks(show)
            if props.get("ActiveState") != "inactive"
            or props.get("InactiveExitTimestampMonotonic", "0") != "0"}
    log = cluster.host_exec(host, "journalctl", "-u", "fleet.service", "-o", "cat",
                            "--no-pager", check=False).stdout
    asked = {u for u in placed for line in log.splitlines()
             if "task='start'" in line and f"unit='{u}'" in line}
    return {u: u in left or u in asked for u in placed}


def _blocks(show: str) -> list[dict[str, str]]:
    return [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            for block in show.split("\n\n")]


def where(cluster: LocalCluster, units: list[str]) -> dict[str, dict[str, bool]]:
    """unit -> {host: start asked} for every host the unit is placed on."""
    seen: dict[str, dict[str, bool]] = {u: {} for u in units}
    for host in cluster.running_hosts():
        for unit, asked in host_view(cluster, host, units).items():
            seen[unit][host] = asked
    return seen


def all_started(seen: dict[str, dict[str, bool]], hosts: int) -> bool:
    return all(len(on) == (hosts if unit in GLOBAL else 1) and all(on.values())
               for unit, on in seen.items())


def test_every_corpus_file_submits_and_those_that_can_run_here_start(
        cluster: LocalCluster, tmp_path: Path) -> None:
    files = unpack(tmp_path)
    accepted = [name for name in files if name not in REFUSED]
    for name, message in REFUSED.items():
        refused = cluster.fleetctl("submit", str(files[name]), check=False)
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr
    cluster.fleetctl("submit", *(str(files[n]) for n in accepted), timeout=120)
    listed = {row[0] for row in table(cluster, "list-unit-files", "unit")}
    assert listed == set(accepted)

    started = [*ANYWHERE, *FOLLOWERS, *GLOBAL]
    pin = f"pin@{cluster.machine_id('h1')}.service"
    wanted = [*started, pin]
    cluster.fleetctl("start", "--no-block", *(str(tmp_path / n) for n in [*wanted, *NEVER]),
                     timeout=120)
    hosts = len(cluster.running_hosts())
    try:
        seen = cluster.wait_until(lambda: (lambda s: s if all_started(s, hosts) else None)(
            where(cluster, wanted)), START_TIMEOUT, "every startable corpus unit placed and started",
            interval=3)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nwhere each unit is (host: start asked): {where(cluster, wanted)}"
                             f"\nlist-unit-files:\n{cluster.fleetctl('list-unit-files').stdout}") from None

    assert list(seen[pin]) == ["h1"]  # MachineID=%i
    for follower, leader in FOLLOWERS.items():
        assert list(seen[follower]) == list(seen[leader]), (follower, seen[follower], seen[leader])
    for one, other in APART:
        assert set(seen[one]).isdisjoint(seen[other]), (one, seen[one], other, seen[other])
    assert where(cluster, NEVER) == {u: {} for u in NEVER}
    targets = dict(table(cluster, "list-unit-files", "unit,target"))
    assert [targets[u] for u in NEVER] == ["global", "-", "-"]  # a global unit shows "global"
