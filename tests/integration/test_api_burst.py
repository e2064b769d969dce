"""1,000 clients at once on the API's unix socket: every one gets an HTTP answer.

The real API app (fleetd.api.http.serve) over a real etcd. All PUTs connect before fleetd
accepts any of them (they start in one event-loop turn), so the kernel's listen queue must
hold them all: with a short backlog the extra connects are refused and the client sees a
reset or "not connected" instead of an answer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from fleetd.api.http import make_app, serve
from fleetd.registry.etcd import EtcdKV
from fleetd.registry.keys import Keys, normalize_prefix
from fleetd.registry.store import Registry

CLIENTS = 1000
BODY = {"options": [{"section": "Service", "name": "ExecStart", "value": "/bin/sleep 1000"}]}


@pytest.fixture
async def api_socket(etcd, tmp_path: Path) -> AsyncIterator[tuple[str, Registry]]:
    kv = EtcdKV(etcd.endpoints, request_timeout=30.0)
    registry = Registry(kv, Keys(normalize_prefix(f"/burst-{uuid.uuid4().hex[:8]}")))
    sock = str(tmp_path / "fleet.sock")
    runner = await serve(make_app(registry, "test"), sock)
    yield sock, registry
    await runner.cleanup()
    await kv.close()


async def _put(session: aiohttp.ClientSession, i: int) -> int | str:
    """The HTTP status of one PUT, or what went wrong instead of an answer."""
    try:
        async with session.put(f"http://fleetd/fleet/v1/units/burst{i:04d}.service",
                               json=BODY) as resp:
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"


async def test_a_thousand_concurrent_puts_all_get_an_answer(api_socket) -> None:
    sock, registry = api_socket
    # one connection per request, no client-side limit: 1,000 connects at once
    connector = aiohttp.UnixConnector(path=sock, limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        answers = await asyncio.gather(*(_put(session, i) for i in range(CLIENTS)))
    failures = [a for a in answers if not isinstance(a, int)]
    assert failures == [], f"{len(failures)} of {CLIENTS} got no answer, e.g. {failures[:3]}"
    assert answers == [201] * CLIENTS
    assert len(await registry.list_units()) == CLIENTS
