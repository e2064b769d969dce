"""Real cluster: cordon, drain, uncordon, move, RescheduleOnFailure and reload (SIGHUP), driven
through fleetctl and systemctl.

Where a unit runs is asked of the hosts' own systemd; fleet's view (list-machines' STATE,
list-unit-files' REASON) is checked separately. 3 hosts h1..h3 with metadata host=hN. Machine
states outlive tests (they are etcd records without a lease), so every test uncordons all hosts
when it ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import LocalCluster
from test_scheduling import wait_active
from test_units import MOVE_TIMEOUT, active_on, table, write_unit


@pytest.fixture(autouse=True)
def _uncordon_all(cluster: LocalCluster) -> Iterator[None]:
    yield
    for host in cluster.hosts():
        cluster.fleetctl("uncordon", cluster.machine_id(host), check=False)


def states(cluster: LocalCluster) -> dict[str, str]:
    """host -> list-machines' STATE."""
    rows = table(cluster, "list-machines", "machine,state")
    by_id = {cluster.machine_id(h): h for h in cluster.hosts()}
    return {by_id[machine]: state for machine, state in rows}


def test_drain_moves_units_and_a_rebooted_host_stays_drained_until_uncordoned(
        cluster: LocalCluster, tmp_path: Path) -> None:
    paths = [write_unit(tmp_path, f"life.{i}.service") for i in range(4)]
    cluster.fleetctl("start", *paths)
    names = [f"life.{i}.service" for i in range(4)]
    on_h1 = [n for n in names if active_on(cluster, n) == ["h1"]]
    assert on_h1, "binpack/spread put nothing on h1: the test needs a unit there"
    done = cluster.fleetctl("drain", cluster.machine_id("h1"), "--wait", "--timeout", "120",
                            timeout=150)
    assert done.stdout.splitlines()[-1] == f"Machine {cluster.machine_id('h1')[:8]} drained"
    for name in names:  # every unit still runs, none on h1 (systemd says so)
        assert wait_active(cluster, name) != ["h1"]
    assert states(cluster)["h1"] == "drained"
    cluster.stop_host("h1")
    cluster.start_host("h1")
    assert cluster.wait_until(lambda: states(cluster).get("h1"), MOVE_TIMEOUT,
                              "h1 back in list-machines") == "drained"
    late = write_unit(tmp_path, "late.service", "\n[X-Fleet]\nMachineMetadata=host=h1\n")
    cluster.fleetctl("start", "--no-block", late)
    reason = cluster.wait_until(lambda: dict(table(cluster, "list-unit-files", "unit,reason")).get(
        "late.service", "-").strip("-") or None, MOVE_TIMEOUT, "late.service pending reason")
    assert "is draining" in reason and active_on(cluster, "late.service") == []
    cluster.fleetctl("uncordon", cluster.machine_id("h1"))
    assert states(cluster)["h1"] == "ready"
    assert wait_active(cluster, "late.service") == ["h1"]


def test_a_unit_that_fits_nowhere_stays_and_drain_still_finishes(cluster: LocalCluster,
                                                                  tmp_path: Path) -> None:
    paths = [write_unit(tmp_path, f"one.{i}.service", "\n[X-Fleet]\nConflicts=one.*.service\n")
             for i in range(3)]
    cluster.fleetctl("start", *paths)
    (stuck,) = [f"one.{i}.service" for i in range(3) if active_on(cluster, f"one.{i}.service") == ["h2"]]
    done = cluster.fleetctl("drain", cluster.machine_id("h2"), "--wait", "--timeout", "60", timeout=90)
    assert f"  {stuck} stays: machine {cluster.machine_id('h2')[:8]} is draining" in done.stdout
    assert active_on(cluster, stuck) == ["h2"] and states(cluster)["h2"] == "drained"


def test_cordon_refuses_new_units_and_move_places_one_where_asked(cluster: LocalCluster,
                                                                  tmp_path: Path) -> None:
    cluster.fleetctl("cordon", cluster.machine_id("h3")[:6])
    assert states(cluster)["h3"] == "cordoned"
    paths = [write_unit(tmp_path, f"c.{i}.service") for i in range(4)]
    cluster.fleetctl("start", *paths)
    assert all(active_on(cluster, f"c.{i}.service") != ["h3"] for i in range(4))
    refused = cluster.fleetctl("move", "c.0.service", cluster.machine_id("h3"), check=False)
    assert refused.returncode == 1 and "is cordoned" in refused.stderr
    cluster.fleetctl("uncordon", cluster.machine_id("h3"))
    moved = cluster.fleetctl("move", "c.0.service", cluster.machine_id("h3"), timeout=150)
    assert moved.stdout.startswith("Unit c.0.service moved from ")
    assert wait_active(cluster, "c.0.service") == ["h3"]


def test_a_unit_that_fails_on_its_host_is_started_on_another(cluster: LocalCluster,
                                                               tmp_path: Path) -> None:
    for host in ("h2", "h3"):  # so that it lands on h1, where it fails
        cluster.fleetctl("cordon", cluster.machine_id(host))
    path = tmp_path / "flaky.service"
    path.write_text("[Unit]\nDescription=fails on h1\n[Service]\nType=exec\n"
                    "ExecStart=/bin/bash -c '[ \"$$(cat /proc/sys/kernel/hostname)\" != h1 ] || exit 1; "
                    "while true; do sleep 5; done'\n"
                    "[X-Fleet]\nRescheduleOnFailure=true\nRescheduleDelay=1s\n")
    cluster.fleetctl("start", "--no-block", str(path))

    def failed_on_h1() -> bool:
        probe = cluster.host_exec("h1", "systemctl", "is-failed", "flaky.service", check=False)
        return probe.stdout.strip() == "failed"

    cluster.wait_until(failed_on_h1, MOVE_TIMEOUT, "flaky.service failed on h1")
    for host in ("h2", "h3"):
        cluster.fleetctl("uncordon", cluster.machine_id(host))
    assert wait_active(cluster, "flaky.service") in (["h2"], ["h3"])


def test_reload_applies_new_metadata_without_restarting_fleetd(cluster: LocalCluster,
                                                               tmp_path: Path) -> None:
    pid = cluster.fleet_main_pid("h3")
    path = write_unit(tmp_path, "ssd.service", "\n[X-Fleet]\nMachineMetadata=disk=ssd\n")
    cluster.fleetctl("start", "--no-block", path)
    conf = "/etc/fleet/fleet.conf"
    cluster.host_exec("h3", "sed", "-i", "s/^metadata=host=h3$/metadata=host=h3,disk=ssd/", conf)
    cluster.host_exec("h3", "sh", "-c", f"echo agent_ttl=9s >>{conf}")  # needs a restart: ignored
    try:
        cluster.host_exec("h3", "systemctl", "reload", "fleet")
        assert wait_active(cluster, "ssd.service") == ["h3"]
        assert cluster.fleet_main_pid("h3") == pid  # no restart
        log = cluster.host_exec("h3", "journalctl", "-u", "fleet", "--no-pager", "-n", "200").stdout
        assert "these changes need a restart" in log and "agent_ttl" in log
    finally:
        cluster.host_exec("h3", "sed", "-i", "-e", "s/^metadata=host=h3,disk=ssd$/metadata=host=h3/",
                          "-e", "/^agent_ttl=9s$/d", conf, check=False)
        cluster.host_exec("h3", "systemctl", "reload", "fleet", check=False)
