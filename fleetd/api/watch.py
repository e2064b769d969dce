"""GET /fleet/v1/watch: units, states and machines as a server-sent event stream (no HTTP library).

Owns the stream's content (kinds: units, states, machines, and endpoints: the records of
`[X-Fleet] Publish=`, for proxies): one `snapshot` event (the requested kinds at one etcd
revision), then one event per change (`event: <kind>`, `data:` the wire object or its identity
with `"deleted": true`, `id:` the etcd revision). A `Last-Event-ID` resumes the watch after that
revision; when etcd has compacted it away, a fresh snapshot comes instead. Four more kinds come
only when asked for by name (the dashboard does): assignments (`{"name","machineID"}`: where the
leader placed a unit), pending (`{"name","reason"}`: why it could not), leader (`{"machineID"}`)
alarms (the GET /alarms objects) and machine-states (`{"machineID","state"}`: cordoned or
draining, as an operator set it). Changes flow through a
bounded queue: a client that falls `QUEUE_SIZE` events behind gets an `error` event and is
dropped, so it never holds the server back. A comment line keeps idle streams alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

from fleetd.api import alarms as alarms_api
from fleetd.api import endpoints as endpoints_api
from fleetd.api import schema
from fleetd.api.handlers import machine_to_wire, state_to_wire
from fleetd.errors import FleetError, InvalidInput
from fleetd.model.endpoints import decode_record
from fleetd.model.lifecycle import READY
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from fleetd.registry.kv import KeyValue, WatchEvent
from fleetd.registry.store import Registry
from fleetd.registry.watch import follow, list_then_follow

KINDS = ("units", "states", "machines", "endpoints")  # what an empty `kinds` means
EXTRA_KINDS = ("assignments", "pending", "leader", "alarms", "machine-states")  # only when named
QUEUE_SIZE = 1000
KEEPALIVE = 15.0
KEEPALIVE_FRAME = ": keep-alive\n\n"
POLL = 1.0


class _Overflow(Exception):
    """The client fell too far behind."""


def parse_kinds(text: str | None) -> tuple[str, ...]:
    """`units,states` -> ("units", "states"); empty or absent means every kind of KINDS."""
    asked = [k.strip() for k in (text or "").split(",") if k.strip()]
    for kind in asked:
        if kind not in KINDS + EXTRA_KINDS:
            raise InvalidInput(f'invalid kind "{kind}": expect units, states, machines, endpoints, '
                               "assignments, pending, leader, alarms or machine-states")
    return tuple(k for k in KINDS + EXTRA_KINDS if k in asked) or KINDS


def parse_last_id(text: str | None) -> int | None:
    if text is None or not text.strip():
        return None
    if not text.strip().isdigit():
        raise InvalidInput("Last-Event-ID must be an etcd revision (a non-negative integer)")
    return int(text.strip())


def frame(event: str, data: object, revision: int | None = None) -> str:
    """One SSE event; the JSON is on one line."""
    head = f"id: {revision}\n" if revision is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class _Encoder:
    """Turns registry records into wire JSON (unit files read once per hash)."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self.options: dict[str, list[dict[str, str]]] = {}

    def prefixes(self) -> dict[str, str]:
        keys = self.reg.keys
        return {"units": keys.units, "states": keys.states, "machines": keys.machines,
                "endpoints": keys.endpoints, "assignments": keys.assign, "pending": keys.pending,
                "leader": keys.leader, "alarms": keys.alarms, "machine-states": keys.machine_states}

    def kind_of(self, key: str) -> str | None:
        for kind, prefix in self.prefixes().items():
            if key == prefix if kind == "leader" else key.startswith(prefix):
                return kind
        return None

    async def item(self, kind: str, key: str, value: str | None) -> dict[str, Any]:
        keys = self.reg.keys
        if kind == "units":
            if value is None:
                return {"name": keys.last_segment(key), "deleted": True}
            return await self._unit(codec.decode_unit(value))
        if kind == "states":
            if value is None:
                unit, machine = keys.split_pair(key, keys.states)
                return {"name": unit, "machineID": machine, "deleted": True}
            return state_to_wire(self.reg.decode_state(key, value)).to_dict()
        if kind == "endpoints":
            return _endpoint(keys.split_pair(key, keys.endpoints), value)
        if kind in EXTRA_KINDS:
            return _extra(keys, kind, key, value)
        if value is None:
            return {"id": keys.last_segment(key), "deleted": True}
        return machine_to_wire(codec.decode_machine(value)).to_dict()

    async def _unit(self, unit: Unit) -> dict[str, Any]:
        if unit.hash not in self.options:
            try:
                parsed = UnitFile.parse(await self.reg.get_file(unit.hash) or "")
            except InvalidInput:
                parsed = UnitFile()
            self.options[unit.hash] = [{"section": o.section, "name": o.name, "value": o.value}
                                       for o in parsed.options]
        wire = schema.Unit(name=unit.name, desired_state=unit.desired).to_dict()
        return {**wire, "options": self.options[unit.hash]}

    async def snapshot(self, kinds: Sequence[str]) -> tuple[dict[str, Any], int]:
        prefixes = self.prefixes()
        listings = await self.reg.kv.get_prefixes([prefixes[k] for k in kinds])
        data = {k: [await self.item(k, kv.key, kv.value) for kv in _sorted(listing.items)]
                for k, listing in zip(kinds, listings, strict=True)}
        return data, max((listing.revision for listing in listings), default=0)


def _endpoint(unit_machine: tuple[str, str], value: str | None) -> dict[str, Any]:
    """An endpoints/<unit>/<machine> record as the API shows it, or its identity when deleted."""
    unit, machine = unit_machine
    if value is None:
        return {"unit": unit, "machineID": machine, "deleted": True}
    return endpoints_api.to_wire(decode_record(value)).to_dict()


def _extra(keys: Keys, kind: str, key: str, value: str | None) -> dict[str, Any]:
    """An opt-in kind's record as the stream shows it, or its identity with `deleted`."""
    gone: dict[str, Any] = {"deleted": True} if value is None else {}
    if kind == "assignments":
        machine, unit = keys.split_pair(key, keys.assign)
        return {"name": unit, "machineID": machine, **gone}
    if kind == "pending":
        return {"name": keys.last_segment(key), **({"reason": value} if value is not None else gone)}
    if kind == "leader":
        return {"machineID": value} if value is not None else gone
    if kind == "machine-states":
        found = codec.decode_machine_state(value) if value is not None else None
        return {"machineID": keys.last_segment(key),
                **({"state": found.state} if found is not None else {"state": READY, **gone})}
    name = keys.last_segment(key)
    return alarms_api.to_wire(name, value).to_dict() if value is not None else {"kind": name, **gone}


def _sorted(items: Sequence[KeyValue]) -> list[KeyValue]:
    return sorted(items, key=lambda kv: kv.key)


async def _feed(reg: Registry, kinds: Sequence[str], last_id: int | None,
                queue: asyncio.Queue[str]) -> None:
    """Push snapshot and change frames into `queue` until cancelled; _Overflow when it is full."""
    encoder = _Encoder(reg)

    def push(text: str) -> None:
        try:
            queue.put_nowait(text)
        except asyncio.QueueFull:
            raise _Overflow from None

    async def relist() -> int:
        data, revision = await encoder.snapshot(kinds)
        push(frame("snapshot", data, revision))
        return revision

    async def on_event(event: WatchEvent) -> None:
        kind = encoder.kind_of(event.key)
        if kind is not None and kind in kinds:
            value = event.value if event.kind == "put" else None
            push(frame(kind, await encoder.item(kind, event.key, value), event.mod_revision))

    if last_id is None:
        await list_then_follow(reg.kv, reg.keys.prefix, on_event, relist)
    await follow(reg.kv, reg.keys.prefix, last_id + 1, on_event, relist)


async def stream(reg: Registry, kinds: Sequence[str], last_id: int | None = None, *,
                 queue_size: int = QUEUE_SIZE, keepalive: float = KEEPALIVE,
                 alive: Callable[[], bool] = lambda: True) -> AsyncGenerator[str]:
    """The SSE frames for one client; ends (after an `error` event) if the client lags, and
    quietly once `alive()` turns false (checked every POLL seconds: client gone, server stopping)."""
    queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
    feeder = asyncio.create_task(_feed(reg, kinds, last_id, queue), name="api-watch")
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    try:
        while alive():
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, feeder}, timeout=min(POLL, keepalive),
                                         return_when=asyncio.FIRST_COMPLETED)
            if getter in done and not feeder.done():
                quiet_since = loop.time()
                yield getter.result()
                continue
            getter.cancel()
            if feeder.done():
                yield frame("error", {"message": _ended(feeder)})
                return
            if loop.time() - quiet_since >= keepalive:
                quiet_since = loop.time()
                yield KEEPALIVE_FRAME
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feeder


def _ended(feeder: asyncio.Task[None]) -> str:
    exc = feeder.exception()
    if isinstance(exc, _Overflow):
        return "client too slow: too many events behind; reconnect (Last-Event-ID resumes)"
    if isinstance(exc, FleetError):
        return str(exc)
    return "watch ended"
