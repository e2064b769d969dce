"""Shared fixtures for the real tiers: etcd servers, and the local cluster of systemd hosts.

`etcd` / `etcd_cluster`: real etcd members on free loopback ports.
`cluster_hosts`: the local cluster's hosts (h1..h3, each a real systemd) and its 3-member etcd
are up;
fleetd is started but not waited for. `cluster`: the same cluster once fleetd answers on every
host's API socket. It is brought up once per session by `vagrant/local-cluster up 3` and torn
down with `down` at the end, unless it was already running when the session began. After each
test that used it, hosts the test powered off are started again, hosts it cut are healed and
(for `cluster` tests) every unit is destroyed. etcd members a test killed or froze are
started or thawed again. The nemesis tests grow the cluster to 5 hosts for their module and
remove h4 and h5 afterwards (the other tests expect exactly h1..h3).

Anything that cannot start is skipped with the reason, except under CI (`CI=true`), where the
test fails: CI must never silently skip a real tier.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from bench.etcd_server import ETCD, EtcdCluster
from nemesis.alarms import AlarmLedger, read_alarms
from nemesis.cluster import ClusterError, LocalCluster


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_etcd() -> None:
    """Skip (or, under CI, fail) the calling test when there is no etcd binary."""
    if ETCD is None:
        message = "etcd is not installed (apt-get install etcd-server)"
        if _in_ci():
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)


@pytest.fixture(scope="session")
def etcd() -> Iterator[EtcdCluster]:
    """One etcd member on free loopback ports, shared by the session (use unique prefixes)."""
    require_etcd()
    with EtcdCluster(1) as cluster:
        yield cluster


@pytest.fixture
def etcd_cluster() -> Iterator[EtcdCluster]:
    """A fresh 3-member etcd cluster for one test (failover tests may kill members)."""
    require_etcd()
    with EtcdCluster(3) as cluster:
        yield cluster


HOSTS = 3


def _attempt(step: Callable[[], None]) -> str | None:
    """Run a cluster step; return the tool's failure output instead of raising it."""
    try:
        step()
    except ClusterError as e:
        return str(e)
    return None


def _cannot_start(message: str) -> None:
    if _in_ci():
        pytest.fail(f"CI=true: the local cluster cannot start:\n{message}", pytrace=False)
    errors = [ln for ln in message.splitlines() if "error:" in ln]
    pytest.skip(f"the local cluster cannot start: {(errors or message.splitlines() or [''])[-1]}")


@pytest.fixture(scope="session")
def cluster_hosts() -> Iterator[LocalCluster]:
    """Hosts h1..h3 running (real systemd each) and etcd up; fleetd may not be ready."""
    if os.geteuid() != 0:
        _cannot_start("needs root (network namespaces, cgroups, systemd-nspawn)")
    lc = LocalCluster()
    started_here = not lc.running_hosts()  # a cluster already up (e.g. `make demo`) stays up
    error = _attempt(lambda: lc.up(HOSTS, wait_fleet=False))
    if error:
        if started_here:
            lc.down(check=False)
        _cannot_start(error)
    yield lc
    if started_here:
        lc.down()


@pytest.fixture(scope="session")
def cluster(cluster_hosts: LocalCluster) -> LocalCluster:
    """The same cluster, once fleetd answers on every host."""
    error = _attempt(lambda: cluster_hosts.up(HOSTS, wait_fleet=True))
    if error:
        _cannot_start(error)
    return cluster_hosts


def destroy_all_units(lc: LocalCluster) -> None:
    out = lc.fleetctl("list-unit-files", "--no-legend", "--fields=unit").stdout
    units = out.split()
    if units:
        lc.fleetctl("destroy", *units)


@pytest.fixture(scope="session")
def _alarm_ledger() -> AlarmLedger:
    return AlarmLedger()


def _alarm_readings(lc: LocalCluster) -> list[tuple[str, dict[str, float]]]:
    """The agent alarms of every host whose fleetd answers (one powered off or frozen does not)."""
    readings = []
    for name in lc.running_hosts():
        try:
            readings.append((name, read_alarms(lc.scrape_metrics(name, timeout=3))))
        except OSError:
            continue
    return readings


@pytest.fixture(autouse=True)
def _restore_cluster(request: pytest.FixtureRequest, _alarm_ledger: AlarmLedger) -> Iterator[None]:
    """After a test: fail it if an agent alarm rose since the previous cluster test ended (a
    relist caught what a watch missed, or a pass was abandoned; a catch is counted at the next
    check, 15 to 30 s later); start hosts it powered off, heal hosts it cut, destroy units it
    made."""
    lc, with_fleet = _local_cluster_of(request)
    yield
    if lc is None:
        return
    rises = _alarm_ledger.rises(_alarm_readings(lc))
    try:
        _restore(lc, with_fleet)
    finally:
        if rises:
            pytest.fail("agent alarms rose during this test (see fleetd's log on those hosts):\n"
                        + "\n".join(rises), pytrace=False)


def _restore(lc: LocalCluster, with_fleet: bool) -> None:
    lc.restore_etcd()
    for name in lc.hosts():
        if lc.is_cut(name):
            lc.heal(name)
        if not lc.is_running(name):
            lc.start_host(name, wait_fleet=with_fleet)
    if with_fleet:
        destroy_all_units(lc)


def _local_cluster_of(request: pytest.FixtureRequest) -> tuple[LocalCluster | None, bool]:
    """The real local cluster this test uses, if any (tests may have their own `cluster`)."""
    for name in ("cluster", "cluster_hosts"):
        if name not in request.fixturenames:
            continue
        try:
            value = request.getfixturevalue(name)
        except (pytest.skip.Exception, pytest.fail.Exception, ClusterError):
            return None, False  # it never came up: nothing to restore (the test says why)
        if isinstance(value, LocalCluster):
            return value, name == "cluster"
    return None, False
