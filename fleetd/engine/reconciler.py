"""The engine: leader election, then gather -> schedule (pure) -> commit, on every wake.

Only the leader acts. Its writes are fenced with the leader key's create revision, so a
deposed leader's late writes are refused and it steps down. Wakes come from watches on
units/ and machines/ and from a timer (engine_reconcile_interval).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from fleetd.engine.scheduler import BINPACK, Plan, Snapshot, UnitSpec, schedule
from fleetd.errors import Fenced, InvalidInput, RegistryUnavailable
from fleetd.logs import get_logger
from fleetd.loop import Wakeup
from fleetd.model.requirements import Requirements, parse_requirements
from fleetd.model.unitfile import UnitFile
from fleetd.registry.kv import Op
from fleetd.registry.store import Registry
from fleetd.registry.watch import wake_on_changes


class LeaseSource(Protocol):
    """Anything with a current `lease` id (the Heart); 0 while unregistered."""

    lease: int


class Engine:
    """Runs on every fleetd without disable_engine; schedules while it holds the leader key."""

    def __init__(self, registry: Registry, machine_id: str, lease: LeaseSource,
                 interval: float, policy: str = BINPACK) -> None:
        self.registry = registry
        self.machine_id = machine_id
        self.lease = lease
        self.interval = interval
        self.policy = policy
        self.token: int | None = None
        self.wakeup = Wakeup()
        self._requirements: dict[str, Requirements] = {}
        self._last_pending: dict[str, str] = {}
        self.log = get_logger("engine", machine=machine_id[:8])

    async def run(self) -> None:
        keys = self.registry.keys
        watches = wake_on_changes(self.registry.kv, (keys.units, keys.machines, keys.leader),
                                  self.wakeup.poke, self._watch_interrupted)
        async with asyncio.TaskGroup() as group:
            group.create_task(watches, name="engine-watches")
            group.create_task(self._loop(), name="engine-loop")

    def _watch_interrupted(self, prefix: str, exc: Exception) -> None:
        self.log.debug("watch interrupted; resuming", prefix=prefix, error=str(exc))

    async def _loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except RegistryUnavailable as exc:
                self.log.warning("etcd unavailable; reconcile skipped", error=str(exc))
            await self.wakeup.wait(self.interval)

    async def reconcile(self) -> None:
        if not await self._lead():
            return
        started = time.monotonic()
        plan = schedule(await self.snapshot())
        ops = self._apply_ops(plan) + self._pending_ops(plan, await self.registry.list_pending())
        try:
            txns = await self.registry.commit(self.token or 0, ops) if ops else 0
        except Fenced:
            self.log.warning("engine leadership lost: fenced write refused")
            self.token = None
            return
        self._report(plan, txns, time.monotonic() - started)

    async def _lead(self) -> bool:
        if self.token is not None:
            return True
        if not self.lease.lease:
            return False
        self.token = await self.registry.campaign(self.machine_id, self.lease.lease)
        if self.token is not None:
            self.log.info("engine leadership acquired", token=self.token)
        return self.token is not None

    async def snapshot(self) -> Snapshot:
        units, machines, assignments = await asyncio.gather(
            self.registry.list_units(), self.registry.list_machines(),
            self.registry.list_assignments())
        specs = {}
        for unit in units:
            req = await self._requirements_of(unit.name, unit.hash)
            if req is not None:
                specs[unit.name] = UnitSpec(unit=unit, requirements=req)
        return Snapshot(units=specs, machines={m.id: m for m in machines},
                        assignments={a.unit: a for a in assignments}, policy=self.policy)

    async def _requirements_of(self, name: str, digest: str) -> Requirements | None:
        key = f"{name}\0{digest}"
        if key not in self._requirements:
            text = await self.registry.get_file(digest)
            if text is None:
                self.log.error("unit file missing from registry", unit=name, hash=digest)
                return None
            try:
                self._requirements[key] = parse_requirements(name, UnitFile.parse(text))
            except InvalidInput as exc:
                self.log.error("stored unit file is invalid", unit=name, error=str(exc))
                return None
        return self._requirements[key]

    def _apply_ops(self, plan: Plan) -> list[Op]:
        ops: list[Op] = [self.registry.evict_op(e.unit, e.machine) for e in plan.evictions]
        ops += [self.registry.place_op(u.assignment) for u in plan.updates]
        ops += [self.registry.place_op(p.assignment) for p in plan.placements]
        return ops

    def _pending_ops(self, plan: Plan, stored: dict[str, str]) -> list[Op]:
        """Write reasons that are new or changed; clear those of units no longer pending."""
        reasons = {p.unit: p.reason for p in plan.pending}
        ops = [self.registry.pending_op(u, r) for u, r in sorted(reasons.items()) if stored.get(u) != r]
        return ops + [self.registry.pending_op(u, None) for u in sorted(stored) if u not in reasons]

    def _report(self, plan: Plan, txns: int, seconds: float) -> None:
        for e in plan.evictions:
            self.log.info("unit unscheduled", unit=e.unit, machine=e.machine[:8], reason=e.reason)
        for u in plan.updates:
            self.log.info("unit placement updated", unit=u.assignment.unit,
                          machine=u.assignment.machine[:8], desired=u.assignment.desired.value,
                          reason=u.reason)
        for p in plan.placements:
            self.log.info("unit scheduled", unit=p.assignment.unit,
                          machine=p.assignment.machine[:8], reason=p.reason)
        pending = {p.unit: p.reason for p in plan.pending}
        for unit, reason in pending.items():
            if self._last_pending.get(unit) != reason:
                self.log.warning("unit cannot be scheduled", unit=unit, reason=reason)
        self._last_pending = pending
        if txns:
            self.log.debug("plan committed", txns=txns, seconds=round(seconds, 4))
