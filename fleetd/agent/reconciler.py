"""The agent: make this host's systemd match the units the leader assigned to it.

The desired set lives in memory: two `Mirror`s fed by the watches of this machine's own
assign/<id>/ prefix and of global/ (each listed at start, and again only after a compaction);
the agent never reads the rest of the registry. A pass is gather -> plan_tasks (pure) -> apply:
- gather: the mirrors; a unit file from etcd only the first time its hash is seen; fleet's
  unit files here (`HostUnits`, read from the units directory at start, after a failed pass
  and every RESYNC_SECONDS); their systemd states from the publisher's copy (kept by systemd's
  signals), asking systemd only about units that copy lacks (all of them after a restart).
- apply: tasks run phase by phase in plan order (unload, load, reload, stop, start); the tasks
  of one phase run concurrently, at most PARALLEL_TASKS at once. A phase with a failure ends
  the pass, and the next pass, RETRY_SECONDS later, retries. The units a pass acted on are
  handed to the publisher to read back from systemd.
Global units are decided here, with the rule the engine shares (fleetd.model.globals). A unit
whose name fleet refuses (written to etcd past the API) never reaches systemd: it is logged
once, reported failed with the reason, and the other units go on. Passes
run when a mirror changes, and every RELIST_SECONDS otherwise, when both prefixes are also
listed afresh and merged (an alarm for a watch that stops without an error: what a listing
finds that the watch then never delivers is counted as a relist catch, and a pass abandoned
after PASS_TIMEOUT is counted too; both stay 0 in a healthy cluster).

Fencing: while the heart cannot prove this machine is alive (`Heart.fenced`), AtMostOnce units
are kept stopped (desired state downgraded to loaded) so they are down before the engine may
place them elsewhere. After the lease is confirmed again they stay down until the assignments
were listed afresh, and, if the lease had expired meanwhile, until `Liveness.rejoin_after`
seconds after the last keep-alive, when the engine has had its chance to move them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from fleetd.agent.local import HostUnits
from fleetd.agent.mirror import Mirror
from fleetd.agent.planning import Current, Desired, Task, TaskKind, plan_tasks, refused_names
from fleetd.agent.publisher import Publisher
from fleetd.errors import Compacted, InvalidInput, RegistryUnavailable, UnitManagerError
from fleetd.logs import get_logger
from fleetd.loop import Wakeup, spawn
from fleetd.model.globals import globals_on
from fleetd.model.liveness import Liveness
from fleetd.model.machine import Machine
from fleetd.model.requirements import Requirements, parse_requirements
from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment, Unit
from fleetd.model.unitfile import UnitFile
from fleetd.observe import NoRecorder, Recorder
from fleetd.registry.store import Registry
from fleetd.stall import StallWatch
from fleetd.systemd.base import UnitManager

RUNNING = frozenset({"active", "activating", "reloading"})
RESYNC_SECONDS = 60.0
RETRY_SECONDS = 5.0
RELIST_SECONDS = 15.0
PASS_TIMEOUT = 180.0  # longer than any D-Bus job wait: a pass stuck beyond it is abandoned
STALL_REPORT_SECONDS = 30.0  # a pass (or the first listing) running longer logs where it waits
PARALLEL_TASKS = 4
FETCH_AT_ONCE = 32


class FenceClock(Protocol):
    """What the agent reads from the heart (fleetd.agent.heart.Heart) to fence itself."""

    fenced: bool
    lapsed_at: float | None
    timing: Liveness


class Agent:
    """Drives one host's systemd toward its assignments and the global units that apply here."""

    def __init__(self, registry: Registry, systemd: UnitManager, machine: Machine,
                 publisher: Publisher, host: HostUnits, fence: FenceClock,
                 recorder: Recorder | None = None) -> None:
        self.registry = registry
        self.recorder = recorder or NoRecorder()
        self.fence = fence
        self._relist_due = False  # fenced since the assignments were last listed
        self._relisted_at = 0.0
        self.systemd = systemd
        self.machine = machine
        self.publisher = publisher
        self.host = host
        self.wakeup = Wakeup()
        keys, kv = registry.keys, registry.kv
        self.assigned: Mirror[Assignment] = Mirror(kv, keys.assigned_to(machine.id),
                                                   registry.decode_assignment, self.wakeup.poke,
                                                   self._watch_trouble, self._caught,
                                                   patience=RELIST_SECONDS)
        self.globals: Mirror[Unit] = Mirror(kv, keys.globals, registry.decode_global, self.wakeup.poke,
                                            self._watch_trouble, self._caught, patience=RELIST_SECONDS)
        self._texts: dict[str, str] = {}
        self._refused: dict[str, str] = {}  # unit -> reason, as last reported
        self._requirements: dict[tuple[str, str], Requirements | None] = {}
        self._rescan_due = True
        self._rescanned_at = 0.0
        self._adopted = False  # the units systemd ran when this agent started count as launched
        self.log = get_logger("agent", machine=machine.short_id)
        self.stall = StallWatch("agent pass", STALL_REPORT_SECONDS, self.log)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            spawn(group, self.assigned.run(), "agent-watch-assign")
            spawn(group, self.globals.run(), "agent-watch-global")
            spawn(group, self.stall.run(), "agent-stall-watch")
            spawn(group, self._loop(), "agent-loop")

    def _watch_trouble(self, what: str, exc: Exception) -> None:
        if isinstance(exc, InvalidInput):
            self.log.error("registry record ignored", key=what, error=str(exc))
        elif isinstance(exc, Compacted):
            self.log.info("watch compacted; listing again", prefix=what)
        else:
            self.log.warning("etcd unavailable; keeping units as they are", prefix=what, error=str(exc))

    def _caught(self, missed: int) -> None:
        self.recorder.agent_relist_catches(missed)
        self.log.error("a relist found changes the watch never delivered", keys=missed)

    async def _loop(self) -> None:
        self.stall.begin()  # the first listings count as a pass: a hang there is reported too
        await self.assigned.ready.wait()
        await self.globals.ready.wait()
        self.stall.end()
        self._relisted_at = asyncio.get_running_loop().time()
        while True:
            done = False
            started = asyncio.get_running_loop().time()
            self.stall.begin()
            try:
                await self._relist_if_stale()
                async with asyncio.timeout(PASS_TIMEOUT):
                    done = await self.reconcile()
            except RegistryUnavailable as exc:
                self.log.warning("etcd unavailable; unit files not fetched", error=str(exc))
            except UnitManagerError as exc:
                self.log.warning("systemd query failed; will retry", error=str(exc))
            except TimeoutError:
                self.recorder.agent_pass_abandoned()
                self.log.error("agent pass did not finish; abandoned, will retry",
                               seconds=PASS_TIMEOUT)
            finally:
                self.stall.end()
            self.recorder.agent_pass(asyncio.get_running_loop().time() - started, done)
            await self.wakeup.wait(self._next_wait(RELIST_SECONDS if done else RETRY_SECONDS))

    async def _relist_if_stale(self) -> None:
        """Check both mirrors against a fresh listing every RELIST_SECONDS: an alarm for a
        watch that stops without an error (one read of both prefixes per host and period);
        what it catches is counted (`Mirror.compare`)."""
        now = asyncio.get_running_loop().time()
        if now - self._relisted_at < RELIST_SECONDS:
            return
        self._relisted_at = now
        assigned, globals_ = await self.registry.kv.get_prefixes([self.assigned.prefix,
                                                                   self.globals.prefix])
        self.assigned.compare(assigned)
        self.globals.compare(globals_)

    def _next_wait(self, normal: float) -> float:
        """`normal`, or less while AtMostOnce units wait out a lapsed lease."""
        ends = self._lapse_ends()
        now = asyncio.get_running_loop().time()
        return min(normal, max(0.05, ends - now)) if ends is not None and ends > now else normal

    def _lapse_ends(self) -> float | None:
        lapsed = self.fence.lapsed_at
        return None if lapsed is None else lapsed + self.fence.timing.rejoin_after

    async def _fencing(self) -> bool:
        """True while AtMostOnce units must stay down here; lists the assignments afresh once
        the lease is confirmed again."""
        if self.fence.fenced:
            self._relist_due = True
            return True
        ends = self._lapse_ends()
        if ends is not None and asyncio.get_running_loop().time() < ends:
            self._relist_due = True
            return True
        if self._relist_due:
            await self.assigned.check()
            self._relist_due = False
            self.log.warning("fencing lifted: AtMostOnce units may run here again")
        return False

    async def reconcile(self) -> bool:
        """One pass; False if a task failed (the caller retries soon)."""
        desired = await self.desired()
        ported = self._note_published(desired)
        before = (dict(self.host.files), set(self.host.started))
        current = await self.current()
        tasks = plan_tasks(desired, current)
        done = await self._apply(tasks, desired)
        self._rescan_due = self._rescan_due or not done
        touched = {t.unit for t in tasks if t.unit} | _changed(before, self.host) | ported
        if touched:
            self.publisher.refresh(touched)
        return done

    # gather -------------------------------------------------------------------------------

    async def desired(self) -> dict[str, Desired]:
        """Assigned units plus the global units that run here, whose files we have."""
        wanted = {a.unit: Desired(name=a.unit, hash=a.hash, state=a.desired)
                  for a in self.assigned.items.values() if a.desired is not TargetState.INACTIVE}
        candidates = [u for u in self.globals.items.values()
                      if u.desired is not TargetState.INACTIVE and u.name not in wanted]
        wanted, candidates = self._without_refused(wanted, candidates)
        digests = [d.hash for d in wanted.values()] + [u.hash for u in candidates]
        await self._fetch(digests)
        self._forget_all_but(set(digests))
        wanted = {name: d for name, d in wanted.items() if d.hash in self._texts}
        wanted.update(self._globals_here(wanted, candidates))
        if await self._fencing():
            wanted = self._fenced(wanted)
        return wanted

    def _without_refused(self, wanted: dict[str, Desired], candidates: list[Unit]
                         ) -> tuple[dict[str, Desired], list[Unit]]:
        """Drop the units whose names fleet refuses; log each once, and have the publisher
        report them failed with the reason."""
        hashes = {n: d.hash for n, d in wanted.items()} | {u.name: u.hash for u in candidates}
        refused = refused_names(hashes)
        for name in sorted(refused.keys() - self._refused.keys()):
            self.log.error("unit refused; reported failed, the other units go on", unit=name,
                           reason=refused[name])
        self._refused = refused
        self.publisher.refuse({n: (hashes[n], why) for n, why in refused.items()})
        return ({n: d for n, d in wanted.items() if n not in refused},
                [u for u in candidates if u.name not in refused])

    def _note_published(self, desired: dict[str, Desired]) -> set[str]:
        """Tell the publisher each desired unit's Publish= ports and which units reschedule on
        failure; return the units whose ports changed."""
        reqs = {n: r for n, d in desired.items() if (r := self._requirements_of(n, d.hash)) is not None}
        ports = {n: r.publish for n, r in reqs.items() if r.publish}
        self.host.reschedule = {n for n, r in reqs.items() if r.reschedule is not None}
        old, self.host.published = self.host.published, ports
        return {n for n in old.keys() | ports.keys() if old.get(n) != ports.get(n)}

    def _fenced(self, wanted: dict[str, Desired]) -> dict[str, Desired]:
        """AtMostOnce units kept loaded but stopped."""
        down = sorted(n for n, d in wanted.items() if d.state is TargetState.LAUNCHED
                      and (r := self._requirements_of(n, d.hash)) is not None and r.at_most_once)
        if down:
            self.log.warning("fenced: keeping AtMostOnce units stopped", units=down)
        return wanted | {n: replace(wanted[n], state=TargetState.LOADED) for n in down}

    async def _fetch(self, digests: Iterable[str]) -> None:
        """Read the unit files not seen before from etcd, a few at a time."""
        missing = [d for d in dict.fromkeys(digests) if d not in self._texts]
        for i in range(0, len(missing), FETCH_AT_ONCE):
            batch = missing[i:i + FETCH_AT_ONCE]
            texts = await asyncio.gather(*(self.registry.get_file(d) for d in batch))
            self._texts.update((d, t) for d, t in zip(batch, texts, strict=True) if t is not None)

    def _forget_all_but(self, digests: set[str]) -> None:
        """Drop cached files and requirements no desired unit refers to any more."""
        self._texts = {d: t for d, t in self._texts.items() if d in digests}
        self._requirements = {k: r for k, r in self._requirements.items() if k[1] in digests}

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
        """Fleet's units here: files (read from disk when a rescan is due) and started or not.

        States come from the publisher's copy, kept by systemd's signals; only units it does
        not know yet (all of them after fleetd started) are asked of systemd.
        """
        now = asyncio.get_running_loop().time()
        if self._rescan_due or now - self._rescanned_at >= RESYNC_SECONDS:
            self.host.rescanned(self.systemd.local_units())
            self._rescan_due, self._rescanned_at = False, now
        states = {n: s for n, s in self.publisher.known.items() if n in self.host.files}
        unknown = [n for n in self.host.files if n not in states]
        states.update(await self.systemd.states(unknown) if unknown else {})
        # After fleetd itself (re)started, a unit systemd runs counts as launched by us. Later a
        # unit fleet only loaded stays as it is when something else starts it (the service a
        # timer starts), as in fleet.
        if not self._adopted:
            self.host.started |= {name for name, state in states.items() if state.active in RUNNING}
            self._adopted = True
        return {name: Current(name=name, hash=digest, launched=name in self.host.started)
                for name, digest in self.host.files.items()}

    # apply --------------------------------------------------------------------------------

    async def _apply(self, tasks: tuple[Task, ...], desired: dict[str, Desired]) -> bool:
        """Run the phases in order; stop after the first phase in which a task failed."""
        for _, phase in itertools.groupby(tasks, key=lambda t: t.kind):
            if not all(await self._run_phase(list(phase), desired)):
                return False
        return True

    async def _run_phase(self, tasks: list[Task], desired: dict[str, Desired]) -> list[bool]:
        slots = asyncio.Semaphore(PARALLEL_TASKS)

        async def bounded(task: Task) -> bool:
            async with slots:
                return await self._run_task(task, desired)

        return list(await asyncio.gather(*(bounded(t) for t in tasks)))

    async def _run_task(self, task: Task, desired: dict[str, Desired]) -> bool:
        try:
            await self._execute(task, desired)
        except UnitManagerError as exc:
            self.recorder.agent_task(task.kind.name.lower(), False)
            self.log.error("task failed; will retry", task=task.kind.name.lower(), unit=task.unit,
                           reason=task.reason, error=str(exc))
            return False
        self.recorder.agent_task(task.kind.name.lower(), True)
        self.log.info("task done", task=task.kind.name.lower(), unit=task.unit, reason=task.reason)
        return True

    async def _execute(self, task: Task, desired: dict[str, Desired]) -> None:
        if task.kind is TaskKind.UNLOAD:
            self.host.started.discard(task.unit)
            await self.systemd.unload(task.unit)
            self.host.unloaded(task.unit)
        elif task.kind is TaskKind.LOAD:
            want = desired[task.unit]
            await self.systemd.load(task.unit, self._texts[want.hash])
            self.host.loaded(task.unit, want.hash)
        elif task.kind is TaskKind.RELOAD:
            await self.systemd.reload()
        elif task.kind is TaskKind.STOP:
            self.host.started.discard(task.unit)
            await self.systemd.stop(task.unit)
        elif task.kind is TaskKind.START:
            self.host.started.add(task.unit)
            result = await self.systemd.start(task.unit)
            if result != "done":
                self.log.warning("unit did not start cleanly", unit=task.unit, result=result)


def _changed(before: tuple[dict[str, str], set[str]], host: HostUnits) -> set[str]:
    """Units whose file or fleet state differs from `before` (files, started)."""
    files, started = before
    moved = set(files.items()) ^ set(host.files.items())
    return {name for name, _ in moved} | (started ^ host.started)
