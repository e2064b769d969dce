"""The engine: leader election, then an in-memory model fed by watches -> schedule -> commit.

Every fleetd without disable_engine runs one and watches only the leader key until it wins
the campaign; it campaigns (one txn) only while that watch shows no leader, or a leader key
that `fleetd.engine.election` finds forged (checked once per write of the key: two reads),
which it deletes first and logs. The leader then
reads machines/, assign/, pending/ and units/ in one txn (one consistent snapshot), follows
each prefix with a watch from that revision on, and keeps `fleetd.engine.view.LeaderView` up
to date from the events. A pass reads nothing from etcd (only
a unit file the model has never seen is fetched, once per content hash); it runs when the
model changed since the last pass, and its writes go out in fenced txns of at most 128 ops,
a few in flight at once, evictions before placements. A prefix is listed again only after a
compaction made its watch lose history. Alongside, the leader deletes unit files no unit
references any more (`fleetd.engine.file_gc`).

Passes are incremental (`fleetd.engine.standing`): the model's changes since the last pass go
to the standing state as a delta, and cost work in proportion to the change. A full pass over a
copy of the model rebuilds the standing state at leadership start, after a listing, after a plan
that was not fully written, and every `full_every` seconds; that one also steps the old standing
state and logs an error if the two disagree (the full pass wins).

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
from fleetd.engine.changes import delta
from fleetd.engine.departure_memory import Departures
from fleetd.engine.departures import Holds, held_units, restrict
from fleetd.engine.drain_flight import DrainFlight
from fleetd.engine.election import forged_because, own_key
from fleetd.engine.failures import FailureMemory, Verdict
from fleetd.engine.file_gc import FileCollector
from fleetd.engine.pass_log import log_plan
from fleetd.engine.scheduler import BINPACK, Decision, schedule
from fleetd.engine.standing import Standing, cross_check
from fleetd.engine.view import SECTIONS, LeaderView
from fleetd.errors import Fenced, RegistryUnavailable
from fleetd.logs import get_logger
from fleetd.loop import Wakeup, spawn
from fleetd.model.liveness import Liveness
from fleetd.observe import NoRecorder, Recorder, by_category
from fleetd.registry.kv import Op, WatchEvent
from fleetd.registry.store import Registry
from fleetd.registry.watch import follow, list_then_follow

FULL_EVERY = 600.0  # seconds between full passes that check the incremental engine's state


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
                 recorder: Recorder | None = None, full_every: float = FULL_EVERY,
                 file_gc_grace: float = 60.0, drain_batch: int = 4) -> None:
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
        self.full_every = full_every
        self.token: int | None = None
        self.model: LeaderView | None = None
        self.standing: Standing | None = None  # the incremental engine's state, after a written plan
        self._full_at = 0.0  # when the last full pass was decided (engine clock)
        self.wakeup = Wakeup()
        self._deposed = False
        self._leader_rev: int | None = None  # the leader key's mod revision, as its watch last
        # showed it (0: no key; None: not listed yet)
        self._stands: int = 0  # the mod revision of the last leader key judged real
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
            self._leader_rev = next((kv.mod_revision for kv in listing.items if kv.key == key), 0)
            self._on_leader_change(mine)
            return listing.revision

        await list_then_follow(self.registry.kv, key, self._leader_event, relist,
                               on_error=functools.partial(self._watch_interrupted, key))

    def _leader_event(self, event: WatchEvent) -> None:
        if event.key == self.registry.keys.leader:
            self._leader_rev = event.mod_revision if event.kind == "put" else 0
            if self.token is not None and event.mod_revision < self.token:
                return  # from before this engine's campaign (e.g. the forgery it deleted)
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
        if not self.lease.lease or await self._leader_stands():
            return self.token is not None  # campaign only when there is no real leader (or
            # the key is this engine's own: _leader_stands took it up)
        self._acquired(await self.registry.campaign(self.machine_id, self.lease.lease))
        return self.token is not None

    def _acquired(self, token: int | None, how: str = "campaign") -> None:
        self.token = token
        if token is not None:
            self._deposed = False
            self.recorder.leadership(True)
            self.log.info("engine leadership acquired", token=token, how=how)

    async def _leader_stands(self) -> bool:
        """Whether a real leader holds the key; a forged key is deleted (False: campaign now)."""
        if not self._leader_rev or self._leader_rev == self._stands:
            return bool(self._leader_rev)
        leader, machine = await self.registry.leader_claim()
        if leader is not None and own_key(leader, self.machine_id, self.lease.lease):
            self._stands = leader.mod_revision
            self._acquired(leader.create_revision, how="own key, its campaign's reply was lost")
            return True
        why = forged_because(leader, machine, self.machine_id)
        if leader is None or why is None:
            self._stands = leader.mod_revision if leader else 0
            return leader is not None
        self.recorder.engine_failure("forged_leader")
        self.log.warning("ignoring forged leader key; replacing it", reason=why,
                         value=leader.value[:64], lease=leader.lease)
        await self.registry.depose(leader.mod_revision)
        return False

    def _step_down(self) -> None:
        self.recorder.leadership(False)
        self.token = None
        self.model = None
        self.standing = None
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
        standing, self.standing = self.standing, None  # given back once the plan is written
        if self._lifecycle_inputs(model, failed):
            plan, held, standing = await self._lifecycle_plan(model, holds, failed)
        else:
            plan, held, standing = await self._plan(model, holds, standing)
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
        self.standing = standing
        self.drain.record(plan)
        ops = first + then
        self._decided = () if ops else decision  # after writing, one more pass confirms
        self._last_pending = log_plan(self.log, plan, txns, decided - started,
                                      time.monotonic() - decided, self._last_pending)
        self._record(plan, held, time.monotonic() - started)

    def _lifecycle_inputs(self, model: LeaderView, failed: Verdict) -> bool:
        """Whether an operator's or a failure's input is present (a cordoned or draining
        machine, a move, a failed unit, drain moves in flight): the incremental state knows
        none of them, so such passes are full ones, and the next plain pass rebuilds it."""
        return bool(model.machine_states or model.moves or failed.failed or failed.move_now
                    or failed.gave_up or self.drain.flying)

    async def _lifecycle_plan(self, model: LeaderView, holds: Holds, failed: Verdict
                              ) -> tuple[Decision, dict[str, str], None]:
        model.take_changes()
        snapshot = replace(failures.apply(model.snapshot(self.policy), failed),
                           drain_slots=self.drain.slots())
        snapshot, held = restrict(snapshot, holds)
        plan = await asyncio.to_thread(schedule, snapshot)  # the heart keeps beating meanwhile
        return plan, held, None

    async def _plan(self, model: LeaderView, holds: Holds, standing: Standing | None
                    ) -> tuple[Decision, dict[str, str], Standing]:
        """The pass's plan, why held units wait, and the standing state the plan leaves. Passes
        run in a thread (the heart keeps beating meanwhile); what they read is taken first."""
        changes, now = model.take_changes(), self.clock()
        held, reasons = held_units(holds, model.assigned, model.specs)
        step = None if standing is None or changes.relisted else \
            delta(model.live(self.policy), changes, held, standing.held)
        if standing is not None and step is not None and now - self._full_at < self.full_every:
            return await asyncio.to_thread(standing.step, step), reasons, standing
        snapshot, _ = restrict(model.snapshot(self.policy), holds)
        fresh, plan, agrees = await asyncio.to_thread(cross_check, snapshot, held, standing, step)
        if not agrees:
            self.log.error("incremental engine disagreed with a full pass; the full pass wins",
                           units=len(snapshot.units), machines=len(snapshot.machines))
        self._full_at = now
        return plan, reasons, fresh

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
