"""DbusUnitManager against a real systemd: PID 1 of a local-cluster host (h3).

The manager runs outside the host: bus address /proc/<leader>/root/run/dbus/system_bus_socket,
file root /proc/<leader>/root, and a units directory of its own so that the fleetd running in
the host leaves these test units alone. What a user would check is checked with the host's own
`systemctl` (via nsenter) next to what the manager reports. With CI=true a host that cannot
start fails the tests; elsewhere they are skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cluster import LocalCluster

from fleetd.errors import UnitManagerError
from fleetd.model.states import SystemdState
from fleetd.systemd.base import Activity
from fleetd.systemd.dbus import DbusUnitManager

HOST = "h3"
UNITS_DIRECTORY = "/run/fleet-dbus-test/units"  # not fleetd's own, so the host's fleetd ignores it
SLEEPER = "[Service]\nType=exec\nExecStart=/bin/sleep infinity\n"


@dataclass(frozen=True)
class Host:
    leader: int
    bus: str
    root: str

    def systemctl(self, *args: str) -> str:
        cmd = ["nsenter", "-t", str(self.leader), "-a", "systemctl", *args]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return out.stdout.strip()


@pytest.fixture(scope="module")
def host(cluster_hosts: LocalCluster) -> Host:
    """One host of the local cluster, driven from outside through its system bus socket."""
    if not cluster_hosts.is_running(HOST):
        cluster_hosts.start_host(HOST, wait_fleet=False)
    leader = cluster_hosts.leader_pid(HOST)
    root = f"/proc/{leader}/root"
    return Host(leader=leader, bus=f"unix:path={root}/run/dbus/system_bus_socket", root=root)


@pytest.fixture
async def manager(host: Host) -> AsyncIterator[DbusUnitManager]:
    m = DbusUnitManager(bus_address=host.bus, root=host.root, call_timeout=10.0,
                         units_directory=UNITS_DIRECTORY)
    await m.connect()
    try:
        yield m
    finally:
        await m.close()


async def _wait_for_state(m: DbusUnitManager, name: str, active: str) -> SystemdState | None:
    """Poll (the unit may still be settling) for up to 5 s; return the last state seen."""
    state = None
    for _ in range(100):
        state = (await m.states([name])).get(name)
        if state is not None and state.active == active:
            break
        await asyncio.sleep(0.05)
    return state


async def _load_and_start(m: DbusUnitManager, name: str, text: str = SLEEPER) -> str:
    await m.load(name, text)
    await m.reload()
    return await m.start(name)


async def test_started_unit_is_active_running(manager: DbusUnitManager, host: Host) -> None:
    assert await _load_and_start(manager, "t-start.service") == "done"
    states = await manager.states(["t-start.service"])
    assert states == {"t-start.service": SystemdState("loaded", "active", "running")}
    assert host.systemctl("is-active", "t-start.service") == "active"


async def test_on_change_fires_for_the_unit_with_its_new_state(manager: DbusUnitManager) -> None:
    seen: list[tuple[str, Activity | None]] = []
    manager.on_change(lambda name, activity: seen.append((name, activity)))
    await _load_and_start(manager, "t-change@x-1.service")
    running = ("t-change@x-1.service", Activity("active", "running"))
    for _ in range(100):
        if running in seen:
            break
        await asyncio.sleep(0.02)
    assert running in seen


async def test_stop_makes_unit_inactive(manager: DbusUnitManager, host: Host) -> None:
    await _load_and_start(manager, "t-stop.service")
    assert await manager.stop("t-stop.service") == "done"
    states = await manager.states(["t-stop.service"])
    assert states == {"t-stop.service": SystemdState("loaded", "inactive", "dead")}
    assert host.systemctl("is-active", "t-stop.service") == "inactive"


async def test_unload_removes_file_and_systemd_forgets(
    manager: DbusUnitManager, host: Host
) -> None:
    await _load_and_start(manager, "t-unload.service")
    assert "t-unload.service" in manager.local_units()
    await manager.unload("t-unload.service")
    await manager.reload()
    assert not Path(host.root, UNITS_DIRECTORY.lstrip("/"), "t-unload.service").exists()
    assert not Path(host.root, "run/systemd/system/t-unload.service").exists()
    assert "t-unload.service" not in manager.local_units()
    assert await manager.states(["t-unload.service"]) == {}
    assert host.systemctl("show", "-P", "LoadState", "t-unload.service") == "not-found"


async def test_unload_of_an_unknown_unit_is_a_no_op(manager: DbusUnitManager) -> None:
    await manager.unload("t-never-loaded.service")


# Type=exec: the job is "done" once execve succeeded, unless /bin/false already exited by
# then (a race systemd settles either way under load); oneshot: the job itself fails.
@pytest.mark.parametrize(("unit_type", "job_results"),
                         [("exec", {"done", "failed"}), ("oneshot", {"failed"})])
async def test_unit_that_fails_reports_failed(
    manager: DbusUnitManager, host: Host, unit_type: str, job_results: set[str]
) -> None:
    name = f"t-fail-{unit_type}.service"
    text = f"[Service]\nType={unit_type}\nExecStart=/bin/false\n"
    assert await _load_and_start(manager, name, text) in job_results
    state = await _wait_for_state(manager, name, "failed")
    assert state == SystemdState("loaded", "failed", "failed")
    assert host.systemctl("is-active", name) == "failed"
    await manager.unload(name)
    assert host.systemctl("is-failed", name) != "failed"


async def test_install_section_is_enabled_at_runtime(manager: DbusUnitManager, host: Host) -> None:
    text = SLEEPER + "\n[Install]\nWantedBy=multi-user.target\n"
    await manager.load("t-install.service", text)
    await manager.reload()
    assert host.systemctl("is-enabled", "t-install.service") == "enabled-runtime"
    wants = Path(host.root, "run/systemd/system/multi-user.target.wants/t-install.service")
    assert wants.is_symlink()
    await manager.unload("t-install.service")
    assert not wants.is_symlink()


async def test_unit_without_install_section_is_not_enabled(
    manager: DbusUnitManager, host: Host
) -> None:
    await manager.load("t-noinstall.service", SLEEPER)
    await manager.reload()
    assert host.systemctl("is-enabled", "t-noinstall.service") == "linked-runtime"


async def test_local_units_maps_names_to_sha256(manager: DbusUnitManager, host: Host) -> None:
    await manager.load("t-hash.service", SLEEPER)
    assert manager.local_units()["t-hash.service"] == hashlib.sha256(SLEEPER.encode()).hexdigest()
    written = Path(host.root, UNITS_DIRECTORY.lstrip("/"), "t-hash.service")
    assert written.read_text() == SLEEPER
    assert written.stat().st_mode & 0o777 == 0o644


async def test_start_of_unknown_unit_raises_with_the_dbus_error(
    manager: DbusUnitManager,
) -> None:
    with pytest.raises(UnitManagerError, match="NoSuchUnit"):
        await manager.start("t-does-not-exist.service")


async def test_unsafe_name_is_refused_before_touching_files(
    manager: DbusUnitManager, host: Host
) -> None:
    with pytest.raises(UnitManagerError, match="invalid unit name"):
        await manager.load("../escape.service", SLEEPER)
    assert not Path(host.root, "run/fleet-dbus-test/escape.service").exists()


async def test_unreachable_bus_raises_unit_manager_error(tmp_path: Path) -> None:
    m = DbusUnitManager(bus_address=f"unix:path={tmp_path}/nobus", call_timeout=2.0)
    with pytest.raises(UnitManagerError):
        await m.connect()
