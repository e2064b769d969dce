"""schemathesis against the published OpenAPI document: no 5xx, and every answer matches it.

The API (over a MemoryKV registry holding a few units) runs on a loopback TCP port in a thread
of its own, since schemathesis calls it synchronously. Each operation gets valid and invalid
requests generated from /fleet/v1/openapi.json; derandomized, a bounded number per operation.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fleetd.api import openapi
from fleetd.api.http import make_app
from fleetd.model.machine import Machine
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

SCHEMA = schemathesis.openapi.from_dict(openapi.document())
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
HELLO = [{"section": "Service", "name": "ExecStart", "value": "/bin/true"}]


async def _start() -> tuple[web.AppRunner, str]:
    registry = Registry(MemoryKV(), Keys("/fuzz/"))
    await registry.register_machine(Machine("a" * 32, "10.0.0.1", {"role": "web"}), 0)
    runner = web.AppRunner(make_app(registry, "fuzz"), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="api-under-fuzz", daemon=True)
    thread.start()
    runner, url = asyncio.run_coroutine_threadsafe(_start(), loop).result(10)
    for name in ("hello.service", "web@.service", "web@1.service"):
        requests.put(f"{url}/fleet/v1/units/{name}", json={"options": HELLO}, timeout=5)
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_every_route_is_documented() -> None:
    """A route added to fleetd/api/http.py must be described in fleetd/api/openapi.py too."""
    app = make_app(Registry(MemoryKV(), Keys("/x/")), "x")
    served = {f"{route.method} {resource.canonical}" for resource in app.router.resources()
              for route in resource if route.method != "*" and resource.canonical.startswith("/fleet/v1")}
    assert served == set(OPERATIONS)
    assert "PUT /fleet/v1/units/{name}" in served


def test_the_served_document_is_the_built_one(base_url: str) -> None:
    assert requests.get(f"{base_url}/fleet/v1/openapi.json", timeout=5).json() == openapi.document()


# requests that break the document: only where a body or query parameter can be made invalid
NEGATIVE = ["GET /fleet/v1/machines", "GET /fleet/v1/state", "GET /fleet/v1/units",
            "POST /fleet/v1/units", "PUT /fleet/v1/units/{name}", "PATCH /fleet/v1/machines"]
STREAMING = {"GET /fleet/v1/watch"}  # never ends: checked by test_the_watch_stream_conforms
CASES = [(label, GenerationMode.POSITIVE) for label in sorted(set(OPERATIONS) - STREAMING)] + [
    (label, GenerationMode.NEGATIVE) for label in NEGATIVE
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_api_conforms_to_its_openapi_document(base_url: str, label: str, mode: GenerationMode) -> None:
    session = requests.Session()

    @settings(max_examples=25, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=OPERATIONS[label].as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, session=session, timeout=10)
        case.validate_response(response, checks=CHECKS)

    run()


def test_the_watch_stream_conforms(base_url: str) -> None:
    """The SSE route answers text/event-stream beginning with a snapshot, and 400 on bad kinds."""
    with requests.get(f"{base_url}/fleet/v1/watch?kinds=units", stream=True, timeout=10) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        lines = resp.iter_lines(decode_unicode=True)
        head = [next(lines) for _ in range(3)]
    assert head[0].startswith("id: ") and head[1] == "event: snapshot"
    assert head[2].startswith('data: {"units":[')
    bad = requests.get(f"{base_url}/fleet/v1/watch?kinds=bogus", timeout=10)
    assert bad.status_code == 400 and "invalid kind" in bad.json()["error"]["message"]
