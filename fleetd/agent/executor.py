"""The owning host's side of the remote-command relay: runs status/journal/restart requests.

Watches only `exec/<own-id>/` (list, then follow; relist after a compaction). Each new request
is validated again (`fleetd.model.remote`), its command is spawned without a shell through the
injected `spawn` function, and its output is written back under `exec-out/<id>/` on this
machine's lease: first a `started` record, then chunks of at most 64 KiB (output is coalesced
for `coalesce` seconds), then the exit status. When the request key is deleted (the requester
is done, gave up or died with its lease) the command is killed (journal -f) and the outputs
are removed.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn, Protocol

from fleetd.errors import FleetError, InvalidInput
from fleetd.logs import get_logger
from fleetd.model.remote import CHUNK_BYTES, ExecRequest, Output, cut, decode_request
from fleetd.registry import remote
from fleetd.registry.kv import WatchEvent
from fleetd.registry.store import Registry
from fleetd.registry.watch import list_then_follow


class Process(Protocol):
    """What the executor needs of a spawned command (asyncio.subprocess.Process has it)."""

    stdout: asyncio.StreamReader | None

    async def wait(self) -> int: ...

    def kill(self) -> None: ...


Spawn = Callable[[Sequence[str]], Awaitable[Process]]


async def spawn(argv: Sequence[str]) -> Process:
    """Run `argv` directly (no shell), stdout and stderr merged, no stdin."""
    return await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)


class Executor:
    """Serves the requests addressed to `machine_id`; `run` until cancelled."""

    def __init__(self, registry: Registry, machine_id: str, lease: Callable[[], int],
                 spawn: Spawn = spawn, coalesce: float = 0.05) -> None:
        self.registry = registry
        self.prefix = registry.keys.exec_requests(machine_id)
        self.lease = lease
        self.spawn = spawn
        self.coalesce = coalesce
        self.running: dict[str, asyncio.Task[None]] = {}
        self.finished: set[str] = set()
        self._cleanups: set[asyncio.Task[None]] = set()
        self.log = get_logger("executor", machine=machine_id[:8])

    async def run(self) -> NoReturn:
        try:
            await list_then_follow(self.registry.kv, self.prefix, self._on_event, self._relist,
                                   on_error=lambda exc: self.log.warning(
                                       "exec watch interrupted", error=str(exc)))
        finally:
            for task in list(self.running.values()):
                task.cancel()

    async def _relist(self) -> int:
        listing = await self.registry.kv.get_prefix(self.prefix)
        present = {item.key for item in listing.items}
        for key in set(self.running) | self.finished - present:
            if key not in present:
                self._gone(key)
        for item in listing.items:
            self._start(item.key, item.value)
        return listing.revision

    def _on_event(self, event: WatchEvent) -> None:
        if event.kind == "put":
            self._start(event.key, event.value)
        else:
            self._gone(event.key)

    def _start(self, key: str, value: str) -> None:
        if key in self.running or key in self.finished:
            return
        task = asyncio.create_task(self._serve(key, value), name=f"exec {key}")
        self.running[key] = task
        task.add_done_callback(lambda _: self._done(key))

    def _done(self, key: str) -> None:
        if self.running.pop(key, None) is not None:
            self.finished.add(key)

    def _gone(self, key: str) -> None:
        """The request was withdrawn: stop its command and remove its outputs."""
        self.finished.discard(key)
        task = self.running.pop(key, None)
        if task is not None:
            task.cancel()
        cleanup = asyncio.create_task(self._cleanup(self.registry.keys.last_segment(key)))
        self._cleanups.add(cleanup)
        cleanup.add_done_callback(self._cleanups.discard)

    async def _cleanup(self, request_id: str) -> None:
        with contextlib.suppress(FleetError):
            await remote.delete_outputs(self.registry, request_id)

    async def _serve(self, key: str, value: str) -> None:
        out = _Writer(self.registry, self.registry.keys.last_segment(key), self.lease)
        try:
            await out.put(Output(started=True))
            await out.put(Output(exit=await self._execute(value, out)))
        except FleetError as exc:
            self.log.warning("exec request failed", request=key, error=str(exc))

    async def _execute(self, value: str, out: _Writer) -> int:
        """Run the request's command, streaming its output; its exit status."""
        try:
            request: ExecRequest = decode_request(value)
        except InvalidInput as exc:
            await out.put(Output(data=f"fleetd: refused request: {exc}\n"))
            return 2
        self.log.info("running remote command", argv=" ".join(request.argv()))
        try:
            process = await self.spawn(request.argv())
        except OSError as exc:
            await out.put(Output(data=f"fleetd: cannot run {request.argv()[0]}: {exc}\n"))
            return 127
        try:
            await self._pump(process, out)
            return await process.wait()
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    async def _pump(self, process: Process, out: _Writer) -> None:
        """Copy stdout to output records: flushed `coalesce` s after the first unsent byte."""
        assert process.stdout is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending, deadline = "", None
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    piece = await process.stdout.read(CHUNK_BYTES)
            except TimeoutError:
                pending, deadline = await out.flush(pending), None
                continue
            pending += decoder.decode(piece, final=not piece)
            if not piece:
                await out.flush(pending)
                return
            deadline = deadline or loop.time() + self.coalesce
            if len(pending.encode()) >= CHUNK_BYTES:
                pending, deadline = await out.flush(pending), None


class _Writer:
    """Numbers and writes one request's output records on the machine's lease."""

    def __init__(self, registry: Registry, request_id: str, lease: Callable[[], int]) -> None:
        self.registry, self.request_id, self.lease = registry, request_id, lease
        self.seq = 0

    async def put(self, output: Output) -> None:
        await remote.put_output(self.registry, self.request_id, self.seq, output, self.lease())
        self.seq += 1

    async def flush(self, text: str) -> str:
        for chunk in cut(text.encode()):
            await self.put(Output(data=chunk))
        return ""
