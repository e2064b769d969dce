"""The web dashboard over a MemoryKV registry: the cookie login and its limits, the page and its
assets, GET /leader, GET /summary's load arithmetic, and the watch stream's opt-in kinds."""

from __future__ import annotations

import asyncio
import json
import re
from importlib import resources

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fleetd.api import dashboard, summary, watch
from fleetd.api.http import make_app
from fleetd.model.machine import Machine
from fleetd.model.resources import Resources
from fleetd.model.states import SystemdState, TargetState, UnitState
from fleetd.model.unit import Assignment, Unit
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

TOKEN = "s3cret-token"
M1, M2 = "a" * 32, "b" * 32
HELLO = [{"section": "Service", "name": "ExecStart", "value": "/bin/sleep 1000"}]
BIG = [*HELLO, {"section": "Service", "name": "CPUQuota", "value": "150%"},
       {"section": "Service", "name": "MemoryMax", "value": "512M"}]


@pytest.fixture
def registry() -> Registry:
    return Registry(MemoryKV(), Keys("/test/"))


@pytest.fixture
async def client(registry: Registry):
    """The API with a TCP token, as fleetd's TCP listener runs it (TestServer listens on TCP)."""
    async with TestClient(TestServer(make_app(registry, "9.9.9", tcp_token=TOKEN))) as c:
        yield c


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


# pure parts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "cookie", "admitted"), [
    ("GET", dashboard.session_value(TOKEN), True),
    ("HEAD", dashboard.session_value(TOKEN), True),
    ("POST", dashboard.session_value(TOKEN), False),
    ("PUT", dashboard.session_value(TOKEN), False),
    ("DELETE", dashboard.session_value(TOKEN), False),
    ("PATCH", dashboard.session_value(TOKEN), False),
    ("GET", TOKEN, False),  # the cookie holds an HMAC, never the token itself
    ("GET", dashboard.session_value("other"), False),
    ("GET", "", False),
    ("GET", None, False),
])
def test_cookie_admits_reads_with_the_right_session_only(method, cookie, admitted) -> None:
    assert dashboard.cookie_ok(method, cookie, TOKEN) is admitted


@pytest.mark.parametrize(("given", "secure", "status"), [
    (TOKEN, True, 303), (TOKEN, False, 303), ("wrong", True, 401), ("", True, 401), (None, True, 401),
])
def test_login_table(given, secure, status) -> None:
    answer = dashboard.login(given, TOKEN, secure)
    headers = dict(answer.headers)
    assert answer.status == status
    if status == 303:
        assert headers["Location"] == "/"
        cookie = headers["Set-Cookie"]
        assert cookie.startswith(f"{dashboard.COOKIE}={dashboard.session_value(TOKEN)};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert ("Secure" in cookie) is secure
        assert TOKEN not in cookie
    else:
        assert answer.content_type == "text/html" and "Set-Cookie" not in headers
        assert b"/?token=" in answer.body
        assert (b"not this cluster" in answer.body) is bool(given)


@pytest.mark.parametrize("name", ["../dashboard.py", "index.html", "", "dashboard.css/..", "x.js"])
def test_only_the_listed_assets_are_served(name: str) -> None:
    assert dashboard.asset(name) is None


def test_static_files_load_nothing_from_elsewhere() -> None:
    static = resources.files("fleetd.api").joinpath("static")
    for name in ("index.html", *dashboard.ASSETS):
        text = static.joinpath(name).read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), name
        assert "url(http" not in text and "@import" not in text, name
    assert ".innerHTML" not in static.joinpath("dashboard.js").read_text()


def _records(**kw) -> summary.Records:
    base: dict = dict(units=[], files={}, assignments=[], states=[], pending={}, machines=[])
    return summary.Records(**{**base, **kw})


def _state(unit: str, machine: str, active: str = "active") -> UnitState:
    return UnitState(unit, machine, "h", TargetState.LAUNCHED, SystemdState("loaded", active, "running"))


def test_summary_adds_each_machines_load_and_marks_pending_units() -> None:
    big = "[Service]\nExecStart=/bin/true\nCPUQuota=150%\nMemoryMax=512M\n"
    glob = "[Service]\nExecStart=/bin/true\nMemoryMax=1G\n[X-Fleet]\nGlobal=true\n"
    records = _records(
        units=[Unit("a.service", "hb", TargetState.LAUNCHED), Unit("b.service", "hb", TargetState.LAUNCHED),
               Unit("c.service", "hb", TargetState.LAUNCHED), Unit("d.service", "hb", TargetState.INACTIVE),
               Unit("g.service", "hg", TargetState.LAUNCHED, is_global=True)],
        files={"hb": big, "hg": glob},
        assignments=[Assignment("a.service", M1, "hb", TargetState.LAUNCHED),
                     Assignment("b.service", M1, "hb", TargetState.LAUNCHED)],
        states=[_state("a.service", M1), _state("g.service", M2, "failed")],
        pending={"c.service": "no machine has 1.5 CPU free", "d.service": "stale"},
        machines=[Machine(M2, "10.0.0.2"),
                  Machine(M1, "10.0.0.1", {"disk": "ssd"}, capacity=Resources(4000, 2**32))],
        leader=M2, alarms={"mass-failure": "3 machines left"})
    got = summary.build(records).to_dict()
    assert got["leader"] == M2
    loads = {m["id"]: m["load"] for m in got["machines"]}
    assert loads == {M1: {"units": 2, "cpu": 3000, "memory": 2 * 512 * 2**20},
                     M2: {"units": 1, "cpu": 0, "memory": 2**30}}
    assert [m["id"] for m in got["machines"]] == [M1, M2]
    assert got["machines"][0]["capacity"] == {"cpu": 4000, "memory": 2**32}
    units = {u["name"]: u for u in got["units"]}
    assert units["a.service"]["machineID"] == M1 and units["a.service"]["currentState"] == "launched"
    assert units["a.service"]["hosts"] == [{"machineID": M1, "activeState": "active", "subState": "running"}]
    assert units["b.service"]["currentState"] == "inactive" and "pendingReason" not in units["b.service"]
    assert units["c.service"]["pendingReason"] == "no machine has 1.5 CPU free"
    assert "pendingReason" not in units["d.service"]  # inactive units do not wait
    assert units["g.service"]["global"] is True and "machineID" not in units["g.service"]
    assert units["a.service"]["demand"] == {"cpu": 1500, "memory": 512 * 2**20}
    assert got["alarms"] == [{"kind": "mass-failure", "message": "3 machines left", "machines": [],
                              "since": ""}]


def test_a_unit_file_that_no_longer_parses_asks_for_nothing() -> None:
    assert summary.demand_of(Unit("x.service", "h", TargetState.LAUNCHED), "not [ a unit") == Resources()


# over HTTP (TCP, with a token) --------------------------------------------------------------------


async def test_browser_login_sets_a_cookie_and_takes_the_token_out_of_the_url(client: TestClient) -> None:
    resp = await client.get("/")
    assert resp.status == 401 and resp.content_type == "text/html"
    assert "/?token=" in await resp.text()
    resp = await client.get("/", params={"token": "nope"})
    assert resp.status == 401 and "not this cluster" in await resp.text()
    resp = await client.get("/", params={"token": TOKEN}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    assert "HttpOnly" in resp.headers["Set-Cookie"] and TOKEN not in resp.headers["Set-Cookie"]
    resp = await client.get("/")  # the client's cookie jar now holds the session
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "/dashboard/dashboard.js" in page
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    for name, kind in dashboard.ASSETS.items():
        asset = await client.get(f"/dashboard/{name}")
        assert asset.status == 200 and asset.content_type == kind
    assert (await client.get("/dashboard/nothing.js")).status == 404
    assert (await client.get("/fleet/v1/summary")).status == 200
    assert (await client.get("/fleet/v1/units")).status == 200


async def test_the_cookie_cannot_write(client: TestClient) -> None:
    client.session.cookie_jar.update_cookies({dashboard.COOKIE: dashboard.session_value(TOKEN)})
    assert (await client.get("/fleet/v1/units")).status == 200
    resp = await client.put("/fleet/v1/units/a.service", json={"options": HELLO, "desiredState": "launched"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == 401
    assert (await client.delete("/fleet/v1/alarms/mass-failure")).status == 401
    assert (await client.post("/fleet/v1/units", json={"units": []})).status == 401


async def test_api_refusals_stay_json_and_root_stays_get_only(client: TestClient) -> None:
    resp = await client.get("/fleet/v1/summary")
    assert resp.status == 401 and resp.content_type == "application/json"
    assert (await client.get("/fleet/v1/units", params={"token": TOKEN})).status == 401
    resp = await client.post("/", headers=bearer())
    assert resp.status == 405 and resp.content_type == "application/json"
    assert (await client.get("/", headers=bearer())).status == 200


async def test_leader_endpoint(client: TestClient, registry: Registry) -> None:
    resp = await client.get("/fleet/v1/leader", headers=bearer())
    assert resp.status == 200 and await resp.json() == {}
    assert await registry.campaign(M1, 0) is not None
    assert await (await client.get("/fleet/v1/leader", headers=bearer())).json() == {"machineID": M1}


async def test_summary_over_http(client: TestClient, registry: Registry) -> None:
    machine = Machine(M1, "10.0.0.1", {"role": "web"}, capacity=Resources(2000, 2**30))
    await registry.register_machine(machine, 0)
    resp = await client.put("/fleet/v1/units/big.service", json={"options": BIG, "desiredState": "launched"},
                            headers=bearer())
    assert resp.status == 201
    await registry.commit(await registry.campaign(M1, 0) or 0, [
        registry.place_op(Assignment("big.service", M1, (await registry.get_unit("big.service")).hash,
                                     TargetState.LAUNCHED))])
    got = await (await client.get("/fleet/v1/summary", headers=bearer())).json()
    assert got["leader"] == M1
    assert got["machines"][0]["load"] == {"units": 1, "cpu": 1500, "memory": 512 * 2**20}
    assert got["units"][0]["machineID"] == M1 and got["units"][0]["desiredState"] == "launched"


# the watch stream's opt-in kinds ------------------------------------------------------------------


def test_default_kinds_are_unchanged_and_extra_kinds_come_when_named() -> None:
    assert watch.parse_kinds(None) == ("units", "states", "machines", "endpoints")
    assert watch.parse_kinds("leader,units,pending") == ("units", "pending", "leader")
    with pytest.raises(Exception, match="invalid kind"):
        watch.parse_kinds("leaders")


async def test_watch_streams_assignments_pending_leader_and_alarms(registry: Registry) -> None:
    kinds = ("assignments", "pending", "leader", "alarms")
    frames = watch.stream(registry, kinds)
    first = json.loads((await asyncio.wait_for(anext(frames), 5)).split("data: ", 1)[1])
    assert first == {"assignments": [], "pending": [], "leader": [], "alarms": []}
    token = await registry.campaign(M1, 0)
    assert token is not None
    await registry.commit(token, [registry.place_op(Assignment("a.service", M2, "h", TargetState.LAUNCHED)),
                                  registry.pending_op("b.service", "no machine matches role=db")])
    await registry.commit(token, [registry.evict_op("a.service", M2), registry.pending_op("b.service", None)])
    seen = [await asyncio.wait_for(anext(frames), 5) for _ in range(5)]
    await frames.aclose()
    events = [(f.split("event: ")[1].split("\n")[0], json.loads(f.split("data: ", 1)[1])) for f in seen]
    assert ("leader", {"machineID": M1}) in events
    assert ("assignments", {"name": "a.service", "machineID": M2}) in events
    assert ("pending", {"name": "b.service", "reason": "no machine matches role=db"}) in events
    assert ("assignments", {"name": "a.service", "machineID": M2, "deleted": True}) in events
    assert ("pending", {"name": "b.service", "deleted": True}) in events


def test_summary_counts_every_unit_and_lists_only_its_window() -> None:
    units = [Unit(f"u{i:02}.service", "hb", TargetState.LAUNCHED) for i in range(30)]
    records = _records(
        units=units, files={"hb": "[Service]\nExecStart=/bin/true\nCPUQuota=50%\n"},
        assignments=[Assignment(u.name, M1, "hb", TargetState.LAUNCHED) for u in units[:20]],
        states=[_state(u.name, M1) for u in units[:10]],
        pending={u.name: "no room" for u in units[20:]}, machines=[Machine(M1, "10.0.0.1")])
    got = summary.build(records, summary.Window(offset=5, limit=4, glob="u1*")).to_dict()
    assert got["totals"] == {"units": 30, "active": 10, "pending": 10, "matching": 10}
    assert [u["name"] for u in got["units"]] == ["u15.service", "u16.service", "u17.service", "u18.service"]
    assert got["unitsOffset"] == 5
    assert got["machines"][0]["load"] == {"units": 20, "cpu": 20 * 500, "memory": 0}  # all, not the window


@pytest.mark.parametrize(("query", "error"), [
    ({"unitsLimit": "0"}, "unitsLimit must be a whole number from 1 to 5000"),
    ({"unitsLimit": "5001"}, "unitsLimit must be a whole number from 1 to 5000"),
    ({"unitsOffset": "-1"}, "unitsOffset must be a whole number from 0 to 1000000000"),
    ({"unitsOffset": "x"}, "unitsOffset must be a whole number from 0 to 1000000000"),
])
async def test_summary_refuses_a_bad_window(client: TestClient, query: dict, error: str) -> None:
    resp = await client.get("/fleet/v1/summary", params=query, headers=bearer())
    assert resp.status == 400
    assert (await resp.json())["error"]["message"] == error
