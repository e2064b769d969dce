"""The API side of the remote-command relay: status, journal and restart of a unit's host.

Owns which machines a request goes to (the unit's assignment; for a global unit every machine
reporting a state) with fleet's refusals, and the conversation with each: write the request
under `exec/<machine>/<id>` on this fleetd's lease, watch `exec-out/<id>/` from that write's
revision, turn the records into NDJSON lines, and delete the request and its outputs when done
or when the client went away. A host that does not answer within `answer_timeout` is
`NoAnswer` (504 before the stream starts); a host whose presence key vanished while streaming
ends its part with an error line. No HTTP library here: `fleetd.api.http` passes in `write`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from fleetd.errors import Conflict, FleetError, NotFound
from fleetd.model import remote as records
from fleetd.model.names import validate_name
from fleetd.model.remote import ExecRequest, Output
from fleetd.model.states import UnitState
from fleetd.registry import remote
from fleetd.registry.store import Registry

NDJSON = "application/x-ndjson"
Write = Callable[[bytes], Awaitable[None]]
_NOT_LOADED = {"journal": "Unit {} does not appear to be running."}


class NoAnswer(FleetError):
    """The owning host did not answer (down, or its fleetd is not running)."""


class Relay:
    """Asks the fleetds on other hosts; one per API server."""

    def __init__(self, registry: Registry, lease: Callable[[], int], answer_timeout: float = 10.0,
                 idle_check: float = 10.0) -> None:
        self.registry, self.lease = registry, lease
        self.answer_timeout, self.idle_check = answer_timeout, idle_check

    async def targets(self, name: str, kind: str) -> list[str]:
        """The machines to ask, with fleet's messages when the unit cannot be asked."""
        validate_name(name)
        unit = await self.registry.get_unit(name)
        if unit is None:
            raise NotFound(f"Unit {name} does not exist.")
        reported = await self.registry.list_states(name)
        if unit.is_global:
            if kind == "journal":
                raise Conflict(f"Unable to retrieve journal of global unit {name}.")
            machines = sorted({s.machine for s in reported})
        else:
            machines = await self._assigned(name, reported)
        if not machines:
            raise Conflict(_NOT_LOADED.get(kind, "Unit {} does not appear to be loaded.").format(name))
        return machines

    async def _assigned(self, name: str, reported: Sequence[UnitState]) -> list[str]:
        """The machine the unit is assigned to, if that machine reports it (current != inactive)."""
        for state in reported:
            if await self.registry.kv.get(self.registry.keys.assignment(state.machine, name)):
                return [state.machine]
        return []

    @contextlib.asynccontextmanager
    async def open(self, request: ExecRequest) -> AsyncIterator[Stream]:
        """Resolve the machines and wait for the first one to accept (NoAnswer if it does not)."""
        stream = Stream(self, await self.targets(request.unit, request.kind), request)
        try:
            await stream.begin()
            yield stream
        finally:
            await stream.close()


class Stream:
    """The NDJSON answer of one API request: every target machine's output in turn."""

    def __init__(self, relay: Relay, machines: list[str], request: ExecRequest) -> None:
        self.relay, self.machines, self.request = relay, machines, request
        self.current: _Ask | None = None

    async def begin(self) -> None:
        self.current = _Ask(self.relay, self.machines[0], self.request)
        await self.current.start()

    async def pipe(self, write: Write, closing: Callable[[], bool], poll: float = 0.5) -> None:
        """Forward every line until the end or until `closing()` (the client left)."""
        task = asyncio.ensure_future(self._forward(write))
        try:
            while not task.done():
                await asyncio.wait([task], timeout=poll)
                if closing():
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
                await task
        finally:
            task.cancel()

    async def _forward(self, write: Write) -> None:
        for index, machine in enumerate(self.machines):
            if index:
                await self.close()
                self.current = _Ask(self.relay, machine, self.request)
                try:
                    await self.current.start()
                except NoAnswer as exc:
                    await write(records.error_line(machine, str(exc)).encode())
                    continue
            assert self.current is not None
            try:
                async for line in self.current.lines():
                    await write(line.encode())
            except FleetError as exc:
                await write(records.error_line(machine, str(exc)).encode())

    async def close(self) -> None:
        if self.current is not None:
            await self.current.close()
            self.current = None


class _Ask:
    """One request to one machine: its key, the watch on its outputs, the records so far."""

    def __init__(self, relay: Relay, machine: str, request: ExecRequest) -> None:
        self.relay, self.machine, self.request = relay, machine, request
        self.request_id = secrets.token_hex(16)
        self.queue: asyncio.Queue[Output | Exception] = asyncio.Queue()
        self.pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        reg = self.relay.registry
        revision = await remote.write_request(reg, self.machine, self.request_id, self.request,
                                              self.relay.lease())
        self.pump = asyncio.create_task(self._watch(revision + 1))
        first = await self._next(self.relay.answer_timeout)
        if first is None:
            raise NoAnswer(f"machine {self.machine} did not answer within "
                           f"{self.relay.answer_timeout:g} s")
        if isinstance(first, Exception):
            raise first

    async def _watch(self, revision: int) -> None:
        reg = self.relay.registry
        try:
            async for event in reg.kv.watch_prefix(reg.keys.exec_outputs(self.request_id), revision):
                if event.kind == "put":
                    self.queue.put_nowait(records.decode_output(event.value))
        except FleetError as exc:
            self.queue.put_nowait(exc)

    async def _next(self, timeout: float) -> Output | Exception | None:
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None

    async def lines(self) -> AsyncIterator[str]:
        """NDJSON lines up to and including the exit line."""
        while True:
            item = await self._next(self.relay.idle_check)
            if item is None:
                await self._check_alive()
            elif isinstance(item, Exception):
                raise item
            elif item.exit is not None:
                yield records.exit_line(self.machine, item.exit)
                return
            elif item.data:
                yield records.data_line(self.machine, item.data)

    async def _check_alive(self) -> None:
        reg = self.relay.registry
        if await reg.kv.get(reg.keys.machine(self.machine)) is None:
            raise NoAnswer(f"machine {self.machine} left the cluster")

    async def close(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
        with contextlib.suppress(FleetError):
            await remote.finish(self.relay.registry, self.machine, self.request_id)
