"""The requests Go fleetctl v1.0.0 sends, replayed as it sends them, against fleetd's API over
the unix socket and over mutual TLS (api_auth=cert, no token: Go fleetctl cannot send one).

The replay knows nothing of fleetd: every request line, header and body below is a fact read
from fleet's Go client code (sources in the comments), and every answer is checked the way
that client decodes it, field by field, `nextPageToken` pages included. The server is the real
one (`serve`) over MemoryKV; the tiny fake engine+agent of test_fleetctl places units on one
machine and reports them, so the verbs that wait for a state see it reached.

Facts, and where they are (github.com/coreos/fleet unless said otherwise):
- base URL: client/http.go, NewHTTPClient, appends "fleet/v1/" to the endpoint's path;
  fleetctl/fleetctl.go, getHTTPClient: for unix:// (and file://) endpoints the request URL
  becomes http://domain-sock/... (scheme http, host "domain-sock", the socket is dialled
  directly); for https:// the endpoint as given. Only the first of a comma list is used.
- TLS: pkg/tls.go, ReadTLSConfigFiles/buildTLSClientConfig: with --cert-file/--key-file the
  client presents that certificate and trusts --ca-file (RootCAs); with neither it skips
  verification of the server. No Authorization header exists anywhere in the client.
- every request: schema/v1-gen.go (the API v1 client fleet generated with google-api-go-client),
  each *Call.doRequest: header `User-Agent: google-api-go-client/0.5` (googleapi.UserAgent,
  "google-api-go-client/" + Version "0.5", googleapi.go of google-api-go-client) and the query
  parameter `alt=json`; optional parameters are added to the same url.Values, whose Encode()
  sorts them by key (Go's net/url) and escapes like QueryEscape.
- paths: schema/v1-gen.go: GET machines, GET units, GET state, GET/PUT/DELETE units/{unitName};
  {unitName} is expanded by googleapi.Expand (uritemplates: every byte but ALPHA DIGIT -._~ is
  percent-encoded, so web@1.service travels as web%401.service).
- PUT body: schema/v1-gen.go, UnitsSetCall.doRequest: googleapi.WithoutDataWrapper.JSONReader,
  i.e. Go's json.Encoder: compact JSON, keys in struct field order (currentState, desiredState,
  machineID, name, options; an option is name, section, value), empty fields omitted
  (`omitempty`), <, > and & written as \\u003c \\u003e \\u0026, a trailing newline; header
  `Content-Type: application/json`. Go's net/http adds `Content-Length` for the in-memory body
  and `Accept-Encoding: gzip` to every request it sends.
- pages: client/http.go, Machines()/Units()/UnitStates(): call List(), and while the page's
  nextPageToken is not empty call List().NextPageToken(token) again; never a page size.
- verbs: fleetctl/fleetctl.go: lazyCreateUnits (GET units/NAME; on 404 createUnit = PUT
  {"name","options"} with no desiredState, then wait until currentState is "inactive"),
  setTargetStateOfUnits (GET units/NAME, then PUT {"desiredState","name"} unless already so),
  checkUnitState/assertUnitState (poll GET units/NAME until currentState is the target,
  every 500 ms), cachedMachineState/machineState (GET machines, for "on MACHINE/IP" and for
  status' ssh target), findUnits (GET units, all pages); fleetctl/stop.go (findUnits, PUT
  desiredState loaded, wait), fleetctl/destroy.go (findUnits, DELETE units/NAME, poll GET
  units/NAME until 404); client/http.go, Unit(): a 404 means "no such unit", any other
  non-2xx is an error decoded by googleapi.CheckResponse as {"error":{"code","message"}}.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import test_fleetctl as base
from test_api_mtls import Pki, config, make_pki

from bench.etcd_server import free_ports
from fleetd.api import access
from fleetd.api.http import make_app, serve
from fleetd.model.machine import Machine
from fleetd.model.states import SystemdState, TargetState, UnitState
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

USER_AGENT = "google-api-go-client/0.5"
PREFIX = "/fleet/v1/"
STATES = {"inactive", "loaded", "launched"}
M1 = base.M1  # where the fake engine places every unit, at 10.0.0.1
HELLO = ("[Unit]\nDescription=Hello <Go>\n\n[Service]\n"
         "ExecStart=/bin/sh -c 'echo hi && exec sleep 1000'\n")
HELLO_OPTIONS = [("Unit", "Description", "Hello <Go>"),
                 ("Service", "ExecStart", "/bin/sh -c 'echo hi && exec sleep 1000'")]
POLL = 0.02  # Go fleetctl polls every 0.5 s; the fake agent answers within 0.02 s
ATTEMPTS = 250


def go_json(value: Any) -> bytes:
    """Go's json.Encoder.Encode: compact, UTF-8, HTML-safe escapes, a trailing newline."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            + "\n").encode()


def options_json(options: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    """schema.UnitOption in Go's field order: name, section, value."""
    return [{"name": name, "section": section, "value": value} for section, name, value in options]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: Any  # the decoded JSON; None without a body


@dataclass
class GoFleetctl:
    """Go fleetctl's HTTP side on one kept-alive connection, as its http.Transport keeps it.

    `sent` records (method, request target, status) of every request, in order.
    """

    connect: Callable[[], http.client.HTTPConnection]
    host: str  # the Host header: "domain-sock" on the unix socket
    sent: list[tuple[str, str, int]] = field(default_factory=list)
    conn: http.client.HTTPConnection | None = None

    async def call(self, method: str, resource: str, params: tuple[tuple[str, str], ...] = (),
                   body: dict | None = None) -> Answer:
        target = PREFIX + resource + "?" + urlencode(sorted((("alt", "json"), *params)))
        payload = go_json(body) if body is not None else None
        answer = await asyncio.to_thread(self._exchange, method, target, payload)
        self.sent.append((method, target, answer.status))
        return answer

    def _exchange(self, method: str, target: str, payload: bytes | None) -> Answer:
        if self.conn is None:
            self.conn = self.connect()
        conn = self.conn
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", self.host)
        conn.putheader("User-Agent", USER_AGENT)
        if payload is not None:
            conn.putheader("Content-Length", str(len(payload)))
            conn.putheader("Content-Type", "application/json")
        conn.putheader("Accept-Encoding", "gzip")
        conn.endheaders(payload)
        resp = conn.getresponse()
        raw = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return Answer(resp.status, headers, json.loads(raw) if raw else None)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    # client/http.go ---------------------------------------------------------------------

    async def pages(self, resource: str, params: tuple[tuple[str, str], ...] = ()) -> list[Answer]:
        """Machines(), Units(), UnitStates(): List(), then List().NextPageToken(t) until none."""
        found = [await self.call("GET", resource, params)]
        while found[-1].status == 200 and found[-1].body.get("nextPageToken"):
            token = found[-1].body["nextPageToken"]
            found.append(await self.call("GET", resource, (*params, ("nextPageToken", token))))
        return found

    async def listing(self, resource: str, key: str) -> list[dict]:
        pages = await self.pages(resource)
        assert all(page.status == 200 for page in pages), pages
        return [item for page in pages for item in page.body.get(key, [])]

    async def unit(self, name: str) -> dict | None:
        """Unit(name): the unit, or None on 404."""
        answer = await self.call("GET", "units/" + quote(name, safe=""))
        if answer.status == 404:
            assert_error(answer, 404, "unit does not exist")
            return None
        assert answer.status == 200, answer
        return check_unit(answer.body)

    async def set_unit(self, name: str, body: dict) -> Answer:
        return await self.call("PUT", "units/" + quote(name, safe=""), body=body)

    async def wait_for(self, name: str, state: str) -> dict:
        """checkUnitState: GET units/NAME until its currentState is `state`."""
        for _ in range(ATTEMPTS):
            unit = await self.unit(name)
            if unit is not None and unit.get("currentState") == state:
                return unit
            await asyncio.sleep(POLL)
        raise AssertionError(f"{name} never reported {state}: {self.sent[-3:]}")

    # fleetctl/*.go ----------------------------------------------------------------------

    async def lazy_create(self, name: str, options: list[tuple[str, str, str]]) -> None:
        if await self.unit(name) is None:
            created = await self.set_unit(name, {"name": name, "options": options_json(options)})
            assert (created.status, created.body) == (201, None), created
            await self.wait_for(name, "inactive")

    async def set_target(self, name: str, state: str) -> dict:
        """setTargetStateOfUnits + checkUnitState + cachedMachineState."""
        unit = await self.unit(name)
        assert unit is not None
        if unit["desiredState"] != state:
            changed = await self.set_unit(name, {"desiredState": state, "name": name})
            assert (changed.status, changed.body) == (204, None), changed
        reached = await self.wait_for(name, state)
        machines = {m["id"]: m for m in await self.listing("machines", "machines")}
        assert machines[reached["machineID"]]["primaryIP"] == "10.0.0.1"
        return reached

    async def find_units(self, *names: str) -> list[dict]:
        units = [check_unit(u) for u in await self.listing("units", "units")]
        return [u for u in units if u["name"] in names]

    async def destroy(self, name: str) -> None:
        [unit] = await self.find_units(name)
        gone = await self.call("DELETE", "units/" + quote(unit["name"], safe=""))
        assert (gone.status, gone.body) == (204, None), gone
        assert await self.unit(name) is None


# what Go's decoder reads: schema/v1-gen.go's structs (json names, Go types). fleetd's own
# additions are listed apart: Go's encoding/json skips keys it does not know.
GO_MACHINE = {"id": str, "primaryIP": str, "metadata": dict}
GO_UNIT = {"currentState": str, "desiredState": str, "machineID": str, "name": str,
           "options": list}
GO_OPTION = {"name": str, "section": str, "value": str}
GO_STATE = {"hash": str, "machineID": str, "name": str, "systemdActiveState": str,
            "systemdLoadState": str, "systemdSubState": str}
FLEETD_EXTRAS = {"machine": {"capacity", "state"}, "unit": {"pendingReason"}, "state": {"reason"}}


def check_fields(obj: Any, go: dict[str, type], extras: set[str] = frozenset()) -> dict:
    """`obj` is an object whose every key Go reads has Go's type; nothing else but `extras`."""
    assert isinstance(obj, dict), obj
    assert set(obj) <= set(go) | extras, f"unexpected keys {set(obj) - set(go) - extras} in {obj}"
    for key, kind in go.items():
        assert key not in obj or isinstance(obj[key], kind), (key, obj)
    return obj


def check_machine(obj: Any) -> dict:
    machine = check_fields(obj, GO_MACHINE, FLEETD_EXTRAS["machine"])
    assert machine["id"] and all(isinstance(v, str) for v in machine.get("metadata", {}).values())
    return machine


def check_unit(obj: Any) -> dict:
    unit = check_fields(obj, GO_UNIT, FLEETD_EXTRAS["unit"])
    assert unit["name"] and unit["desiredState"] in STATES and unit["currentState"] in STATES
    for option in unit["options"]:
        check_fields(option, GO_OPTION)
    return unit


def check_state(obj: Any) -> dict:
    state = check_fields(obj, GO_STATE, FLEETD_EXTRAS["state"])
    assert set(GO_STATE) <= set(state), state
    return state


def check_page(answer: Answer, key: str, item: Callable[[Any], dict]) -> list[dict]:
    """A list page: 200, JSON, `{key: [...], "nextPageToken"?: "..."}` and nothing else."""
    assert answer.status == 200, answer
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["server"] == "fleetd/test"
    check_fields(answer.body, {key: list, "nextPageToken": str})
    return [item(x) for x in answer.body[key]]


def assert_error(answer: Answer, code: int, message: str) -> None:
    """googleapi.CheckResponse's errorReply: {"error": {"code": code, "message": message}}."""
    assert answer.status == code
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.body == {"error": {"code": code, "message": message}}


@pytest.mark.parametrize(("value", "wire"), [
    ({"desiredState": "launched", "name": "a.service"},
     b'{"desiredState":"launched","name":"a.service"}\n'),
    ({"name": "a.service", "options": options_json([("Service", "ExecStart", "a && b <c>")])},
     b'{"name":"a.service","options":[{"name":"ExecStart","section":"Service",'
     b'"value":"a \\u0026\\u0026 b \\u003cc\\u003e"}]}\n'),
    ({"name": "caf\u00e9.service"}, '{"name":"caf\u00e9.service"}\n'.encode()),
])
def test_bodies_are_encoded_as_gos_json_encoder_writes_them(value: dict, wire: bytes) -> None:
    assert go_json(value) == wire


# the two transports ------------------------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("domain-sock", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def go_tls(pki: Pki, client: str = "good") -> ssl.SSLContext:
    """pkg/tls.go with --ca-file, --cert-file and --key-file: the CA as RootCAs, the client's
    certificate; Go's crypto/tls of 2017 (Go 1.7/1.8) speaks at most TLS 1.2."""
    ctx = ssl.create_default_context(cafile=pki.ca_file)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.client(client))
    return ctx


@dataclass
class Served:
    registry: Registry
    go: GoFleetctl


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(params=["unix", "mtls"])
async def served(request: pytest.FixtureRequest, pki: Pki, tmp_path: Path) -> AsyncIterator[Served]:
    """fleetd's API with api_auth=cert (fleet's page size, 100), and Go fleetctl on the unix
    socket or on TCP with its client certificate."""
    cfg = config(pki, "cert", free_ports(1)[0])
    policy = access.tcp_access(cfg)
    assert policy is not None and policy.token is None
    registry, sock = Registry(MemoryKV(), Keys("/go/")), str(tmp_path / "fleet.sock")
    runner = await serve(make_app(registry, "test", tcp_auth=policy.auth), sock,
                         tcp=cfg.api_listen, tcp_ssl=policy.ssl)
    host, port = cfg.api_listen.rsplit(":", 1)
    if request.param == "unix":
        go = GoFleetctl(lambda: _UnixConnection(sock), "domain-sock")
    else:
        go = GoFleetctl(lambda: http.client.HTTPSConnection(host, int(port), timeout=10,
                                                            context=go_tls(pki)), cfg.api_listen)
    try:
        yield Served(registry, go)
    finally:
        go.close()
        await runner.cleanup()


@pytest.fixture
async def placing(served: Served) -> AsyncIterator[Served]:
    """The fake engine+agent at work: units get placed on M1 and reported."""
    task = asyncio.create_task(base.fake_cluster(served.registry))
    yield served
    task.cancel()


# list-machines, list-unit-files, list-units: the pages ------------------------------------


async def test_list_machines_follows_next_page_token(served: Served) -> None:
    ids = [f"{i:04x}" + "a" * 28 for i in range(105)]
    for n, mid in enumerate(ids):
        await served.registry.register_machine(
            Machine(mid, f"10.1.0.{n}", {"role": "web"} if n % 2 else {}), 0)
    first, second = await served.go.pages("machines")
    assert len(check_page(first, "machines", check_machine)) == 100  # fleet's token_limit
    assert isinstance(first.body["nextPageToken"], str) and first.body["nextPageToken"]
    assert len(check_page(second, "machines", check_machine)) == 5
    assert "nextPageToken" not in second.body
    machines = first.body["machines"] + second.body["machines"]
    assert [m["id"] for m in machines] == ids
    go_read = {k: v for k, v in machines[1].items() if k in GO_MACHINE}
    assert go_read == {"id": ids[1], "primaryIP": "10.1.0.1", "metadata": {"role": "web"}}
    assert [target for _, target, _ in served.go.sent] == [
        "/fleet/v1/machines?alt=json",
        "/fleet/v1/machines?" + urlencode({"alt": "json",
                                           "nextPageToken": first.body["nextPageToken"]})]


async def test_list_unit_files_pages_through_units_go_submitted(served: Served) -> None:
    names = [f"u{i:03d}.service" for i in range(103)]
    for name in names:
        await served.go.lazy_create(name, HELLO_OPTIONS)
    first, second = await served.go.pages("units")
    units = check_page(first, "units", check_unit) + check_page(second, "units", check_unit)
    assert (len(first.body["units"]), "nextPageToken" in second.body) == (100, False)
    assert [u["name"] for u in units] == names
    assert {(u["desiredState"], u["currentState"]) for u in units} == {("inactive", "inactive")}
    assert units[0]["options"] == options_json(HELLO_OPTIONS)  # the & and <> came through


async def test_list_units_pages_through_unit_states(served: Served) -> None:
    for i in range(101):
        await served.registry.put_state(UnitState(
            f"s{i:03d}.service", M1, "f" * 40, TargetState.LAUNCHED,
            SystemdState("loaded", "active", "running")), 0)
    first, second = await served.go.pages("state")
    states = check_page(first, "states", check_state) + check_page(second, "states", check_state)
    assert (len(first.body["states"]), len(states), "nextPageToken" in second.body) == (100, 101, False)
    assert states[100] == {"name": "s100.service", "hash": "f" * 40, "machineID": M1,
                           "systemdLoadState": "loaded", "systemdActiveState": "active",
                           "systemdSubState": "running"}
    filtered = check_page(await served.go.call(
        "GET", "state", (("machineID", M1), ("unitName", "s007.service"))), "states", check_state)
    assert [s["name"] for s in filtered] == ["s007.service"]


# submit, load, start, status, stop, destroy: Go fleetctl's order of requests --------------


async def test_submit_load_start_stop_destroy_as_go_fleetctl_sends_them(placing: Served) -> None:
    go, name, target = placing.go, "hello.service", "units/hello.service"
    await go.lazy_create(name, HELLO_OPTIONS)  # submit
    unit = await go.unit(name)
    assert unit == {"name": name, "options": options_json(HELLO_OPTIONS),
                    "desiredState": "inactive", "currentState": "inactive"}
    assert (await go.set_target(name, "loaded"))["machineID"] == M1  # load
    launched = await go.set_target(name, "launched")  # start
    assert (launched["desiredState"], launched["currentState"], launched["machineID"]) == (
        "launched", "launched", M1)
    status = await go.unit(name)  # status: the unit, then its machine's IP for ssh
    assert status is not None and status["currentState"] == "launched"
    [stopping] = await go.find_units(name)  # stop
    assert stopping["currentState"] == "launched"
    assert (await go.set_unit(name, {"desiredState": "loaded", "name": name})).status == 204
    await go.wait_for(name, "loaded")
    await go.destroy(name)  # destroy
    assert await go.find_units(name) == []
    calls = [(method, target.split("?")[0].removeprefix(PREFIX), status)
             for method, target, status in go.sent if method != "GET" or status != 200]
    assert calls == [("GET", target, 404), ("PUT", target, 201), ("PUT", target, 204),
                     ("PUT", target, 204), ("PUT", target, 204), ("DELETE", target, 204),
                     ("GET", target, 404)]
    assert all(target.endswith("?alt=json") or "?alt=json&" in target for _, target, _ in go.sent)


async def test_a_template_instance_travels_percent_encoded(placing: Served) -> None:
    """start web@1.service with only web@.service in the registry: Go fetches the template
    and submits the instance with its options (fleetctl.go, getUnitFileFromTemplate)."""
    go = placing.go
    await go.lazy_create("web@.service", HELLO_OPTIONS)
    template = await go.unit("web@.service")
    assert template is not None
    options = [(o["section"], o["name"], o["value"]) for o in template["options"]]
    await go.lazy_create("web@1.service", options)
    started = await go.set_target("web@1.service", "launched")
    assert (started["name"], started["currentState"]) == ("web@1.service", "launched")
    targets = {target.split("?")[0] for _, target, _ in go.sent}
    assert {"/fleet/v1/units/web%40.service", "/fleet/v1/units/web%401.service"} <= targets


async def test_refusals_decode_as_googleapi_errors(served: Served) -> None:
    go = served.go
    assert_error(await go.call("GET", "units/nope.service"), 404, "unit does not exist")
    assert_error(await go.set_unit("nope.service", {"desiredState": "launched",
                                                    "name": "nope.service"}),
                 409, "unit does not exist and options field empty")
    assert_error(await go.set_unit("a.service", {"name": "b.service",
                                                 "options": options_json(HELLO_OPTIONS)}),
                 400, 'name in URL "a.service" differs from unit name in request body "b.service"')
    bad_page = await go.call("GET", "units", (("nextPageToken", "garbage"),))
    assert bad_page.status == 400 and set(bad_page.body["error"]) == {"code", "message"}
