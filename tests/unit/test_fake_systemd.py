"""Tables for FakeUnitManager (the tier-2 systemd) and the D-Bus adapter's pure helpers."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest

from fleetd.errors import UnitManagerError
from fleetd.model.states import SystemdState
from fleetd.systemd.base import Activity, UnitManager
from fleetd.systemd.memory import FakeUnitManager

TEXT = "[Service]\nExecStart=/bin/sleep infinity\n"


async def connected(**kwargs: object) -> FakeUnitManager:
    fake = FakeUnitManager(**kwargs)  # type: ignore[arg-type]
    await fake.connect()
    return fake


def test_fake_satisfies_the_protocol() -> None:
    manager: UnitManager = FakeUnitManager()
    assert manager is not None


@pytest.mark.parametrize(
    ("fail_start", "result", "state"),
    [
        ((), "done", SystemdState("loaded", "active", "running")),
        (("a.service",), "failed", SystemdState("loaded", "failed", "failed")),
    ],
)
async def test_start_result_and_state(
    fail_start: tuple[str, ...], result: str, state: SystemdState
) -> None:
    fake = await connected(fail_start=fail_start)
    await fake.load("a.service", TEXT)
    await fake.reload()
    assert await fake.start("a.service") == result
    assert await fake.states(["a.service", "other.service"]) == {"a.service": state}


async def test_calls_are_recorded_in_order_and_unload_forgets_the_unit() -> None:
    fake = await connected()
    changed: list[tuple[str, Activity | None]] = []
    fake.on_change(lambda name, activity: changed.append((name, activity)))
    await fake.load("a.service", TEXT)
    await fake.reload()
    await fake.start("a.service")
    await fake.stop("a.service")
    await fake.unload("a.service")
    assert fake.calls == [
        ("connect",),
        ("load", "a.service"),
        ("reload",),
        ("start", "a.service"),
        ("stop", "a.service"),
        ("unload", "a.service"),
    ]
    assert changed == [("a.service", Activity("active", "running")),
                       ("a.service", Activity("inactive", "dead"))]
    assert await fake.states(["a.service"]) == {}
    assert fake.local_units() == {}


async def test_local_units_hash_is_sha256_of_the_text() -> None:
    fake = await connected()
    await fake.load("a.service", TEXT)
    assert fake.local_units() == {"a.service": hashlib.sha256(TEXT.encode()).hexdigest()}


@pytest.mark.parametrize(
    ("op", "args"),
    [("start", ("missing.service",)), ("stop", ("missing.service",))],
)
async def test_operations_on_unknown_units_raise(op: str, args: tuple[str, ...]) -> None:
    fake = await connected()
    with pytest.raises(UnitManagerError, match="NoSuchUnit"):
        await getattr(fake, op)(*args)


async def test_injected_error_raises_and_changes_nothing() -> None:
    fake = await connected(errors={("load", "a.service"): "disk full", ("reload", ""): "busy"})
    with pytest.raises(UnitManagerError, match="disk full"):
        await fake.load("a.service", TEXT)
    with pytest.raises(UnitManagerError, match="busy"):
        await fake.reload()
    assert fake.files == {}
    assert fake.reloads == 0


async def test_calls_before_connect_raise() -> None:
    with pytest.raises(UnitManagerError, match="not connected"):
        await FakeUnitManager().start("a.service")


async def test_crash_turns_a_running_unit_failed_and_notifies() -> None:
    fake = await connected()
    changed: list[str] = []
    await fake.load("a.service", TEXT)
    await fake.start("a.service")
    fake.on_change(lambda name, activity: changed.append(name))
    fake.crash("a.service")
    assert changed == ["a.service"]
    assert fake.state_of("a.service") == SystemdState("loaded", "failed", "failed")


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/org/freedesktop/systemd1/unit/sleep_2eservice", "sleep.service"),
        ("/org/freedesktop/systemd1/unit/foo_40bar_2dbaz_2eservice", "foo@bar-baz.service"),
        ("/org/freedesktop/systemd1/unit/_31x_2eservice", "1x.service"),
        ("/org/freedesktop/systemd1/unit/a_5fb_2eservice", "a_b.service"),
        ("/org/freedesktop/systemd1/job/42", None),
    ],
)
def test_unit_name_from_object_path(path: str, name: str | None) -> None:
    from fleetd.systemd.dbus import unit_name_from_path

    assert unit_name_from_path(path) == name


@pytest.mark.parametrize(
    ("changed", "activity"),
    [
        ({"ActiveState": "active", "SubState": "running", "Job": (0, "/")}, Activity("active", "running")),
        ({"ActiveState": "deactivating"}, None),
        ({"Job": (3, "/org/freedesktop/systemd1/job/3")}, None),
        ("not a dict", None),
    ],
)
def test_activity_is_read_from_a_properties_changed_body(changed: object, activity: Activity | None) -> None:
    from fleetd.systemd.dbus import activity_of

    variants = ({k: SimpleNamespace(value=v) for k, v in changed.items()} if isinstance(changed, dict)
                else changed)
    assert activity_of(variants) == activity


@pytest.mark.parametrize(
    "name", ["", "a/b.service", "..", "../x.service", "a\0.service", ".hidden"]
)
def test_unsafe_unit_names_are_refused(name: str) -> None:
    from fleetd.systemd.dbus import check_unit_name

    with pytest.raises(UnitManagerError, match="invalid unit name"):
        check_unit_name(name)


async def test_job_result_that_arrives_before_the_waiter_is_kept() -> None:
    from fleetd.systemd.dbus import JobTracker

    jobs = JobTracker()
    jobs.finished("/org/freedesktop/systemd1/job/7", "done")
    assert await jobs.wait("/org/freedesktop/systemd1/job/7", timeout=0.1) == "done"
    with pytest.raises(UnitManagerError, match="no JobRemoved"):
        await jobs.wait("/org/freedesktop/systemd1/job/8", timeout=0.01)
