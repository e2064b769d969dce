"""Wrong tokens on the TCP listener are counted (fleet_api_auth_failures_total) and, after too
many from one address, refused with 429 + Retry-After, the token unchecked, until the window
has passed. The real server (`serve`) on a free loopback port, a fake clock for the lockout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bench.etcd_server import free_ports
from fleetd.api.http import make_app, serve
from fleetd.api.lockout import Lockout, Policy
from fleetd.metrics import Metrics
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

TOKEN = "t0ken-0123456789abcdef"
RIGHT, WRONG = {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": "Bearer guess"}


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Listener:
    url: str
    clock: Clock
    metrics: Metrics

    async def get(self, path: str = "/fleet/v1/machines",
                  headers: dict[str, str] | None = None) -> tuple[int, dict, str]:
        async with aiohttp.ClientSession() as session, \
                session.get(self.url + path, headers=headers, allow_redirects=False) as resp:
            return resp.status, dict(resp.headers), await resp.text()

    def failures(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value("fleet_api_auth_failures_total",
                                                       {"reason": reason})
        return value or 0.0


@pytest.fixture
async def tcp(tmp_path: Path) -> AsyncIterator[Listener]:
    clock, metrics, port = Clock(), Metrics(), free_ports(1)[0]
    app = make_app(Registry(MemoryKV(), Keys("/t/")), "test", tcp_token=TOKEN,
                   metrics=metrics.render, recorder=metrics,
                   lockout=Lockout(Policy(max_failures=3, window=60.0), clock))
    runner = await serve(app, str(tmp_path / "fleet.sock"), tcp=f"127.0.0.1:{port}")
    yield Listener(f"http://127.0.0.1:{port}", clock, metrics)
    await runner.cleanup()


async def test_wrong_tokens_lock_the_address_out_then_it_may_try_again(tcp: Listener) -> None:
    for _ in range(3):
        assert (await tcp.get(headers=WRONG))[0] == 401
        tcp.clock.now += 1
    status, headers, body = await tcp.get(headers=RIGHT)  # even the right token: not checked
    assert (status, headers["Retry-After"]) == (429, "57")  # the first failure, 3 s ago
    assert '"code":429' in body and "too many failed token attempts" in body
    tcp.clock.now += 57
    assert (await tcp.get(headers=RIGHT))[0] == 200
    assert (tcp.failures("invalid"), tcp.failures("locked_out")) == (3, 1)


async def test_missing_tokens_are_counted_but_never_lock_out(tcp: Listener) -> None:
    for _ in range(5):
        assert (await tcp.get())[0] == 401
    assert (await tcp.get(headers=RIGHT))[0] == 200
    assert (tcp.failures("missing"), tcp.failures("invalid")) == (5, 0)


async def test_wrong_dashboard_logins_count_too(tcp: Listener) -> None:
    for _ in range(3):
        assert (await tcp.get("/?token=guess"))[0] == 401
    assert (await tcp.get(f"/?token={TOKEN}"))[0] == 429
    assert (await tcp.get("/"))[0] == 429


async def test_the_failure_counter_is_exported(tcp: Listener) -> None:
    await tcp.get(headers=WRONG)
    status, _, text = await tcp.get("/metrics", headers=RIGHT)
    assert status == 200
    assert 'fleet_api_auth_failures_total{reason="invalid"} 1.0' in text
    assert 'fleet_api_auth_failures_total{reason="locked_out"} 0.0' in text
