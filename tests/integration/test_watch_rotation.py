"""A watch whose stream is being opened when `EtcdKV._rotate` closes the channel under it.

The agent stall seen in CI: a call on the leader's host timed out (DEADLINE_EXCEEDED, most
often a large fenced txn), `_rotate` closed the shared channel, and a watch that was opening
its stream on that channel at that moment never finished its first write: grpc's
`StreamStreamCall.write` waits for the call's initial metadata to go out, and a call cancelled
while that is under way never sends it. The watch waited forever with no error, so the
agent's mirror stopped hearing its assignments.

The fault is placed exactly, with no sleep and no luck: the watch stub is wrapped so that the
first Watch call it creates schedules the rotation with `call_soon`, which runs after the call's
own set-up task has started sending metadata and before it has finished (asyncio runs ready
callbacks in order). The assertions then wait for an event (bounded by `DELIVERY_TIMEOUT`,
which only turns a hang into a failure).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from fleetd.errors import RegistryUnavailable
from fleetd.registry import etcd as etcd_adapter
from fleetd.registry.etcd import EtcdKV
from fleetd.registry.kv import WatchEvent
from fleetd.registry.watch import Backoff, follow

pytestmark = pytest.mark.etcd
DELIVERY_TIMEOUT = 10.0
FAST = Backoff(initial=0.01, cap=0.05)


def fault_on_first_watch(monkeypatch: pytest.MonkeyPatch, fault: Callable[[Any], None]) -> list[int]:
    """Wrap the Watch stub: right after the first Watch call is created, `fault(call)` runs."""
    real_stub = etcd_adapter.rpc.WatchStub
    created: list[int] = []

    class FaultyStub:
        def __init__(self, channel: Any) -> None:
            self._stub = real_stub(channel)

        def Watch(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 (grpc's name)
            call = self._stub.Watch(*args, **kwargs)
            created.append(1)
            if len(created) == 1:
                fault(call)
            return call

    monkeypatch.setattr(etcd_adapter.rpc, "WatchStub", FaultyStub)
    return created


async def first_event(kv: EtcdKV, writer: EtcdKV, prefix: str,
                      errors: list[Exception]) -> WatchEvent:
    """Follow `prefix` on `kv`, put a key through `writer` (another client, as another fleetd
    would be), and return the first event delivered."""
    got: asyncio.Future[WatchEvent] = asyncio.get_running_loop().create_future()

    def on_event(event: WatchEvent) -> None:
        if not got.done():
            got.set_result(event)

    async def relist() -> int:
        return (await kv.get_prefix(prefix)).revision

    start = (await writer.get_prefix(prefix)).revision + 1
    follower = asyncio.create_task(follow(kv, prefix, start, on_event, relist, backoff=FAST,
                                          on_error=errors.append))
    try:
        await writer.put(prefix + "a", "1")
        async with asyncio.timeout(DELIVERY_TIMEOUT):
            return await asyncio.shield(got)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


async def watch_through(etcd: Any, monkeypatch: pytest.MonkeyPatch,
                        fault: Callable[[EtcdKV, Any], None]) -> tuple[WatchEvent, list[Exception], int]:
    """Follow a fresh prefix with `fault(kv, call)` applied to the first Watch call; the first
    event, the errors the follower reported, and how many Watch calls were made."""
    kv, writer = EtcdKV(etcd.endpoints), EtcdKV(etcd.endpoints)
    prefix = f"/test/{uuid.uuid4().hex[:8]}/"
    await kv.get(prefix)  # the first channel is up before the fault
    created = fault_on_first_watch(monkeypatch, lambda call: fault(kv, call))
    errors: list[Exception] = []
    try:
        event = await first_event(kv, writer, prefix, errors)
    finally:
        await kv.close()
        await writer.close()
    assert (event.kind, event.key.removeprefix(prefix), event.value) == ("put", "a", "1")
    return event, errors, len(created)


async def test_a_rotation_while_the_stream_opens_does_not_deafen_the_watch(
        etcd: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    _, errors, created = await watch_through(
        etcd, monkeypatch, lambda kv, call: loop.call_soon(kv._rotate))
    assert created >= 2, "the interrupted watch was opened again"
    assert any(isinstance(e, RegistryUnavailable) for e in errors), errors


async def test_a_watch_call_that_ended_before_its_first_write_is_retried(
        etcd: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call cancelled before its set-up began: grpc raises InvalidStateError on the write,
    which must come out as RegistryUnavailable (retried), not crash the follower."""
    _, errors, _ = await watch_through(etcd, monkeypatch, lambda kv, call: call.cancel())
    assert [type(e) for e in errors] == [RegistryUnavailable]
