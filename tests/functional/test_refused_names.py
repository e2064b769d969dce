"""Real cluster: a unit with an invalid name written straight into etcd (past the API) never
reaches any host's systemd. The host it is placed on reports it failed with the reason, its
other units keep running, and `fleetctl destroy` removes it. fleetctl and the API refuse such
names before anything is written.
"""

from __future__ import annotations

import json
import re

from cluster import LocalCluster
from test_units import HELLO, PREFIX, active_on, table

BAD = "-rf.service"  # valid for systemd's rules but for the leading "-", an option to systemctl
MOVE_TIMEOUT = 40


def _hash_of(cluster: LocalCluster, unit: str) -> str:
    rows = table(cluster, "list-unit-files", "unit,hash")
    return next(h for u, h in rows if u == unit)


def _reported(cluster: LocalCluster) -> dict[str, list[str]]:
    out = cluster.fleetctl("list-units", "--no-legend", "--full",
                           "--fields=unit,machine,active,sub").stdout
    rows = [re.split(r"\t+", line) for line in out.splitlines() if line.strip()]
    return {row[0]: row[1:] for row in rows}


def test_an_invalid_name_written_past_the_api_is_refused_by_the_agent(cluster: LocalCluster) -> None:
    cluster.fleetctl("start", str(HELLO))
    (runs_hello,) = active_on(cluster, "hello.service")
    record = {"desiredState": "launched", "hash": _hash_of(cluster, "hello.service"), "name": BAD}
    cluster.etcdctl("put", f"{PREFIX}units/{BAD}", json.dumps(record))
    try:
        cluster.wait_until(lambda: _reported(cluster).get(BAD, [None])[1:] == ["failed", "failed"],
                           MOVE_TIMEOUT, f"{BAD} reported failed")
        states = cluster.etcdctl("get", "--prefix", "--print-value-only",
                                 f"{PREFIX}states/{BAD}/").stdout
        assert 'invalid unit name: unit name cannot start in \\"-\\"' in states, states
        for host in cluster.running_hosts():
            probe = cluster.host_exec(host, "test", "-e", f"/run/fleet/units/{BAD}", check=False)
            assert probe.returncode != 0, f"{BAD} reached {host}'s units directory"
        assert active_on(cluster, "hello.service") == [runs_hello]
        destroyed = cluster.fleetctl("destroy", "--", BAD)
        assert f"Destroyed {BAD}" in destroyed.stdout
        cluster.wait_until(lambda: BAD not in _reported(cluster), MOVE_TIMEOUT, f"{BAD} gone")
    finally:
        cluster.etcdctl("del", f"{PREFIX}units/{BAD}")  # the teardown's destroy cannot take it


def test_fleetctl_refuses_invalid_names_before_writing(cluster: LocalCluster, tmp_path) -> None:
    for name in (".service", "-x.service", "a b.service"):
        (tmp_path / name).write_text(HELLO.read_text())
        run = cluster.fleetctl("start", "--", str(tmp_path / name), check=False)
        assert run.returncode == 1 and f"Error creating units: invalid unit {name}: " in run.stderr
    assert table(cluster, "list-unit-files", "unit") == []
