"""Issue 5: every class of bad input gets a clear 4xx (or fleetctl exit 1) and stores nothing.

One table per class. Each case asserts the status, a substring of fleet's error message, and that
the registry holds exactly what it held before the request (no units/ or files/ key written).
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fleetctl.cli import main
from fleetd.api.http import make_app, serve
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

JSON = {"Content-Type": "application/json"}
HELLO = [{"section": "Service", "name": "ExecStart", "value": "/bin/sleep 1000"}]
UNIT = "/fleet/v1/units/"


def opt(section: str = "Service", name: str = "ExecStart", value: str = "/bin/true") -> dict:
    return {"section": section, "name": name, "value": value}


@pytest.fixture
def registry() -> Registry:
    return Registry(MemoryKV(), Keys("/test/"))


@pytest.fixture
async def client(registry: Registry):
    async with TestClient(TestServer(make_app(registry, "test"))) as c:
        yield c


async def contents(registry: Registry) -> dict[str, str]:
    return {kv.key: kv.value for kv in (await registry.kv.get_prefix("/test/")).items}


async def refused(client, registry, method: str, path: str, body, status: int, message: str,
                  headers: dict | None = None) -> None:
    """Send one request; assert fleet's error body and an untouched registry."""
    before = await contents(registry)
    data = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
    resp = await client.request(method, path, data=data, headers=JSON if headers is None else headers)
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/json"
    error = json.loads(text)["error"]
    assert error["code"] == status and message in error["message"], error
    assert await contents(registry) == before


# malformed unit files (options that would not make a parseable file) ----------------------------

MALFORMED_OPTIONS = [
    ([opt(section="[Service]")], "invalid section name"),
    ([opt(section="")], "invalid section name"),
    ([opt(name="")], "invalid option name"),
    ([opt(name="A=B")], "invalid option name"),
    ([opt(name="#ExecStart")], "invalid option name"),
    ([opt(value="two\nlines")], "has a line break not after a backslash"),
    ([opt(value="tab\x1bescape")], "contains control character '\\x1b'"),
]


@pytest.mark.parametrize(("options", "message"), MALFORMED_OPTIONS)
async def test_malformed_options_are_400(client, registry, options, message) -> None:
    await refused(client, registry, "PUT", UNIT + "a.service", {"options": options}, 400, message)


# unknown sections: well-formed ones are accepted (systemd ignores them); bogus names are not ------

BOGUS_SECTIONS = [
    ("Se]ction", "invalid section name"),
    ("Sec\x01tion", "contains control character"),
    ("S" * 257, "section name is 257 bytes; the limit is 256"),
]


@pytest.mark.parametrize(("section", "message"), BOGUS_SECTIONS)
async def test_bogus_section_names_are_400(client, registry, section, message) -> None:
    body = {"options": HELLO + [opt(section=section, name="K", value="v")]}
    await refused(client, registry, "PUT", UNIT + "a.service", body, 400, message)


@pytest.mark.parametrize("section", ["X-Custom", "Foo Bar", "Unknown"])
async def test_well_formed_unknown_sections_are_accepted(client, section) -> None:
    body = {"options": HELLO + [opt(section=section, name="K", value="v")]}
    assert (await client.put(UNIT + "a.service", json=body)).status == 201


# invalid UTF-8 ------------------------------------------------------------------------------------

INVALID_UTF8 = [
    (b'{"options":[{"section":"Service","name":"ExecStart","value":"\xff"}]}', 400, "not valid UTF-8"),
    (b'{"options":[{"section":"Serv\xc3","name":"X","value":"v"}]}', 400, "not valid UTF-8"),
    (b'{"name":"\xed\xa0\x80.service","options":[]}', 400, "not valid UTF-8"),
    ('{"options":[{"section":"Service","name":"X","value":"\\ud800"}]}', 400, "unable to decode body"),
]


@pytest.mark.parametrize(("body", "status", "message"), INVALID_UTF8)
async def test_invalid_utf8_is_400(client, registry, body, status, message) -> None:
    await refused(client, registry, "PUT", UNIT + "a.service", body, status, message)


async def test_only_utf8_is_accepted_as_charset(client, registry) -> None:
    headers = {"Content-Type": "application/json; charset=latin-1"}
    await refused(client, registry, "PUT", UNIT + "a.service", {"options": HELLO}, 415,
                  "expected Content-Type application/json", headers)
    for name, ctype in (("a", "application/json; charset=UTF-8"), ("b", "Application/JSON; charset=utf8")):
        resp = await client.put(UNIT + name + ".service", data=json.dumps({"options": HELLO}),
                                headers={"Content-Type": ctype})
        assert resp.status == 201


# NUL bytes and other control characters -----------------------------------------------------------

CONTROL_CHARS = [
    (UNIT + "a.service", {"options": [opt(value="a\0b")]}, "contains a NUL byte"),
    (UNIT + "a.service", {"options": [opt(name="Exec\0Start")]}, "contains a NUL byte"),
    (UNIT + "a.service", {"options": [opt(section="Ser\0vice")]}, "contains a NUL byte"),
    (UNIT + "a.service", {"options": [opt(value="a\x1bb")]}, "control character '\\x1b'"),
    (UNIT + "a.service", {"options": [opt(value="a\rb")]}, "control character '\\r'"),
    (UNIT + "a%00.service", {"options": HELLO}, "invalid character '\\u0000' in unit name"),
    (UNIT + "a.service", {"name": "a\0.service", "options": HELLO}, "differs from unit name"),
]


@pytest.mark.parametrize(("path", "body", "message"), CONTROL_CHARS)
async def test_nul_and_control_characters_are_400(client, registry, path, body, message) -> None:
    await refused(client, registry, "PUT", path, body, 400, message)


# unit names ---------------------------------------------------------------------------------------

BAD_NAMES = [
    ("a%2Fb.service", 'unit name cannot contain "/"'),
    ("..%2Fetc.service", 'unit name cannot contain "/"'),
    ("a..service", 'unit name cannot contain ".."'),
    ("a" * 248 + ".service", "unit name exceeds maximum length (255 bytes)"),
    ("hello", 'unit name must contain "."'),
    ("hello.exe", 'invalid unit type: "exe"'),
    ("hello.snapshot", 'invalid unit type: "snapshot"'),
    ("@x.service", 'unit name cannot start in "@"'),
    (".service", 'unit name has no prefix before ".service"'),
    (".x.service", 'unit name cannot start in "."'),
    ("-x.service", 'unit name cannot start in "-"'),
    ("web@1.mount", 'invalid unit type for template: "mount"'),
    ("a%5Cx2d.device", "invalid character '\\\\' in unit name"),
    ("a%20b.service", "invalid character ' ' in unit name"),
    ("h%C3%A9.service", "invalid character 'é' in unit name"),
]


@pytest.mark.parametrize(("name", "message"), BAD_NAMES)
async def test_bad_names_are_400(client, registry, name, message) -> None:
    await refused(client, registry, "PUT", UNIT + name, {"options": HELLO}, 400, message)


@pytest.mark.parametrize(("name", "message"), [("a/b.service", '"/"'), ("x" * 300 + ".service", "255"),
                                              (".service", "no prefix"), ("-x.service", '"-"')])
async def test_bad_names_in_a_batch_are_400(client, registry, name, message) -> None:
    body = {"units": [{"name": "ok.service", "options": HELLO}, {"name": name, "options": HELLO}]}
    await refused(client, registry, "POST", "/fleet/v1/units", body, 400, message)


# POST /units: one bad entry of any class rejects the whole batch ----------------------------------
def batch(bad: dict) -> dict:  # a good entry, then a bad one
    return {"units": [{"name": "ok.service", "options": HELLO}, {"name": "bad.service", **bad}]}


BAD_BATCHES = [
    (batch({"options": [opt(value="a\0b")]}), 'unit "bad.service": option', "NUL byte"),
    (batch({"options": [opt(section="A]")]}), 'unit "bad.service": invalid section', "name"),
    (batch({"options": [opt(value="v" * 70000)]}), 'unit "bad.service": value', "65536"),
    (batch({"options": HELLO, "desiredState": "up"}), 'unit "bad.service": desiredState', "Input"),
    (batch({"desiredState": "loaded"}), 'unit "bad.service": unit does not exist', "options"),
    (b'{"units":[{"name":"a.service","options":[{"section":"S","name":"K","value":"\xc0"}]}]}',
     "unable to decode body", "not valid UTF-8"),
]


@pytest.mark.parametrize(("body", "message", "detail"), BAD_BATCHES)
async def test_bad_batches_write_nothing(client, registry, body, message, detail) -> None:
    status = 409 if "does not exist" in message else 400
    await refused(client, registry, "POST", "/fleet/v1/units", body, status, message)
    await refused(client, registry, "POST", "/fleet/v1/units", body, status, detail)


# over-long values and files -----------------------------------------------------------------------

TOO_LONG = [
    ([opt(value="v" * (64 * 1024 + 1))], "value of 'ExecStart' is 65537 bytes; the limit is 65536"),
    ([opt(value="é" * (32 * 1024 + 1))], "is 65538 bytes; the limit is 65536"),
    ([opt(name="N" * 257)], "is 257 bytes; the limit is 256"),
    ([opt(name=f"K{i}", value="v" * 60000) for i in range(20)], "the limit is 1048576"),
]


@pytest.mark.parametrize(("options", "message"), TOO_LONG)
async def test_over_long_values_and_files_are_400(client, registry, options, message) -> None:
    await refused(client, registry, "PUT", UNIT + "a.service", {"options": options}, 400, message)


# invalid JSON and wrong JSON types ----------------------------------------------------------------

BAD_JSON = [
    ("PUT", UNIT + "a.service", "{not json", "Invalid JSON"),
    ("PUT", UNIT + "a.service", "", "Invalid JSON"),
    ("PUT", UNIT + "a.service", "null", "Input should be an object"),
    ("PUT", UNIT + "a.service", '["a"]', "Input should be an object"),
    ("PUT", UNIT + "a.service", {"options": {}}, "options: Input should be a valid array"),
    ("PUT", UNIT + "a.service", {"options": [opt(value=5)]}, "value: Input should be a valid string"),
    ("PUT", UNIT + "a.service", {"options": HELLO, "desiredState": 1}, "desiredState"),
    ("PUT", UNIT + "a.service", {"options": HELLO, "extra": True}, "extra: Extra inputs"),
    ("POST", "/fleet/v1/units", {"units": {}}, "units: Input should be a valid array"),
    ("POST", "/fleet/v1/units", {"units": [{"options": HELLO}]}, "units[0]: name is required"),
    ("POST", "/fleet/v1/units", {"units": []}, "no units given"),
    ("PUT", UNIT + "a.service", '{"desiredState":"inactive","desiredState":"launched","options":[]}',
     'unable to decode body: duplicate key "desiredState"'),
    ("PUT", UNIT + "a.service", '{"options":[{"section":"Service","name":"ExecStart","value":"/a",'
     '"value":"/b"}]}', 'duplicate key "value"'),
    ("POST", "/fleet/v1/units", '{"units":[{"name":"a.service","name":"b.service",'
     '"desiredState":"loaded"}]}', 'duplicate key "name"'),
    ("POST", "/fleet/v1/units", '{"units":[],"units":[{"name":"a.service","options":[]}]}',
     'duplicate key "units"'),
    ("PATCH", "/fleet/v1/machines", '[{"op":"add","op":"remove","path":"/m/metadata/k"}]',
     'duplicate key "op"'),
]


@pytest.mark.parametrize(("method", "path", "body", "message"), BAD_JSON)
async def test_bad_json_is_400(client, registry, method, path, body, message) -> None:
    await refused(client, registry, method, path, body, 400, message)


# illegal desired states and transitions -----------------------------------------------------------

ILLEGAL_STATES = [
    ("a.service", {"options": HELLO, "desiredState": "running"}, "desiredState: Input should be"),
    ("a.service", {"options": HELLO, "desiredState": "LAUNCHED"}, "desiredState: Input should be"),
    ("a.service", {"desiredState": ""}, "desiredState: Input should be"),
    ("web@.service", {"options": HELLO, "desiredState": "loaded"}, 'cannot activate template "web@.service"'),
    ("web@.service", {"desiredState": "launched"}, 'cannot activate template "web@.service"'),
]


@pytest.mark.parametrize(("name", "body", "message"), ILLEGAL_STATES)
async def test_illegal_desired_states_are_400_and_keep_the_stored_unit(client, registry, name, body,
                                                                       message) -> None:
    for existing in ("a.service", "web@.service"):
        assert (await client.put(UNIT + existing, json={"options": HELLO})).status == 201
    await refused(client, registry, "PUT", UNIT + name, body, 400, message)


async def test_an_invalid_replacement_keeps_the_stored_unit(client, registry) -> None:
    assert (await client.put(UNIT + "a.service", json={"options": HELLO})).status == 201
    body = {"options": [opt(value="bad\0")], "desiredState": "launched"}
    await refused(client, registry, "PUT", UNIT + "a.service", body, 400, "NUL")


# unknown units ------------------------------------------------------------------------------------

UNKNOWN = [
    ("GET", UNIT + "ghost.service", None, 404, "unit does not exist"),
    ("DELETE", UNIT + "ghost.service", None, 404, "unit does not exist"),
    ("GET", "/fleet/v1/state/ghost.service", None, 404, "unit state does not exist"),
    ("PUT", UNIT + "ghost.service", {"desiredState": "launched"}, 409, "options field empty"),
    ("GET", UNIT + "a..service", None, 404, "unit does not exist"),
    ("DELETE", UNIT + "%00.service", None, 404, "unit does not exist"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), UNKNOWN)
async def test_unknown_units(client, registry, method, path, body, status, message) -> None:
    await refused(client, registry, method, path, body, status, message)


# fleetctl: the same classes from unit files on disk -----------------------------------------------

BAD_FILES = [
    # text before the first section is skipped, as fleet did, leaving no options (fleet's API message)
    ("a.service", b"K=v\n", "unit does not exist and options field empty"),
    ("a.service", b"[Service\nK=v\n", "unable to find end of section"),
    ("a.service", b"[Service]\nno equals sign\n", "unexpected newline encountered while parsing option name"),
    # a CRLF line never continues
    ("a.service", b"[Service]\nA=1 \\\r\n  two\r\n", "unexpected newline encountered"),
    ("a.service", b"[Service]\nExecStart=\xff\xfe\n", "codec can't decode byte 0xff"),
    ("a.service", b"[Service]\nExecStart=/bin/true\0\n", "contains a NUL byte"),
    ("a.service", b"[Service]\nExecStart=" + b"v" * 70000 + b"\n", "the limit is 65536"),
    ("a.service", b"[Bad]Section]\nK=v\n", "found garbage after section name"),
    ("a..service", b"[Service]\nExecStart=/bin/true\n", 'unit name cannot contain ".."'),
    ("w" * 200 + "@.service", b"[Service]\nExecStart=/bin/true\n", "maximum length (255 bytes)"),
    ("web@.service", b"[X-Fleet]\nMachineID=a\nGlobal=true\n", "MachineID cannot be used with Global"),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD_FILES)
async def test_fleetctl_refuses_bad_unit_files(tmp_path: Path, monkeypatch, name, data, message) -> None:
    registry, sock = Registry(MemoryKV(), Keys("/test/")), str(tmp_path / "fleet.sock")
    runner = await serve(make_app(registry, "test"), sock)
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_bytes(data)
    try:
        out, err, env = io.StringIO(), io.StringIO(), {"FLEETCTL_ENDPOINT": f"unix://{sock}"}
        arg = name.replace("@.", "@" + "i" * 60 + ".")  # an instance too long for a file name
        code = await asyncio.to_thread(main, ["submit", arg], out, err, env)
    finally:
        await runner.cleanup()
    assert code == 1 and message in err.getvalue(), err.getvalue()
    assert await contents(registry) == {}


REFUSED_ARGS = [
    (".service", 'invalid unit .service: unit name has no prefix before ".service"'),
    ("-x.service", 'invalid unit -x.service: unit name cannot start in "-"'),
    (".x.service", 'invalid unit .x.service: unit name cannot start in "."'),
    ("a b.service", "invalid unit a b.service: invalid character ' ' in unit name"),
    ("a\\x2d.service", "invalid unit a\\x2d.service: invalid character '\\\\' in unit name"),
    ("w@1.mount", 'invalid unit w@1.mount: invalid unit type for template: "mount"'),
]


@pytest.mark.parametrize("verb", ["submit", "load", "start", "restart"])
@pytest.mark.parametrize(("arg", "message"), REFUSED_ARGS)
def test_fleetctl_refuses_bad_names_before_any_file_or_request(tmp_path: Path, monkeypatch, verb,
                                                               arg, message) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / arg).mkdir()  # reading it as a unit file would fail differently
    out, err = io.StringIO(), io.StringIO()
    env = {"FLEETCTL_ENDPOINT": f"unix://{tmp_path}/nobody-listens.sock"}  # any request fails
    assert main([verb, "--", arg], out, err, env) == 1
    assert err.getvalue() == f"Error creating units: {message}\n"


# requests aiohttp cannot parse: fleet's JSON error body all the same ------------------------------

UNPARSEABLE = [
    (b"GET /fleet/v1/units/" + b"a" * 9000 + b".service HTTP/1.1\r\nHost: x\r\n\r\n", 414,
     "request path too long: at most 8190 bytes"),
    (b"GET /" + b"a" * 200000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "request path too long"),
    (b"GET /fleet/v1/units HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n", 431,
     "request header too long: at most 8190 bytes"),
    (b"NOT HTTP AT ALL\r\n\r\n", 400, "bad HTTP request"),
    (b"GET /fleet/v1/units HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "bad HTTP request"),
]


@pytest.mark.parametrize(("raw", "status", "message"), UNPARSEABLE)
async def test_unparseable_requests_answer_in_json(tmp_path: Path, registry, raw, status,
                                                   message) -> None:
    sock = str(tmp_path / "fleet.sock")
    runner = await serve(make_app(registry, "test"), sock)
    try:
        reader, writer = await asyncio.open_unix_connection(sock)
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        await runner.cleanup()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == str(status).encode(), head  # HTTP/1.0: nothing was parsed
    assert b"Content-Type: application/json" in head
    error = json.loads(body)["error"]
    assert error["code"] == status and message in error["message"], error
    assert await contents(registry) == {}
