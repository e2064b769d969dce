"""The host's real systemd, driven over the D-Bus system bus (the only importer of dbus_next).

Owns: the bus connection, the JobRemoved bookkeeping (a job's result is kept from the moment
its signal arrives until a caller claims it, because the signal can be parsed in the same read
as the StartUnit reply), unit-change notifications, and the unit files in fleet's units
directory. At most MAX_CALLS_IN_FLIGHT calls wait for their replies at once, so concurrent
tasks stay under the bus daemon's per-connection limit. `root` is a filesystem prefix for
file I/O only (e.g. "/proc/<pid>/root" when the manager runs outside the host); paths
handed to systemd are always the in-host paths.
Every D-Bus failure, refusal or timeout surfaces as `fleetd.errors.UnitManagerError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections import OrderedDict
from collections.abc import Awaitable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import BusType, MessageType
from dbus_next.message import Message

from fleetd.errors import UnitManagerError
from fleetd.model.states import SystemdState
from fleetd.systemd.base import Activity, OnChange

SD = "org.freedesktop.systemd1"
SD_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT_IFACE = "org.freedesktop.systemd1.Unit"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
UNIT_PATH_PREFIX = "/org/freedesktop/systemd1/unit/"
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
MATCH_RULES = (
    f"type='signal',sender='{SD}',interface='{MANAGER}',member='JobRemoved'",
    # only the Unit interface's changes (ActiveState, SubState): arg0 keeps the bus daemon from
    # sending the larger per-type ones (org.freedesktop.systemd1.Service, ...) at all
    f"type='signal',sender='{SD}',interface='{PROPS_IFACE}',member='PropertiesChanged',"
    f"path_namespace='/org/freedesktop/systemd1/unit',arg0='{UNIT_IFACE}'",
)
MAX_UNCLAIMED_JOBS = 4096  # JobRemoved of jobs nobody waits for (other clients' jobs)
MAX_CALLS_IN_FLIGHT = 64  # dbus-daemon refuses more than 128 pending replies per connection

T = TypeVar("T")


class DbusCallError(UnitManagerError):
    """systemd (or the bus) answered a call with a D-Bus error; `error_name` says which."""

    def __init__(self, member: str, error_name: str, message: str) -> None:
        super().__init__(f"{member}: {error_name}: {message}")
        self.error_name = error_name


def check_unit_name(name: str) -> None:
    """Refuse names that are unsafe as a file name in the units directory."""
    if not name or "/" in name or "\0" in name or name in (".", "..") or ".." in name:
        raise UnitManagerError(f"invalid unit name {name!r}")
    if name.startswith("."):
        raise UnitManagerError(f"invalid unit name {name!r}")


def unit_name_from_path(path: str) -> str | None:
    """Decode systemd's object path label (`sleep_2eservice` -> `sleep.service`)."""
    if not path.startswith(UNIT_PATH_PREFIX):
        return None
    label, out, i = path[len(UNIT_PATH_PREFIX) :], bytearray(), 0
    while i < len(label):
        hex_part = label[i + 1 : i + 3]
        if label[i] == "_" and len(hex_part) == 2 and _is_hex(hex_part):
            out.append(int(hex_part, 16))
            i += 3
        else:
            out.extend(label[i].encode())
            i += 1
    return out.decode("utf-8", errors="replace") or None


def activity_of(changed: Any) -> Activity | None:
    """ActiveState and SubState from a PropertiesChanged body's changed-properties dict."""
    if not isinstance(changed, dict):
        return None
    active, sub = changed.get("ActiveState"), changed.get("SubState")
    if active is None or sub is None:
        return None
    return Activity(active=str(active.value), sub=str(sub.value))


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


class JobTracker:
    """Results of finished systemd jobs, kept until claimed (bounded), and their waiters."""

    def __init__(self) -> None:
        self._results: OrderedDict[str, str] = OrderedDict()
        self._waiters: dict[str, asyncio.Future[str]] = {}

    def finished(self, job: str, result: str) -> None:
        waiter = self._waiters.pop(job, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)
            return
        self._results[job] = result
        while len(self._results) > MAX_UNCLAIMED_JOBS:
            self._results.popitem(last=False)

    async def wait(self, job: str, timeout: float) -> str:
        if job in self._results:
            return self._results.pop(job)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[job] = waiter
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise UnitManagerError(f"job {job}: no JobRemoved within {timeout:g}s") from None
        finally:
            self._waiters.pop(job, None)

    def fail_all(self, reason: str) -> None:
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(UnitManagerError(reason))
        self._waiters.clear()


class DbusUnitManager:
    """`fleetd.systemd.base.UnitManager` over the system bus of one host."""

    def __init__(
        self,
        bus_address: str = "unix:path=/run/dbus/system_bus_socket",
        units_directory: str = "/run/fleet/units",
        root: str = "",
        call_timeout: float = 10.0,
        job_timeout: float = 120.0,
    ) -> None:
        self._address = bus_address
        self._units_dir = units_directory.rstrip("/") or "/"
        self._local_dir = Path(root.rstrip("/") + self._units_dir)
        self._call_timeout = call_timeout
        self._job_timeout = job_timeout
        self._bus: MessageBus | None = None
        self._jobs = JobTracker()
        self._callbacks: list[OnChange] = []
        self._slots = asyncio.Semaphore(MAX_CALLS_IN_FLIGHT)

    # -- connection -------------------------------------------------------------------------

    async def connect(self) -> None:
        self._bus = await self._timed("connect", self._open_bus())
        self._bus.add_message_handler(self._on_message)
        for rule in MATCH_RULES:
            await self._call(
                "AddMatch",
                "s",
                rule,
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                destination="org.freedesktop.DBus",
            )
        await self._call("Subscribe")

    async def _open_bus(self) -> MessageBus:
        # MessageBus() already connects the socket, so it raises here, not in connect()
        return await MessageBus(bus_address=self._address, bus_type=BusType.SYSTEM).connect()

    async def close(self) -> None:
        bus, self._bus = self._bus, None
        self._jobs.fail_all("unit manager closed")
        if bus is None:
            return
        bus.disconnect()
        with contextlib.suppress(Exception):  # the connection is gone either way
            await asyncio.wait_for(bus.wait_for_disconnect(), self._call_timeout)

    def on_change(self, callback: OnChange) -> None:
        self._callbacks.append(callback)

    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        if msg.interface == MANAGER and msg.member == "JobRemoved" and len(msg.body) == 4:
            self._jobs.finished(msg.body[1], msg.body[3])
        elif msg.interface == PROPS_IFACE and msg.member == "PropertiesChanged":
            self._unit_changed(msg)

    def _unit_changed(self, msg: Message) -> None:
        if not msg.body or msg.body[0] != UNIT_IFACE:
            return
        name = unit_name_from_path(msg.path or "")
        if name is None:
            return
        activity = activity_of(msg.body[1]) if len(msg.body) > 1 else None
        for callback in list(self._callbacks):
            callback(name, activity)

    # -- files ------------------------------------------------------------------------------

    def local_units(self) -> Mapping[str, str]:
        try:
            entries = list(self._local_dir.iterdir())
        except FileNotFoundError:
            return {}
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in entries
            if not p.name.startswith(".") and p.is_file()
        }

    def _write_file(self, name: str, text: str) -> None:
        self._local_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        tmp = self._local_dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(text)
        os.replace(tmp, self._local_dir / name)

    # -- unit operations --------------------------------------------------------------------

    async def load(self, name: str, text: str) -> None:
        check_unit_name(name)
        self._write_file(name, text)
        await self._call("LinkUnitFiles", "asbb", [f"{self._units_dir}/{name}"], True, True)
        if _has_install_section(text):
            await self._call("EnableUnitFiles", "asbb", [name], True, True)

    async def unload(self, name: str) -> None:
        check_unit_name(name)
        result = await self._stop_if_known(name)
        if result != "done":
            raise UnitManagerError(f"unload {name}: stop job ended {result!r}; file kept")
        await self._ignoring_no_such_unit(self._call("DisableUnitFiles", "asb", [name], True))
        await self._ignoring_no_such_unit(self._call("ResetFailedUnit", "s", name))
        (self._local_dir / name).unlink(missing_ok=True)

    async def reload(self) -> None:
        await self._call("Reload")

    async def start(self, name: str) -> str:
        check_unit_name(name)
        (job,) = await self._call("StartUnit", "ss", name, "replace")
        return await self._jobs.wait(job, self._job_timeout)

    async def stop(self, name: str) -> str:
        check_unit_name(name)
        (job,) = await self._call("StopUnit", "ss", name, "replace")
        return await self._jobs.wait(job, self._job_timeout)

    async def states(self, names: Iterable[str]) -> Mapping[str, SystemdState]:
        wanted = sorted(set(names))
        if not wanted:
            return {}
        (rows,) = await self._call("ListUnitsByNames", "as", wanted)
        return {
            row[0]: SystemdState(load=row[2], active=row[3], sub=row[4])
            for row in rows
            if row[2] != "not-found"
        }

    async def _stop_if_known(self, name: str) -> str:
        try:
            return await self.stop(name)
        except DbusCallError as e:
            if e.error_name == NO_SUCH_UNIT:
                return "done"
            raise

    @staticmethod
    async def _ignoring_no_such_unit(call: Awaitable[list[Any]]) -> None:
        try:
            await call
        except DbusCallError as e:
            if e.error_name not in (NO_SUCH_UNIT, "org.freedesktop.DBus.Error.FileNotFound"):
                raise

    # -- D-Bus plumbing ---------------------------------------------------------------------

    async def _call(
        self,
        member: str,
        signature: str = "",
        *body: Any,
        path: str = SD_PATH,
        interface: str = MANAGER,
        destination: str = SD,
    ) -> list[Any]:
        if self._bus is None:
            raise UnitManagerError(f"{member}: not connected")
        msg = Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=list(body),
        )
        async with self._slots:
            reply = await self._timed(member, self._bus.call(msg))
        if reply is None:
            raise UnitManagerError(f"{member}: no reply")
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body else ""
            raise DbusCallError(member, reply.error_name or "unknown", str(text))
        return list(reply.body)

    async def _timed(self, what: str, awaitable: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(awaitable, self._call_timeout)
        except TimeoutError:
            raise UnitManagerError(f"{what}: no answer within {self._call_timeout:g}s") from None
        except UnitManagerError:
            raise
        except Exception as e:  # noqa: BLE001 - dbus-next raises plain Exceptions on I/O errors
            raise UnitManagerError(f"{what}: bus failure: {e!r}") from e


def _has_install_section(text: str) -> bool:
    return any(line.strip() == "[Install]" for line in text.splitlines())
