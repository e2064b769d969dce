"""Shared fixtures: real etcd servers for the integration tests.

When etcd is not installed the tests that need it are skipped, except under CI
(`CI=true`), where they fail: CI must never silently skip the real-etcd tier.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from etcd_server import ETCD, EtcdCluster


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
