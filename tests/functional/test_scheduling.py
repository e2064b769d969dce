"""Real cluster: fleet's classic scheduling scenarios and ours, driven through fleetctl.

Where a unit runs is always asked of the hosts' own systemd; fleet's view (list-unit-files and
its REASON column) is checked separately. 3 hosts h1..h3 with metadata host=hN.
"""

from __future__ import annotations

from pathlib import Path

from cluster import LocalCluster
from test_units import MOVE_TIMEOUT, REPO, active_on, table, write_unit

UNITS = REPO / "units"


def wait_active(cluster: LocalCluster, unit: str, count: int = 1) -> list[str]:
    """Hosts running `unit`, once exactly `count` of them do."""
    return cluster.wait_until(lambda: (lambda hosts: hosts if len(hosts) == count else None)(
        active_on(cluster, unit)), MOVE_TIMEOUT, f"{unit} active on {count} host(s)")


def reasons(cluster: LocalCluster) -> dict[str, str]:
    """list-unit-files' REASON column, for the units that have one."""
    rows = table(cluster, "list-unit-files", "unit,reason")
    return {unit: reason for unit, reason in rows if reason != "-"}


def test_five_mutually_conflicting_units_run_one_per_host(cluster: LocalCluster,
                                                          tmp_path: Path) -> None:
    paths = [write_unit(tmp_path, f"conflict.{i}.service",
                        "\n[X-Fleet]\nConflicts=conflict.*.service\n") for i in range(5)]
    cluster.fleetctl("start", "--no-block", *paths)
    names = [f"conflict.{i}.service" for i in range(5)]

    def placed() -> dict[str, list[str]] | None:
        found = {n: active_on(cluster, n) for n in names}
        return found if sum(len(h) for h in found.values()) == 3 else None

    running = cluster.wait_until(placed, MOVE_TIMEOUT, "3 conflicting units active")
    hosts = [h for hs in running.values() for h in hs]
    assert sorted(hosts) == ["h1", "h2", "h3"]
    waiting = cluster.wait_until(lambda: reasons(cluster) or None, MOVE_TIMEOUT, "pending reasons")
    assert len(waiting) == 2 and all("conflicts with conflict." in r for r in waiting.values())


def test_machine_of_pair_moves_together(cluster: LocalCluster, tmp_path: Path) -> None:
    leader = write_unit(tmp_path, "ping.service")
    follower = write_unit(tmp_path, "pong.service", "\n[X-Fleet]\nMachineOf=ping.service\n")
    cluster.fleetctl("start", leader, follower)
    (first,) = active_on(cluster, "ping.service")
    assert active_on(cluster, "pong.service") == [first]
    cluster.stop_host(first)

    def together() -> str | None:
        ping, pong = active_on(cluster, "ping.service"), active_on(cluster, "pong.service")
        return ping[0] if ping and ping == pong else None

    second = cluster.wait_until(together, MOVE_TIMEOUT, "ping and pong active on one new host")
    assert second != first


def test_pin_instance_lands_on_the_named_machine(cluster: LocalCluster, tmp_path: Path) -> None:
    write_unit(tmp_path, "pin@.service", "\n[X-Fleet]\nMachineID=%i\n")
    target = cluster.machine_id("h2")
    cluster.fleetctl("start", str(tmp_path / f"pin@{target}.service"))
    assert active_on(cluster, f"pin@{target}.service") == ["h2"]


def test_global_unit_runs_on_matching_hosts_and_joins_later_ones(cluster: LocalCluster,
                                                                 tmp_path: Path) -> None:
    cluster.stop_host("h3")
    path = write_unit(tmp_path, "everywhere.service",
                      "\n[X-Fleet]\nGlobal=true\nMachineMetadata=host in (h1, h3)\n")
    out = cluster.fleetctl("start", path).stdout
    assert "Triggered global unit everywhere.service start" in out
    assert wait_active(cluster, "everywhere.service") == ["h1"]
    cluster.start_host("h3")
    assert sorted(wait_active(cluster, "everywhere.service", 2)) == ["h1", "h3"]
    assert active_on(cluster, "everywhere.service") == ["h1", "h3"]  # never on h2


def test_replaces_moves_the_replaced_unit_elsewhere(cluster: LocalCluster, tmp_path: Path) -> None:
    cluster.fleetctl("start", write_unit(tmp_path, "old.service"))
    (home,) = active_on(cluster, "old.service")
    new = write_unit(tmp_path, "new.service",
                     f"\n[X-Fleet]\nReplaces=old.service\nMachineMetadata=host={home}\n")
    cluster.fleetctl("start", new)
    assert active_on(cluster, "new.service") == [home]
    moved = cluster.wait_until(lambda: [h for h in active_on(cluster, "old.service") if h != home],
                               MOVE_TIMEOUT, "old.service active on another host")
    assert len(moved) == 1 and active_on(cluster, "old.service") == moved


def test_template_with_instance_count_runs_one_instance_per_host(cluster: LocalCluster) -> None:
    cluster.fleetctl("start", str(UNITS / "web@.service"))
    hosts = [active_on(cluster, f"web@{i}.service") for i in (1, 2, 3)]
    assert sorted(h for hs in hosts for h in hs) == ["h1", "h2", "h3"]
    rows = table(cluster, "list-unit-files", "unit,dstate")
    assert rows == [["web@.service", "inactive"], ["web@1.service", "launched"],
                    ["web@2.service", "launched"], ["web@3.service", "launched"]]


def test_unit_too_big_for_any_host_stays_pending_with_reason(cluster: LocalCluster,
                                                             tmp_path: Path) -> None:
    path = write_unit(tmp_path, "huge.service", "\n[X-Fleet]\nMemory=64T\n")
    cluster.fleetctl("start", "--no-block", path)
    reason = cluster.wait_until(lambda: reasons(cluster).get("huge.service"), MOVE_TIMEOUT,
                                "a pending reason for huge.service")
    assert reason.startswith("insufficient memory: needs 64T, largest free ")
    assert active_on(cluster, "huge.service") == []
    default = cluster.fleetctl("list-unit-files").stdout
    assert "REASON" in default.splitlines()[0] and "insufficient memory" in default
