"""The agent: make this host's systemd match the units the leader assigned to it.

gather (assignments from etcd, global units that apply here, unit files on disk, systemd states)
-> plan_tasks (pure) -> apply in order, stopping at the first failure (the next pass retries).
Global units are decided here, with the rule the engine shares (fleetd.model.globals). Wakes on
the watches of this machine's own assign/<id>/ prefix and of global/, and on a timer; it never
reads the rest of the registry.
"""

from __future__ import annotations

import asyncio

from fleetd.agent.planning import Current, Desired, Task, TaskKind, plan_tasks
from fleetd.agent.publisher import Publisher
from fleetd.errors import InvalidInput, RegistryUnavailable, UnitManagerError
from fleetd.logs import get_logger
from fleetd.loop import Wakeup
from fleetd.model.globals import globals_on
from fleetd.model.machine import Machine
from fleetd.model.requirements import Requirements, parse_requirements
from fleetd.model.states import TargetState
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry.store import Registry
from fleetd.registry.watch import wake_on_changes
from fleetd.systemd.base import UnitManager

RUNNING = frozenset({"active", "activating", "reloading"})
RESYNC_INTERVAL = 5.0


class Agent:
    """Drives one host's systemd toward its assignments."""

    def __init__(self, registry: Registry, systemd: UnitManager, machine: Machine,
                 publisher: Publisher) -> None:
        self.registry = registry
        self.systemd = systemd
        self.machine = machine
        self.machine_id = machine.id
        self.publisher = publisher
        self.wakeup = Wakeup()
        self.started: set[str] = set()
        self._texts: dict[str, str] = {}
        self._requirements: dict[tuple[str, str], Requirements | None] = {}
        self.log = get_logger("agent", machine=machine.short_id)

    def fleet_state(self, name: str) -> TargetState:
        return TargetState.LAUNCHED if name in self.started else TargetState.LOADED

    async def run(self) -> None:
        keys = self.registry.keys
        watches = wake_on_changes(self.registry.kv, (keys.assigned_to(self.machine_id), keys.globals),
                                  self.wakeup.poke, self._watch_interrupted)
        async with asyncio.TaskGroup() as group:
            group.create_task(watches, name="agent-watches")
            group.create_task(self._loop(), name="agent-loop")

    def _watch_interrupted(self, prefix: str, exc: Exception) -> None:
        self.log.debug("watch interrupted; resuming", prefix=prefix, error=str(exc))

    async def _loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except RegistryUnavailable as exc:
                self.log.warning("etcd unavailable; keeping units as they are", error=str(exc))
            except UnitManagerError as exc:
                self.log.warning("systemd query failed; will retry", error=str(exc))
            await self.wakeup.wait(RESYNC_INTERVAL)

    async def reconcile(self) -> None:
        desired = await self.desired()
        current = await self.current()
        tasks = plan_tasks(desired, current)
        for task in tasks:
            if not await self._run_task(task, desired):
                break
        if tasks:
            self.publisher.poke()

    async def desired(self) -> dict[str, Desired]:
        """Assigned units plus the global units that run here, whose files we have."""
        assignments = await self.registry.list_assignments(self.machine_id)
        wanted = {a.unit: Desired(name=a.unit, hash=a.hash, state=a.desired)
                  for a in assignments if a.desired is not TargetState.INACTIVE}
        candidates = [u for u in await self.registry.list_globals()
                      if u.desired is not TargetState.INACTIVE and u.name not in wanted]
        await self._fetch([d.hash for d in wanted.values()] + [u.hash for u in candidates])
        wanted = {name: d for name, d in wanted.items() if d.hash in self._texts}
        wanted.update(self._globals_here(wanted, candidates))
        return wanted

    async def _fetch(self, digests: list[str]) -> None:
        for digest in dict.fromkeys(digests):
            if digest not in self._texts:
                text = await self.registry.get_file(digest)
                if text is not None:
                    self._texts[digest] = text

    def _globals_here(self, assigned: dict[str, Desired], candidates: list[Unit]) -> dict[str, Desired]:
        resident = {n: r for n, d in assigned.items() if (r := self._requirements_of(n, d.hash))}
        known = {u.name: u for u in candidates if u.hash in self._texts}
        reqs = {n: r for n, u in known.items() if (r := self._requirements_of(n, u.hash))}
        return {n: Desired(name=n, hash=known[n].hash, state=known[n].desired)
                for n in globals_on(self.machine, reqs, resident)}

    def _requirements_of(self, name: str, digest: str) -> Requirements | None:
        key = (name, digest)
        if key not in self._requirements:
            try:
                self._requirements[key] = parse_requirements(name, UnitFile.parse(self._texts[digest]))
            except InvalidInput as exc:
                self.log.error("stored unit file is invalid", unit=name, error=str(exc))
                self._requirements[key] = None
        return self._requirements[key]

    async def current(self) -> dict[str, Current]:
        local = self.systemd.local_units()
        states = await self.systemd.states(local)
        # A unit systemd runs counts as launched by us, e.g. after fleetd itself restarted.
        self.started |= {name for name in local if name in states and states[name].active in RUNNING}
        return {name: Current(name=name, hash=digest, launched=name in self.started)
                for name, digest in local.items()}

    async def _run_task(self, task: Task, desired: dict[str, Desired]) -> bool:
        try:
            await self._execute(task, desired)
        except UnitManagerError as exc:
            self.log.error("task failed; will retry", task=task.kind.name.lower(), unit=task.unit,
                           reason=task.reason, error=str(exc))
            return False
        self.log.info("task done", task=task.kind.name.lower(), unit=task.unit, reason=task.reason)
        return True

    async def _execute(self, task: Task, desired: dict[str, Desired]) -> None:
        if task.kind is TaskKind.UNLOAD:
            self.started.discard(task.unit)
            await self.systemd.unload(task.unit)
        elif task.kind is TaskKind.LOAD:
            await self.systemd.load(task.unit, self._texts[desired[task.unit].hash])
        elif task.kind is TaskKind.RELOAD:
            await self.systemd.reload()
        elif task.kind is TaskKind.STOP:
            self.started.discard(task.unit)
            await self.systemd.stop(task.unit)
        elif task.kind is TaskKind.START:
            self.started.add(task.unit)
            result = await self.systemd.start(task.unit)
            if result != "done":
                self.log.warning("unit did not start cleanly", unit=task.unit, result=result)
