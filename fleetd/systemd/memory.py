"""An in-memory `UnitManager` for tier-2 tests: a small simulation of one host's systemd.

Owns: the simulated unit files (name -> text), each unit's active/sub state, the ordered
log of calls (`calls`), injected failures, and the on_change callbacks. The simulation is
deliberately simple: a unit is known to "systemd" (reported by `states`) while its file is
present; `start` makes it active/running (or failed/failed for names in `fail_start`),
`stop` makes it inactive/dead; `unload` stops it, forgets its state and deletes the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from fleetd.errors import UnitManagerError
from fleetd.model.states import SystemdState
from fleetd.systemd.base import Activity, OnChange

Call = tuple[str, ...]

INACTIVE = ("inactive", "dead")
RUNNING = ("active", "running")
FAILED = ("failed", "failed")


class FakeUnitManager:
    """`fleetd.systemd.base.UnitManager` in memory; inspect `calls`, `files`, `reloads`.

    `calls` records every action in order, as ("load", name), ("reload",), ...; queries
    (`states`, `local_units`) are not recorded.

    fail_start: names whose start job ends "failed" (the unit becomes failed/failed).
    errors: (operation, name) -> message; that call raises UnitManagerError(message) and
        changes nothing. Use name "" for operations without a name ("reload", "connect").
    """

    def __init__(
        self,
        fail_start: Iterable[str] = (),
        errors: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self.calls: list[Call] = []
        self.files: dict[str, str] = {}
        self.reloads = 0
        self.connected = False
        self.fail_start: set[str] = set(fail_start)
        self.errors: dict[tuple[str, str], str] = dict(errors or {})
        self._runtime: dict[str, tuple[str, str]] = {}
        self._callbacks: list[OnChange] = []

    async def connect(self) -> None:
        self._record("connect")
        self.connected = True

    async def close(self) -> None:
        self.calls.append(("close",))
        self.connected = False

    def local_units(self) -> Mapping[str, str]:
        return {name: _sha256(text) for name, text in self.files.items()}

    async def load(self, name: str, text: str) -> None:
        self._record("load", name)
        self.files[name] = text

    async def unload(self, name: str) -> None:
        self._record("unload", name)
        self._set(name, INACTIVE)
        self._runtime.pop(name, None)
        self.files.pop(name, None)

    async def reload(self) -> None:
        self._record("reload")
        self.reloads += 1

    async def start(self, name: str) -> str:
        self._record("start", name)
        self._require_file(name)
        if name in self.fail_start:
            self._set(name, FAILED)
            return "failed"
        self._set(name, RUNNING)
        return "done"

    async def stop(self, name: str) -> str:
        self._record("stop", name)
        self._require_file(name)
        self._set(name, INACTIVE)
        return "done"

    async def states(self, names: Iterable[str]) -> Mapping[str, SystemdState]:
        if not self.connected:
            raise UnitManagerError("states: not connected")
        return {name: self.state_of(name) for name in names if name in self.files}

    def on_change(self, callback: OnChange) -> None:
        self._callbacks.append(callback)

    # -- test helpers -------------------------------------------------------------------------

    def state_of(self, name: str) -> SystemdState:
        active, sub = self._runtime.get(name, INACTIVE)
        return SystemdState(load="loaded", active=active, sub=sub)

    def crash(self, name: str) -> None:
        """Simulate the unit's process dying on its own (active -> failed)."""
        self._set(name, FAILED)

    def _record(self, op: str, name: str = "") -> None:
        if not self.connected and op != "connect":
            raise UnitManagerError(f"{op}: not connected")
        message = self.errors.get((op, name))
        self.calls.append((op, name) if name else (op,))
        if message is not None:
            raise UnitManagerError(message)

    def _require_file(self, name: str) -> None:
        if name not in self.files:
            raise UnitManagerError(f"org.freedesktop.systemd1.NoSuchUnit: Unit {name} not found.")

    def _set(self, name: str, state: tuple[str, str]) -> None:
        if self._runtime.get(name, INACTIVE) == state:
            return
        self._runtime[name] = state
        for callback in list(self._callbacks):
            callback(name, Activity(active=state[0], sub=state[1]))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
