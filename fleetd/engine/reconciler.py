"""The engine: leader election, then an in-memory model fed by watches -> schedule -> commit.

Every fleetd without disable_engine runs one and watches only the leader key until it wins
the campaign; it campaigns (one txn) only while that watch shows no leader. The leader then
reads machines/, assign/, pending/ and units/ in one txn (one consistent snapshot), follows
each prefix with a watch from that revision on, and keeps `fleetd.engine.view.LeaderView` up
to date from the events. A pass reads nothing from etcd (only
a unit file the model has never seen is fetched, once per content hash); it runs when the
model changed since the last pass, and its writes go out in fenced txns of at most 128 ops,
a few in flight at once, evictions before placements. A prefix is listed again only after a
compaction made its watch lose history. Alongside, the leader deletes unit files no unit
references any more (`fleetd.engine.file_gc`).

Its writes are fenced with the leader key's create revision, so a deposed leader's late writes
are refused and it steps down; it also steps down when the leader key's watch shows the key
gone or taken by someone else.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

from fleetd.engine import drain_flight, failures, file_gc
from fleetd.engine.departure_memory import Departures
from fleetd.engine.departures import Holds, restrict
from fleetd.engine.drain_flight import DrainFlight
from fleetd.engine.failures import FailureMemory
from fleetd.engine.file_gc import FileCollector
from fleetd.engine.scheduler import BINPACK, Decision, schedule
from fleetd.engine.view import SECTIONS, LeaderView
from fleetd.errors import Fenced, RegistryUnavailable
from fleetd.logs import get_logger
from fleetd.loop import Wakeup, spawn
from fleetd.model.liveness import Liveness
from fleetd.observe import NoRecorder, Recorder, by_category
from fleetd.registry.kv import Op, WatchEvent
from fleetd.registry.store import Registry
from fleetd.registry.watch import follow, list_then_follow

DETAIL_LIMIT = 50  # passes with more actions log a summary at info and each action at debug


class LeaseSource(Protocol):
    """Anything with a current `lease` id (the Heart); 0 while unregistered."""

    lease: int


class LostLeadership(Exception):
    """The leader key is no longer ours: stop acting on the model."""


class Engine:
    """Runs on every fleetd without disable_engine; schedules while it holds the leader key."""

    def __init__(self, registry: Registry, machine_id: str, lease: LeaseSource,
                 interval: float, policy: str = BINPACK, timing: Liveness | None = None,
                 brake: bool = True, clock: Callable[[], float] = time.monotonic,
                 recorder: Recorder | None = None, file_gc_grace: float = 60.0,
                 drain_batch: int = 4) -> None:
        self.registry = registry
        self.recorder = recorder or NoRecorder()
        self.timing = timing = timing or Liveness()
        self.brake = brake
        self.clock = clock
        self.departures = Departures(timing, brake)
        self.failures = FailureMemory()
        self.drain_batch = drain_batch
        self.drain = DrainFlight(drain_batch, clock)
        self.file_gc_grace = file_gc_grace
        self.machine_id = machine_id
        self.lease = lease
        self.interval = interval
        self.policy = policy
        self.token: int | None = None
        self.model: LeaderView | None = None
        self.wakeup = Wakeup()
        self._deposed = False
        self._leader_present: bool | None = None  # the leader key, as its watch last showed it
        self._decided: tuple[object, ...] = ()  # (model version, holds) the last complete pass decided on
        self._due: float | None = None  # when a hold on a vanished machine or a reschedule delay ends
        self._last_pending: dict[str, str] = {}
        self.log = get_logger("engine", machine=machine_id[:8])

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            spawn(group, self._watch_leader(), "engine-leader-watch")
            spawn(group, self._loop(), "engine-loop")

    # leadership ----------------------------------------------------------------------------

    async def _watch_leader(self) -> None:
        key = self.registry.keys.leader

        async def relist() -> int:
            listing = await self.registry.kv.get_prefix(key)
            mine = any(kv.key == key and kv.create_revision == self.token for kv in listing.items)
            self._leader_present = any(kv.key == key for kv in listing.items)
            self._on_leader_change(mine)
            return listing.revision

        await list_then_follow(self.registry.kv, key, self._leader_event, relist,
                               on_error=functools.partial(self._watch_interrupted, key))

    def _leader_event(self, event: WatchEvent) -> None:
        if event.key == self.registry.keys.leader:
            self._leader_present = event.kind == "put"
            self._on_leader_change(event.kind == "put" and event.value == self.machine_id)

    def _on_leader_change(self, still_mine: bool) -> None:
        if self.token is not None and not still_mine:
            self._deposed = True
        self.wakeup.poke()

    def _watch_interrupted(self, prefix: str, exc: Exception) -> None:
        self.log.debug("watch interrupted; resuming", prefix=prefix, error=str(exc))

    async def _loop(self) -> None:
        while True:
            try:
                if await self._lead():
                    await self._lead_session()
            except* RegistryUnavailable as group:
                self.recorder.engine_failure("etcd_unavailable")
                self.log.warning("etcd unavailable; scheduling paused", error=str(group.exceptions[0]))
            except* LostLeadership as group:
                self.recorder.engine_failure("leadership_lost")
                self.log.warning("engine leadership lost", reason=str(group.exceptions[0]))
                self._step_down()
            await self.wakeup.wait(self.interval)

    async def _lead(self) -> bool:
        if self.token is not None:
            return True
        if not self.lease.lease or self._leader_present:
            return False  # campaign only when the watch shows no leader: no txn per candidate and pass
        self.token = await self.registry.campaign(self.machine_id, self.lease.lease)
        if self.token is not None:
            self._deposed = False
            self.recorder.leadership(True)
            self.log.info("engine leadership acquired", token=self.token)
        return self.token is not None

    def _step_down(self) -> None:
        self.recorder.leadership(False)
        self.token = None
        self.model = None
        self._decided = ()
        self._due = None
        self.departures = Departures(self.timing, self.brake)
        self.failures = FailureMemory()
        self.drain = DrainFlight(self.drain_batch, self.clock)
        self._last_pending = {}

    # the leader's session ------------------------------------------------------------------

    async def _lead_session(self) -> None:
        """Build the model, follow the registry and schedule until leadership is lost."""
        model = LeaderView(self.registry.keys)
        started = time.monotonic()
        listings = await self.registry.kv.get_prefixes([model.prefix(s) for s in SECTIONS])
        revisions = {}
        for section, listing in zip(SECTIONS, listings, strict=True):
            model.load(section, listing.items, listing.revision)
            revisions[section] = listing.revision
        self.model = model
        self.departures.resume(model)
        self.log.info("registry loaded", units=len(model.units), machines=len(model.machines),
                      assignments=len(model.assignments), seconds=round(time.monotonic() - started, 3))
        async with asyncio.TaskGroup() as group:
            for section, revision in revisions.items():
                spawn(group, self._follow(model, section, revision), f"engine-{section}")
            spawn(group, self._passes(model), "engine-passes")
            spawn(group, self._collect_files(model), "engine-file-gc")

    async def _collect_files(self, model: LeaderView) -> None:
        """Delete unit files no unit references, every `file_gc.period` (see fleetd.engine.file_gc)."""
        collector = FileCollector(self.registry, self.file_gc_grace, self.clock,
                                  self.recorder.unit_files_deleted)
        while True:
            await asyncio.sleep(file_gc.period(self.file_gc_grace))
            try:
                deleted = await collector.collect([u.hash for u in model.units.values()],
                                                  self.token or 0)
            except RegistryUnavailable as exc:
                self.log.warning("etcd unavailable; unit file cleanup skipped", error=str(exc))
                continue
            if deleted:
                self.log.info("unit files deleted: no unit referenced them", files=deleted)

    async def _relist(self, model: LeaderView, section: str) -> int:
        listing = await self.registry.kv.get_prefix(model.prefix(section))
        model.load(section, listing.items, listing.revision)
        self.wakeup.poke()
        return listing.revision

    async def _follow(self, model: LeaderView, section: str, revision: int) -> None:
        def on_event(event: WatchEvent) -> None:
            if model.apply(event):
                self.wakeup.poke()

        prefix = model.prefix(section)
        await follow(self.registry.kv, prefix, revision + 1, on_event,
                     functools.partial(self._relist, model, section),
                     on_error=functools.partial(self._watch_interrupted, prefix))

    async def _passes(self, model: LeaderView) -> None:
        while True:
            if self._deposed:
                raise LostLeadership("the leader key was deleted or taken over")
            try:
                await self.reconcile(model)
            except RegistryUnavailable as exc:
                self.recorder.engine_failure("etcd_unavailable")
                self.log.warning("etcd unavailable; reconcile skipped", error=str(exc))
            await self.wakeup.wait(self._next_wait())

    def _next_wait(self) -> float:
        """The reconcile interval, or less if a hold on a vanished machine ends sooner, or while
        units that left a draining machine are not running yet."""
        wait = self.interval if not self.drain.flying else min(self.interval, drain_flight.POLL)
        if self._due is None:
            return wait
        return min(wait, max(0.05, self._due - self.clock()))

    async def reconcile(self, model: LeaderView) -> None:
        """One pass, if the model or the holds changed since the last one: decide and commit."""
        await self._fetch_files(model)
        holds = self._holds(model)
        failed = self.failures.verdict(model.failures, model.units, model.specs, model.assignments,
                                       self.clock())
        self._due = min((d for d in (holds.due, failed.due) if d is not None), default=None)
        await self.drain.settle(self.registry, model)
        decision = (model.version, holds.machines, holds.fenced, failed.key,
                    tuple(sorted(self.drain.flying)))
        if decision == self._decided:
            return
        started = time.monotonic()
        snapshot = replace(failures.apply(model.snapshot(self.policy), failed),
                           drain_slots=self.drain.slots())
        snapshot, held = restrict(snapshot, holds)
        plan = await asyncio.to_thread(schedule, snapshot)  # the heart keeps beating meanwhile
        placed = {self.registry.keys.assignment(a.machine, a.unit): a
                  for a in [*(u.assignment for u in plan.updates), *(p.assignment for p in plan.placements)]}
        first = self._evict_ops(plan)
        then = ([self.registry.place_op(a) for a in placed.values()]
                + [self.registry.move_done_op(u) for u in plan.moves_done]
                + [self.registry.forget_failure_op(u, m) for u, m in failed.stale]
                + self._pending_ops(plan, held, model.pending)
                + self.departures.alarm_ops(model, holds, self.registry.alarm_op))
        decided = time.monotonic()

        def committed(batch: Sequence[Op], revision: int) -> None:
            model.record_commit(batch, revision, placed)

        try:  # evictions land before placements: a moved unit never runs in two places
            txns = await self.registry.commit(self.token or 0, first, on_batch=committed)
            txns += await self.registry.commit(self.token or 0, then, on_batch=committed)
        except Fenced as exc:
            raise LostLeadership(str(exc)) from exc
        self.drain.record(plan)
        ops = first + then
        self._decided = () if ops else decision  # after writing, one more pass confirms
        self._report(plan, txns, decided - started, time.monotonic() - decided)
        self._record(plan, held, time.monotonic() - started)

    def _record(self, plan: Decision, held: dict[str, str], seconds: float) -> None:
        """Tell the recorder about a committed pass (reasons counted once per distinct text)."""
        pending = [*(p.reason for p in plan.pending), *held.values()]
        self.recorder.engine_pass(seconds, len(plan.placements), len(plan.updates),
                                  by_category(e.reason for e in plan.evictions), by_category(pending))

    def _holds(self, model: LeaderView) -> Holds:
        """Which vanished machines' units to leave alone this pass (settling, fencing, brake)."""
        braked_before = self.departures.braked
        holds = self.departures.holds(model, self.clock())
        self._due = holds.due
        if holds.braked and holds.braked != braked_before:
            self.log.error("mass failure: rescheduling held", machines=sorted(m[:8] for m in holds.braked),
                           live=len(model.machines), hint="fleetctl confirm-reschedule releases them")
        elif braked_before and not holds.braked:
            self.log.warning("mass-failure brake released", machines=sorted(m[:8] for m in braked_before),
                             live=len(model.machines))
        return holds

    async def _fetch_files(self, model: LeaderView) -> None:
        """Read the unit files the model lacks: once per content hash, never per placement."""
        for digest in sorted(model.missing_files()):
            for problem in model.add_file(digest, await self.registry.get_file(digest)):
                self.log.error("unit cannot be scheduled", problem=problem)

    def _evict_ops(self, plan: Decision) -> list[Op]:
        return [self.registry.evict_op(e.unit, e.machine) for e in plan.evictions]


    def _pending_ops(self, plan: Decision, held: dict[str, str], stored: dict[str, str]) -> list[Op]:
        """Write reasons that are new or changed; clear those of units no longer pending."""
        reasons = {p.unit: p.reason for p in plan.pending} | held
        ops = [self.registry.pending_op(u, r) for u, r in sorted(reasons.items()) if stored.get(u) != r]
        return ops + [self.registry.pending_op(u, None) for u in sorted(stored) if u not in reasons]

    # logging ---------------------------------------------------------------------------------

    def _report(self, plan: Decision, txns: int, decide_s: float, commit_s: float) -> None:
        actions = len(plan.evictions) + len(plan.updates) + len(plan.placements)
        detail = self.log.info if actions <= DETAIL_LIMIT else self.log.debug
        for e in plan.evictions:
            detail("unit unscheduled", unit=e.unit, machine=e.machine[:8], reason=e.reason)
        for u in plan.updates:
            detail("unit placement updated", unit=u.assignment.unit, machine=u.assignment.machine[:8],
                   desired=u.assignment.desired.value, reason=u.reason)
        for p in plan.placements:
            detail("unit scheduled", unit=p.assignment.unit, machine=p.assignment.machine[:8],
                   reason=p.reason)
        self._report_pending(plan)
        if actions > DETAIL_LIMIT:
            self.log.info("plan committed", scheduled=len(plan.placements), updated=len(plan.updates),
                          unscheduled=len(plan.evictions), pending=len(plan.pending), txns=txns,
                          decide_s=round(decide_s, 3), commit_s=round(commit_s, 3))
        elif txns:
            self.log.debug("plan committed", txns=txns, decide_s=round(decide_s, 4),
                           commit_s=round(commit_s, 4))

    def _report_pending(self, plan: Decision) -> None:
        pending = {p.unit: p.reason for p in plan.pending}
        fresh = {u: r for u, r in pending.items() if self._last_pending.get(u) != r}
        detail = self.log.warning if len(fresh) <= DETAIL_LIMIT else self.log.debug
        for unit, reason in fresh.items():
            detail("unit cannot be scheduled", unit=unit, reason=reason)
        if len(fresh) > DETAIL_LIMIT:
            self.log.warning("units cannot be scheduled", count=len(fresh),
                             example=next(iter(fresh.items())))
        self._last_pending = pending

