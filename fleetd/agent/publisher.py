"""Unit state publishing: this host's fleet units as systemd reports them, written to etcd on change.

Each state lives at states/<unit>/<machine> on the machine's lease, so it vanishes with the
machine. The endpoint records of units with `Publish=` (endpoints/<unit>/<machine>, decided by
`EndpointBook`) follow the same state changes and go in the same txns.

The publisher keeps the latest systemd state of every fleet unit in memory (`known`) and runs
two loops:

- writing: COALESCE_SECONDS after a unit is marked dirty, one pass writes the records whose
  content changed and deletes those of units that left the host, in one txn per 128 ops.
  Marks made while a pass runs go to the next pass, so a burst coalesces into few txns. A pass
  never waits for systemd.
- asking: units whose state must be read from systemd are asked about in one ListUnitsByNames
  call, then marked dirty: the units an agent pass acted on, and every fleet unit after a new
  lease, after a failed query and every RESYNC_SECONDS.

A unit with `RescheduleOnFailure=true` that enters `failed` also gets a failure record,
failed/<unit>/<machine> (no lease), in the same txn: the leader then places it elsewhere.

Units the agent refused to hand to systemd (`refuse`: an invalid name written to etcd past the
API) are reported without asking systemd: failed, with the reason, under a key-safe label of
their name (`fleetd.model.names.state_label`).

A failed write is retried RETRY_SECONDS later for every unit; what was published is kept, so
records of units that left are still deleted.

systemd's PropertiesChanged signals carry a unit's new ActiveState/SubState, so a signal
updates `known` and marks the unit dirty without asking systemd anything; the load state comes
from the last answer ("loaded" until one says otherwise: the agent has just linked the file).
A signal without those properties makes the asking loop read the unit instead. A signal that
arrives while a question is out wins over the (older) answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping

from fleetd.agent.endpoints import EndpointBook
from fleetd.agent.local import HostUnits
from fleetd.errors import NotFound, RegistryUnavailable, UnitManagerError
from fleetd.logs import get_logger
from fleetd.loop import Wakeup, spawn
from fleetd.model.names import state_label
from fleetd.model.states import REFUSED, SystemdState, TargetState, UnitState
from fleetd.registry import codec
from fleetd.registry.endpoints import endpoint_ops
from fleetd.registry.kv import Op, Put
from fleetd.registry.store import Registry
from fleetd.systemd.base import Activity, UnitManager

COALESCE_SECONDS = 0.004
RESYNC_SECONDS = 60.0
RETRY_SECONDS = 1.0
ASSUMED_LOAD = "loaded"


class Publisher:
    """Keeps states/<unit>/<this machine> equal to what systemd reports for fleet's units here."""

    def __init__(self, registry: Registry, systemd: UnitManager, machine_id: str,
                 lease: Callable[[], int], host: HostUnits, ip: str = "") -> None:
        self.registry = registry
        self.systemd = systemd
        self.machine_id = machine_id
        self.lease = lease
        self.host = host
        self.known: dict[str, SystemdState] = {}
        self.txns = 0
        self._writing = Wakeup()
        self._asking = Wakeup()
        self._dirty: set[str] = set()
        self._ask: set[str] = set()
        self._ask_all = True
        self._signalled: set[str] | None = None  # units signalled while a question is out
        self._published: dict[str, UnitState] = {}
        self.refused: dict[str, UnitState] = {}  # by state label: what `refuse` reports
        self.endpoints = EndpointBook(machine_id, ip, host)
        self.log = get_logger("publisher", machine=machine_id[:8])

    # marks --------------------------------------------------------------------------------

    def unit_changed(self, name: str, activity: Activity | None = None) -> None:
        """systemd says `name` changed: publish it soon if it is one of fleet's units."""
        if name not in self.host.files:
            return
        if activity is None:
            self._ask.add(name)
            self._asking.poke()
            return
        load = self.known[name].load if name in self.known else ASSUMED_LOAD
        self.known[name] = SystemdState(load=load, active=activity.active, sub=activity.sub)
        if self._signalled is not None:
            self._signalled.add(name)
        self._mark({name})

    def refresh(self, names: set[str]) -> None:
        """Read these units from systemd soon (the agent loaded, started or stopped them)."""
        self._ask |= names
        self._asking.poke()

    def refresh_all(self) -> None:
        """Read every fleet unit from systemd soon."""
        self._ask_all = True
        self._asking.poke()

    async def republish_all(self, lease: int) -> None:
        """A new lease took our old records with it: write everything again."""
        self._published.clear()
        self.endpoints.forget()
        self._mark(set(self.known) | set(self.refused))
        self.refresh_all()

    def refuse(self, units: Mapping[str, tuple[str, str]]) -> None:
        """Report exactly these units (name -> (hash, reason)) as refused: failed, with the
        reason, never asked of systemd. Units refused before and missing now are withdrawn."""
        states = {state_label(name): UnitState(name=state_label(name), machine=self.machine_id,
                                               hash=digest, state=TargetState.INACTIVE,
                                               systemd=REFUSED, reason=reason)
                  for name, (digest, reason) in units.items()}
        changed = {n for n in states.keys() | self.refused.keys()
                   if states.get(n) != self.refused.get(n)}
        self.refused = states
        if changed:
            self._mark(changed)

    def _mark(self, names: set[str]) -> None:
        self._dirty |= names
        self._writing.poke()

    # loops --------------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            spawn(group, self._write_loop(), "publisher-write")
            spawn(group, self._ask_loop(), "publisher-ask")

    async def _write_loop(self) -> None:
        while True:
            await self._writing.wait(RESYNC_SECONDS)
            await asyncio.sleep(COALESCE_SECONDS)
            try:
                await self.write()
            except (RegistryUnavailable, NotFound) as exc:
                # the outcome is unknown: compare everything again (a lost lease is the
                # heart's to renew; it calls republish_all)
                self.log.warning("state publishing failed; will retry", error=str(exc))
                await asyncio.sleep(RETRY_SECONDS)
                self._mark(set(self.known))

    async def _ask_loop(self) -> None:
        while True:
            await self._asking.wait(RESYNC_SECONDS)
            if not self._ask:
                self._ask_all = True  # woken by the timer, or by refresh_all
            try:
                await self.ask()
            except UnitManagerError as exc:
                self.log.warning("systemd state query failed; will retry", error=str(exc))
                await asyncio.sleep(RETRY_SECONDS)
                self.refresh_all()

    # the two steps ------------------------------------------------------------------------

    async def ask(self) -> None:
        """Read the units due for a question from systemd (one call); mark them dirty."""
        files, everything = set(self.host.files), self._ask_all
        names = files if everything else self._ask & files
        self._ask, self._ask_all = set(), False
        if everything:
            self.known = {n: s for n, s in self.known.items() if n in files}
        if names:
            await self._query(names)
        self._mark(names)

    async def _query(self, names: Collection[str]) -> None:
        self._signalled = set()
        try:
            states = await self.systemd.states(names)
        finally:
            signalled, self._signalled = self._signalled, None
        for name in names:
            state, newer = states.get(name), self.known.get(name) if name in signalled else None
            if newer is not None:
                load = state.load if state is not None else newer.load
                self.known[name] = SystemdState(load=load, active=newer.active, sub=newer.sub)
            elif state is not None:
                self.known[name] = state
            else:
                self.known.pop(name, None)

    def _failure_ops(self, changed: list[UnitState]) -> list[Op]:
        """A failure record (no lease) for each unit with RescheduleOnFailure=true that has
        just entered `failed`: the leader places it on another machine."""
        keys = self.registry.keys
        return [Put(keys.failure(s.name, self.machine_id), codec.encode_failure(s.hash))
                for s in changed if s.name in self.host.reschedule and s.systemd.active == "failed"
                and getattr(self._published.get(s.name), "systemd", None) != s.systemd]

    async def write(self) -> None:
        """Write the dirty units' records that changed, delete those of units that left."""
        lease = self.lease()
        if not lease:
            return
        files, refused = self.host.files, self.refused
        names, self._dirty = self._dirty & (set(files) | set(refused)), set()
        fresh = [refused.get(name) or UnitState(name=name, machine=self.machine_id, hash=files[name],
                                                state=self.host.fleet_state(name),
                                                systemd=self.known[name])
                 for name in names if name in refused or name in self.known]
        changed = [s for s in fresh if self._published.get(s.name) != s]
        gone = [name for name in self._published
                if name not in refused and (name not in files or name not in self.known)]
        shown, hidden = self.endpoints.changes(names, self.known)
        if changed or gone or shown or hidden:
            extra = endpoint_ops(self.registry.keys, self.machine_id, lease, shown, hidden)
            extra += self._failure_ops(changed)
            self.txns += await self.registry.write_states(self.machine_id, lease, changed, gone,
                                                          extra)
        self.endpoints.written(shown, hidden)
        self._published.update((s.name, s) for s in changed)
        for name in gone:
            del self._published[name]
