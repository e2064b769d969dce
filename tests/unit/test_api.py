"""API v1 over a MemoryKV registry: status codes, messages, JSON shapes, nothing half-written."""

from __future__ import annotations

import json
import os
import socket
import stat

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fleetd.api.handlers import decode_token, encode_token
from fleetd.api.http import make_app, serve
from fleetd.model.machine import Machine
from fleetd.model.resources import Resources
from fleetd.model.states import SystemdState, TargetState, UnitState
from fleetd.model.unit import Assignment
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

HELLO = [
    {"section": "Unit", "name": "Description", "value": "Hello"},
    {"section": "Service", "name": "ExecStart", "value": "/bin/sleep 1000"},
]
M1 = "113f16a7" + "0" * 24
M2 = "2222aaaa" + "0" * 24


@pytest.fixture
def registry() -> Registry:
    return Registry(MemoryKV(), Keys("/test/"))


@pytest.fixture
async def client(registry: Registry):
    app = make_app(registry, "9.9.9", page_limit=2)
    async with TestClient(TestServer(app)) as c:
        yield c


async def put(client: TestClient, name: str, body: dict, **kw) -> aiohttp.ClientResponse:
    return await client.put(f"/fleet/v1/units/{name}", json=body, **kw)


async def error_of(resp: aiohttp.ClientResponse, code: int) -> str:
    assert resp.status == code, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["error"]["code"] == code
    return body["error"]["message"]


async def keys_in(registry: Registry) -> list[str]:
    listing = await registry.kv.get_prefix("/test/")
    return [kv.key for kv in listing.items]


async def place(
    registry: Registry, unit: str, machine: str, state: TargetState | None, active: str = "active"
) -> None:
    unit_rec = await registry.get_unit(unit)
    a = Assignment(unit, machine, unit_rec.hash, unit_rec.desired)
    await registry.kv.put(registry.keys.assignment(machine, unit), _enc(a))
    if state is not None:
        s = UnitState(
            unit, machine, unit_rec.hash, state, SystemdState("loaded", active, "running")
        )
        await registry.put_state(s, 0)


def _enc(a: Assignment) -> str:
    from fleetd.registry import codec

    return codec.encode_assignment(a)


# create / get ------------------------------------------------------------------------------------


async def test_create_then_get_shows_inactive_unit_with_camelcase_fields(client) -> None:
    resp = await put(client, "hello.service", {"name": "hello.service", "options": HELLO})
    assert resp.status == 201
    assert resp.headers["Server"] == "fleetd/9.9.9"
    resp = await client.get("/fleet/v1/units/hello.service")
    assert resp.status == 200
    assert await resp.json() == {
        "name": "hello.service",
        "options": HELLO,
        "desiredState": "inactive",
        "currentState": "inactive",
    }


async def test_create_with_desired_state(client) -> None:
    assert (
        await put(client, "a.service", {"options": HELLO, "desiredState": "launched"})
    ).status == 201
    body = await (await client.get("/fleet/v1/units/a.service")).json()
    assert body["desiredState"] == "launched"


async def test_legacy_prefix_serves_the_same_api(client) -> None:
    await put(client, "a.service", {"options": HELLO})
    assert (await client.get("/v1-alpha/units/a.service")).status == 200


async def test_get_missing_unit_is_404(client) -> None:
    assert (
        await error_of(await client.get("/fleet/v1/units/nope.service"), 404)
        == "unit does not exist"
    )


# PUT rules ----------------------------------------------------------------------------------------


async def test_create_without_options_is_409(client, registry) -> None:
    msg = await error_of(await put(client, "a.service", {"desiredState": "loaded"}), 409)
    assert msg == "unit does not exist and options field empty"
    assert await keys_in(registry) == []


async def test_update_without_desired_state_is_409(client) -> None:
    await put(client, "a.service", {"options": HELLO})
    msg = await error_of(await put(client, "a.service", {"options": HELLO}), 409)
    assert msg == "must provide DesiredState to update existing unit"


async def test_desired_state_change_is_204(client) -> None:
    await put(client, "a.service", {"options": HELLO})
    assert (await put(client, "a.service", {"desiredState": "loaded"})).status == 204
    body = await (await client.get("/fleet/v1/units/a.service")).json()
    assert body["desiredState"] == "loaded"


async def test_replace_with_new_content_is_201_and_resets_to_body_state(client) -> None:
    await put(client, "a.service", {"options": HELLO, "desiredState": "launched"})
    new = HELLO[:1] + [{"section": "Service", "name": "ExecStart", "value": "/bin/true"}]
    assert (await put(client, "a.service", {"options": new})).status == 201
    body = await (await client.get("/fleet/v1/units/a.service")).json()
    assert body["options"] == new and body["desiredState"] == "inactive"


async def test_same_content_with_state_only_changes_state(client) -> None:
    await put(client, "a.service", {"options": HELLO})
    resp = await put(client, "a.service", {"options": HELLO, "desiredState": "loaded"})
    assert resp.status == 204


async def test_name_mismatch_is_400(client, registry) -> None:
    msg = await error_of(
        await put(client, "a.service", {"name": "b.service", "options": HELLO}), 400
    )
    assert msg == 'name in URL "a.service" differs from unit name in request body "b.service"'
    assert await keys_in(registry) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("foo.bar", 'invalid unit type: "bar"'),
        ("web@1.mount", 'invalid unit type for template: "mount"'),
    ],
)
async def test_invalid_name_is_400(client, registry, name, message) -> None:
    assert await error_of(await put(client, name, {"options": HELLO}), 400) == message
    assert await keys_in(registry) == []


async def test_contradicting_requirements_are_400_and_nothing_is_stored(client, registry) -> None:
    opts = HELLO + [
        {"section": "X-Fleet", "name": "MachineID", "value": "abc"},
        {"section": "X-Fleet", "name": "Global", "value": "true"},
    ]
    msg = await error_of(await put(client, "a.service", {"options": opts}), 400)
    assert msg == "MachineID cannot be used with Global"
    assert await keys_in(registry) == []


@pytest.mark.parametrize(
    ("name", "xfleet", "message"),
    [
        ("a.service", {"Memory": "lots"}, 'invalid Memory "lots"'),
        ("a.service", {"CPU": "-1"}, 'invalid CPU "-1"'),
        ("a.service", {"MachineMetadata": "cores>=many"}, '"many" is not a number'),
        ("a.service", {"Policy": "random"}, 'Policy must be one of binpack, spread, not "random"'),
        ("a.service", {"Instances": "3"}, "Instances can only be used in a template unit"),
        ("web@.service", {"Instances": "0"}, "Instances must be a whole number from 1 to 1000"),
        ("web@.service", {"Instances": "2", "Global": "true"}, "Global cannot be used with Instances"),
    ],
)
async def test_bad_extension_options_are_400_and_nothing_is_stored(client, registry, name, xfleet,
                                                                   message) -> None:
    options = HELLO + [{"section": "X-Fleet", "name": k, "value": v} for k, v in xfleet.items()]
    text = await error_of(await put(client, name, {"options": options}), 400)
    assert message in text
    assert await keys_in(registry) == []


async def test_global_unit_is_mirrored_under_global_prefix(client, registry) -> None:
    options = HELLO + [{"section": "X-Fleet", "name": "Global", "value": "true"}]
    assert (await put(client, "g.service", {"options": options, "desiredState": "launched"})).status == 201
    assert [u.name for u in await registry.list_globals()] == ["g.service"]
    assert (await put(client, "g.service", {"desiredState": "loaded"})).status == 204
    assert [u.desired for u in await registry.list_globals()] == [TargetState.LOADED]
    assert (await client.delete("/fleet/v1/units/g.service")).status == 204
    assert [k for k in await keys_in(registry) if not k.startswith("/test/files/")] == []


async def test_pending_reason_is_shown_while_the_engine_keeps_one(client, registry) -> None:
    await put(client, "big.service", {"options": HELLO, "desiredState": "launched"})
    await registry.kv.put(registry.keys.pending_reason("big.service"), "insufficient memory: needs 2G")
    body = await (await client.get("/fleet/v1/units/big.service")).json()
    assert body["pendingReason"] == "insufficient memory: needs 2G"
    listed = await (await client.get("/fleet/v1/units")).json()
    assert listed["units"][0]["pendingReason"] == "insufficient memory: needs 2G"
    await place(registry, "big.service", M1, TargetState.LAUNCHED)  # e.g. stuck on a draining machine
    assert "pendingReason" in await (await client.get("/fleet/v1/units/big.service")).json()
    await registry.kv.delete(registry.keys.pending_reason("big.service"))  # the engine clears it
    assert "pendingReason" not in await (await client.get("/fleet/v1/units/big.service")).json()


async def test_invalid_replacement_keeps_the_old_unit(client, registry) -> None:
    await put(client, "a.service", {"options": HELLO})
    before = await registry.get_unit("a.service")
    bad = HELLO + [
        {"section": "X-Fleet", "name": "Conflicts", "value": "x*"},
        {"section": "X-Fleet", "name": "Replaces", "value": "y*"},
    ]
    msg = await error_of(
        await put(client, "a.service", {"options": bad, "desiredState": "loaded"}), 400
    )
    assert msg == "Conflicts cannot be used with Replaces"
    assert await registry.get_unit("a.service") == before


async def test_unparseable_option_is_400(client, registry) -> None:
    opts = [{"section": "Service", "name": "ExecStart", "value": "a\nb"}]
    await error_of(await put(client, "a.service", {"options": opts}), 400)
    assert await keys_in(registry) == []


async def test_template_cannot_be_activated(client, registry) -> None:
    msg = await error_of(
        await put(client, "web@.service", {"options": HELLO, "desiredState": "launched"}), 400
    )
    assert msg == 'cannot activate template "web@.service"'
    assert await keys_in(registry) == []
    assert (await put(client, "web@.service", {"options": HELLO})).status == 201
    msg = await error_of(await put(client, "web@.service", {"desiredState": "loaded"}), 400)
    assert msg == 'cannot activate template "web@.service"'


@pytest.mark.parametrize(
    "body",
    [
        {"options": HELLO, "desiredState": "running"},
        {"options": HELLO, "bogus": 1},
        {"options": "nope"},
        {"options": [{"section": "Unit", "name": "X"}]},
        {"name": 5, "options": HELLO},
        {"options": HELLO, "desired_state": "loaded"},  # only fleet's camelCase names
    ],
)
async def test_wrong_body_shapes_are_400(client, registry, body) -> None:
    msg = await error_of(await put(client, "a.service", body), 400)
    assert msg.startswith("unable to decode body")
    assert await keys_in(registry) == []


async def test_undecodable_json_is_400(client) -> None:
    resp = await client.put(
        "/fleet/v1/units/a.service", data="{not json", headers={"Content-Type": "application/json"}
    )
    await error_of(resp, 400)


@pytest.mark.parametrize("ctype", ["text/plain", None])
async def test_wrong_content_type_is_415(client, registry, ctype) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    resp = await client.put(
        "/fleet/v1/units/a.service",
        data=json.dumps({"options": HELLO}),
        headers=headers,
        skip_auto_headers=["Content-Type"],
    )
    await error_of(resp, 415)
    assert await keys_in(registry) == []


# DELETE -------------------------------------------------------------------------------------------


async def test_delete(client) -> None:
    await put(client, "a.service", {"options": HELLO})
    assert (await client.delete("/fleet/v1/units/a.service")).status == 204
    assert (await client.get("/fleet/v1/units/a.service")).status == 404
    assert (
        await error_of(await client.delete("/fleet/v1/units/a.service"), 404)
        == "unit does not exist"
    )


# listing and derived state ------------------------------------------------------------------------


async def test_current_state_and_machine_are_derived(client, registry) -> None:
    for name in ("a.service", "b.service", "c.service"):
        await put(client, name, {"options": HELLO, "desiredState": "launched"})
    await place(registry, "a.service", M1, TargetState.LAUNCHED)
    await place(registry, "b.service", M2, None)  # placed, not yet reported
    a = await (await client.get("/fleet/v1/units/a.service")).json()
    b = await (await client.get("/fleet/v1/units/b.service")).json()
    c = await (await client.get("/fleet/v1/units/c.service")).json()
    assert (a["currentState"], a["machineID"]) == ("launched", M1)
    assert (b["currentState"], b["machineID"]) == ("inactive", M2)
    assert c["currentState"] == "inactive" and "machineID" not in c


async def test_state_from_another_machine_does_not_count(client, registry) -> None:
    await put(client, "a.service", {"options": HELLO, "desiredState": "launched"})
    await place(registry, "a.service", M2, TargetState.LAUNCHED)
    await registry.kv.delete(registry.keys.assignment(M2, "a.service"))
    await place(registry, "a.service", M1, None)
    body = await (await client.get("/fleet/v1/units/a.service")).json()
    assert (body["currentState"], body["machineID"]) == ("inactive", M1)


async def test_units_are_listed_by_name_in_pages(client) -> None:
    for name in ("c.service", "a.service", "b.service"):
        await put(client, name, {"options": HELLO})
    page1 = await (await client.get("/fleet/v1/units")).json()
    assert [u["name"] for u in page1["units"]] == ["a.service", "b.service"]
    resp = await client.get("/fleet/v1/units", params={"nextPageToken": page1["nextPageToken"]})
    page2 = await resp.json()
    assert [u["name"] for u in page2["units"]] == ["c.service"]
    assert "nextPageToken" not in page2


@pytest.mark.parametrize("token", ["!!!", encode_token(7, 1)])
async def test_bad_page_token_is_400(client, token) -> None:
    await error_of(await client.get("/fleet/v1/units", params={"nextPageToken": token}), 400)


def test_page_token_is_fleets_format() -> None:
    assert encode_token(100, 2) == "ZAACAA=="
    assert decode_token("ZAACAA==", 100) == 2


async def test_states_sorted_and_filtered(client, registry) -> None:
    for name in ("b.service", "a.service"):
        await put(client, name, {"options": HELLO, "desiredState": "launched"})
    await place(registry, "b.service", M1, TargetState.LAUNCHED)
    await place(registry, "a.service", M2, TargetState.LAUNCHED, active="failed")
    await place(registry, "a.service", M1, TargetState.LAUNCHED)
    body = await (await client.get("/fleet/v1/state")).json()
    assert [(s["name"], s["machineID"]) for s in body["states"]] == [
        ("a.service", M1),
        ("a.service", M2),
    ]
    assert set(body["states"][0]) == {
        "name",
        "hash",
        "machineID",
        "systemdLoadState",
        "systemdActiveState",
        "systemdSubState",
    }
    one = await (
        await client.get("/fleet/v1/state", params={"unitName": "a.service", "machineID": M2})
    ).json()
    assert [(s["name"], s["systemdActiveState"]) for s in one["states"]] == [
        ("a.service", "failed")
    ]
    by_machine = await (await client.get("/fleet/v1/state", params={"machineID": M1})).json()
    assert [s["name"] for s in by_machine["states"]] == ["a.service", "b.service"]


async def test_state_of_one_unit(client, registry) -> None:
    await put(client, "a.service", {"options": HELLO, "desiredState": "launched"})
    msg = await error_of(await client.get("/fleet/v1/state/a.service"), 404)
    assert msg == "unit state does not exist"
    await place(registry, "a.service", M1, TargetState.LAUNCHED)
    body = await (await client.get("/fleet/v1/state/a.service")).json()
    assert body["machineID"] == M1 and body["systemdActiveState"] == "active"


async def test_machines_sorted_by_id(client, registry) -> None:
    await registry.register_machine(Machine(M2, "10.0.0.2", {"az": "b"}), 0)
    await registry.register_machine(Machine(M1, "10.0.0.1", capacity=Resources(2000, 1 << 30)), 0)
    body = await (await client.get("/fleet/v1/machines")).json()
    assert body == {
        "machines": [
            {"id": M1, "primaryIP": "10.0.0.1", "metadata": {},
             "capacity": {"cpu": 2000, "memory": 1 << 30}, "state": "ready"},
            {"id": M2, "primaryIP": "10.0.0.2", "metadata": {"az": "b"},
             "capacity": {"cpu": 0, "memory": 0}, "state": "ready"},
        ]
    }


# transport --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("PUT", "/fleet/v1/units", "only GET, POST and DELETE supported against this resource"),
        ("PATCH", "/v1-alpha/units", "only GET, POST and DELETE supported against this resource"),
        (
            "POST",
            "/fleet/v1/units/a.service",
            "only GET, PUT and DELETE supported against this resource",
        ),
        ("DELETE", "/fleet/v1/state", "only GET supported against this resource"),
        ("PUT", "/fleet/v1/machines", "only GET and PATCH supported against this resource"),
        ("POST", "/", "only GET supported against this resource"),
    ],
)
async def test_other_methods_are_405(client, method, path, message) -> None:
    assert await error_of(await client.request(method, path), 405) == message


async def test_unknown_path_is_404_json(client) -> None:
    await error_of(await client.get("/fleet/v1/nothing"), 404)


async def test_registry_outage_is_503(client, registry) -> None:
    registry.kv.fail(True)
    await error_of(await client.get("/fleet/v1/units"), 503)


async def test_serve_on_unix_socket_replaces_stale_file(registry, tmp_path) -> None:
    path = str(tmp_path / "fleet.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # a leftover socket file nobody listens on
    runner = await serve(make_app(registry, "1"), path)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        conn = aiohttp.UnixConnector(path=path)
        async with (
            aiohttp.ClientSession(connector=conn) as session,
            session.get("http://fleet/fleet/v1/units") as resp,
        ):
            assert resp.status == 200 and await resp.json() == {"units": []}
        with pytest.raises(OSError, match="in use"):
            await serve(make_app(registry, "1"), path)
    finally:
        await runner.cleanup()


async def test_serve_refuses_to_remove_a_regular_file(registry, tmp_path) -> None:
    path = tmp_path / "fleet.sock"
    path.write_text("precious")
    with pytest.raises(OSError, match="not a socket"):
        await serve(make_app(registry, "1"), str(path))
    assert path.read_text() == "precious"


async def test_a_stored_file_todays_rules_refuse_is_shown_without_options(client, registry) -> None:
    from fleetd.model.unit import Unit

    await registry.create_unit(Unit("old.service", "f" * 64, TargetState.INACTIVE), "[S]\nK=a\x01b\n")
    resp = await client.get("/fleet/v1/units/old.service")
    assert resp.status == 200 and (await resp.json())["options"] == []


@pytest.mark.parametrize("prefix", ["/fleet/v1", "/v1-alpha"])
async def test_openapi_document_is_served(client, prefix) -> None:
    resp = await client.get(prefix + "/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    doc = await resp.json()
    assert doc["openapi"].startswith("3.") and "/fleet/v1/units/{name}" in doc["paths"]
    assert "Unit" in doc["components"]["schemas"]
