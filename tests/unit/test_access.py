"""Access to the API: the unix socket's mode and group, the TCP listener's TLS + bearer token
policy (refused at startup without them), and fleetctl over TLS with a token.

Everything runs against the real server (`serve`) on a temp socket and a free loopback port,
with certificates made by trustme.
"""

from __future__ import annotations

import asyncio
import grp
import io
import os
import ssl
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme

from bench.etcd_server import free_ports
from fleetctl.cli import main as fleetctl
from fleetd import cli as fleetd_cli
from fleetd import server
from fleetd.api import access
from fleetd.api.http import make_app, serve
from fleetd.config import FleetConfig
from fleetd.errors import ConfigError
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

TOKEN = "s3cret-token-0123456789"


def registry() -> Registry:
    return Registry(MemoryKV(), Keys("/test/"))


def secret(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text + "\n")
    path.chmod(mode)
    return str(path)


# the unix socket -----------------------------------------------------------------------------


async def test_socket_is_0660_and_gets_the_configured_group(tmp_path: Path) -> None:
    path = tmp_path / "fleet.sock"
    group = grp.getgrgid(os.getgid()).gr_name
    runner = await serve(make_app(registry(), "test"), str(path), socket_group=group)
    try:
        info = path.stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == os.getgid()
    finally:
        await runner.cleanup()


async def test_unknown_socket_group_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='api_socket_group: no group named "no-such-group-x"'):
        await serve(make_app(registry(), "test"), str(tmp_path / "s"), socket_group="no-such-group-x")


# the TCP policy at startup -------------------------------------------------------------------


@pytest.mark.parametrize("extra", [
    {},
    {"api_tls_cert_file": "/c.pem", "api_tls_key_file": "/k.pem"},  # TLS but no token
    {"api_token_file": "/t"},  # token but no TLS
])
def test_tcp_without_tls_and_token_is_refused(extra: dict[str, str]) -> None:
    cfg = FleetConfig(api_listen="127.0.0.1:49153", **extra)
    with pytest.raises(ConfigError, match="api_listen needs TLS and a token"):
        access.tcp_access(cfg)


def test_fleetd_exits_1_before_starting_anything(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    conf = tmp_path / "fleet.conf"
    conf.write_text("api_listen=127.0.0.1:49153\netcd_servers=http://127.0.0.1:1\n")
    assert fleetd_cli.main(["--config", str(conf)]) == 1
    assert "configuration error: api_listen needs TLS and a token" in capsys.readouterr().err


async def test_server_run_refuses_before_touching_etcd() -> None:
    cfg = FleetConfig(api_listen="127.0.0.1:49153", etcd_servers=["http://127.0.0.1:1"],
                      machine_id_file="/nonexistent")
    with pytest.raises(ConfigError, match="api_listen needs TLS"):
        await server.run(cfg)


def test_a_token_without_tls_is_refused_even_when_insecure() -> None:
    cfg = FleetConfig(api_listen="127.0.0.1:49153", api_insecure_tcp=True, api_token_file="/t")
    with pytest.raises(ConfigError, match="api_token_file needs api_tls_cert_file"):
        access.tcp_access(cfg)


def test_insecure_tcp_is_allowed_with_a_loud_warning() -> None:
    policy = access.tcp_access(FleetConfig(api_listen="127.0.0.1:49153", api_insecure_tcp=True))
    assert policy is not None and policy.ssl is None and policy.token is None
    assert "NO TLS and NO token" in policy.warnings[0]


@pytest.mark.parametrize(("mode", "content", "message"), [
    (0o644, TOKEN, "accessible by group or others"),
    (0o640, TOKEN, "accessible by group or others"),
    (0o600, "", "one non-empty word"),
    (0o600, "two words", "one non-empty word"),
])
def test_unsafe_token_files_are_refused(tmp_path: Path, mode: int, content: str, message: str) -> None:
    path = secret(tmp_path / "token", content, mode)
    with pytest.raises(ConfigError, match=f"api_token_file: .*{message}"):
        access.read_secret(path, "api_token_file")


def test_missing_token_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="api_token_file: cannot read"):
        access.read_secret(str(tmp_path / "nope"), "api_token_file")


@pytest.mark.parametrize(("header", "ok"), [
    (f"Bearer {TOKEN}", True), (f"bearer {TOKEN}", True), (None, False), ("", False),
    ("Bearer", False), ("Bearer wrong", False), (f"Basic {TOKEN}", False), (f"Bearer {TOKEN}x", False),
])
def test_bearer_check(header: str | None, ok: bool) -> None:
    assert access.bearer_ok(header, TOKEN) is ok


# TLS + token over TCP ------------------------------------------------------------------------


@dataclass
class Tls:
    ca: trustme.CA
    ca_file: str
    port: int
    socket: str
    client_cert: str = ""
    client_key: str = ""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.client_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx


async def _start(tmp_path: Path, *, mtls: bool) -> tuple[Tls, aiohttp.web.AppRunner]:
    ca = trustme.CA()
    files = {"ca.pem": ca.cert_pem}
    server_cert, client = ca.issue_cert("127.0.0.1"), ca.issue_cert("fleetctl-user")
    files |= {"server.pem": server_cert.cert_chain_pems[0], "server.key": server_cert.private_key_pem,
              "client.pem": client.cert_chain_pems[0], "client.key": client.private_key_pem}
    for name, blob in files.items():
        blob.write_to_path(str(tmp_path / name))
    cfg = FleetConfig(api_listen=f"127.0.0.1:{free_ports(1)[0]}",
                      api_tls_cert_file=str(tmp_path / "server.pem"),
                      api_tls_key_file=str(tmp_path / "server.key"),
                      api_tls_client_ca_file=str(tmp_path / "ca.pem") if mtls else "",
                      api_token_file=secret(tmp_path / "token", TOKEN))
    policy = access.tcp_access(cfg)
    assert policy is not None and policy.warnings == ()
    sock = str(tmp_path / "fleet.sock")
    runner = await serve(make_app(registry(), "test", tcp_token=policy.token), sock,
                         tcp=cfg.api_listen, tcp_ssl=policy.ssl)
    tls = Tls(ca, str(tmp_path / "ca.pem"), int(cfg.api_listen.rsplit(":", 1)[1]), sock)
    if mtls:
        tls.client_cert, tls.client_key = str(tmp_path / "client.pem"), str(tmp_path / "client.key")
    return tls, runner


@pytest.fixture
async def tls(tmp_path: Path) -> AsyncIterator[Tls]:
    found, runner = await _start(tmp_path, mtls=False)
    try:
        yield found
    finally:
        await runner.cleanup()


async def _get(url: str, ctx: ssl.SSLContext | bool, headers: dict[str, str] | None = None,
               unix: str | None = None) -> tuple[int, dict, dict]:
    connector = aiohttp.UnixConnector(path=unix) if unix else aiohttp.TCPConnector(ssl=ctx)
    async with aiohttp.ClientSession(connector=connector) as session, \
            session.get(url + "/fleet/v1/machines", headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def test_tcp_without_token_is_401_with_fleets_error_body(tls: Tls) -> None:
    status, headers, body = await _get(tls.url, tls.client_ssl())
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert body["error"]["code"] == 401
    assert "missing bearer token" in body["error"]["message"]


async def test_tcp_with_wrong_token_is_401(tls: Tls) -> None:
    status, _, body = await _get(tls.url, tls.client_ssl(), {"Authorization": "Bearer guess"})
    assert (status, body["error"]["message"]) == (401, "invalid bearer token")


async def test_tcp_with_right_token_is_200(tls: Tls) -> None:
    status, _, body = await _get(tls.url, tls.client_ssl(), {"Authorization": f"Bearer {TOKEN}"})
    assert (status, body) == (200, {"machines": []})


async def test_unix_socket_needs_no_token(tls: Tls) -> None:
    status, _, _ = await _get("http://fleetd", False, unix=tls.socket)
    assert status == 200


async def test_plain_http_to_the_tls_port_fails(tls: Tls) -> None:
    with pytest.raises(aiohttp.ClientError):
        await _get(f"http://127.0.0.1:{tls.port}", False, {"Authorization": f"Bearer {TOKEN}"})


async def test_mutual_tls_needs_a_client_certificate(tmp_path: Path) -> None:
    found, runner = await _start(tmp_path, mtls=True)
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert (await _get(found.url, found.client_ssl(), auth))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            await _get(found.url, ssl.create_default_context(cafile=found.ca_file), auth)
    finally:
        await runner.cleanup()


# fleetctl over TLS ---------------------------------------------------------------------------


async def run_fleetctl(environ: dict[str, str], *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(fleetctl, list(argv), out, err, environ)
    return code, out.getvalue(), err.getvalue()


async def test_fleetctl_with_ca_file_and_token_works(tls: Tls) -> None:
    env = {"FLEETCTL_ENDPOINT": tls.url, "FLEETCTL_TOKEN": TOKEN}
    code, out, err = await run_fleetctl(env, "--ca-file", tls.ca_file, "list-machines")
    assert (code, err) == (0, "")
    assert out.startswith("MACHINE")


async def test_fleetctl_reads_ca_and_token_file_from_the_environment(tls: Tls, tmp_path: Path) -> None:
    env = {"FLEETCTL_ENDPOINT": tls.url, "FLEETCTL_CA_FILE": tls.ca_file,
           "FLEETCTL_TOKEN_FILE": secret(tmp_path / "my-token", TOKEN)}
    code, _, err = await run_fleetctl(env, "list-units")
    assert (code, err) == (0, "")


async def test_fleetctl_with_wrong_token_exits_1(tls: Tls) -> None:
    env = {"FLEETCTL_ENDPOINT": tls.url, "FLEETCTL_TOKEN": "guess"}
    code, out, err = await run_fleetctl(env, "--ca-file", tls.ca_file, "list-machines")
    assert (code, out) == (1, "")
    assert err == "fleetctl: authentication failed: invalid bearer token\n"


async def test_fleetctl_without_token_exits_1(tls: Tls) -> None:
    code, _, err = await run_fleetctl({}, "--endpoint", tls.url, "--ca-file", tls.ca_file, "cat", "a.service")
    assert code == 1
    assert err.startswith("fleetctl: authentication failed: missing bearer token")


async def test_fleetctl_with_unreadable_ca_file_exits_1(tls: Tls, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing-ca.pem")
    code, _, err = await run_fleetctl({"FLEETCTL_TOKEN": TOKEN}, "--endpoint", tls.url,
                                      "--ca-file", missing, "list-machines")
    assert code == 1
    assert f"cannot use --ca-file {missing}: No such file or directory" in err


async def test_fleetctl_without_the_ca_does_not_trust_the_server(tls: Tls) -> None:
    code, _, err = await run_fleetctl({"FLEETCTL_TOKEN": TOKEN}, "--endpoint", tls.url, "list-machines")
    assert code == 1
    assert "cannot reach fleetd" in err and "certificate" in err.lower()


async def test_fleetctl_with_client_certificate_for_mutual_tls(tmp_path: Path) -> None:
    found, runner = await _start(tmp_path, mtls=True)
    try:
        code, _, err = await run_fleetctl(
            {"FLEETCTL_TOKEN": TOKEN}, "--endpoint", found.url, "--ca-file", found.ca_file,
            "--cert-file", found.client_cert, "--key-file", found.client_key, "list-machines")
        assert (code, err) == (0, "")
    finally:
        await runner.cleanup()


def test_fleetctl_help_lists_the_tls_and_token_flags() -> None:
    out = io.StringIO()
    assert fleetctl(["help"], out, io.StringIO(), {}) == 0
    for flag in ("--ca-file", "--cert-file", "--key-file", "--token-file", "FLEETCTL_TOKEN"):
        assert flag in out.getvalue()


def test_etcd_password_file_may_hold_spaces_but_not_loose_permissions(tmp_path: Path) -> None:
    path = secret(tmp_path / "pw", "correct horse battery")
    assert access.read_secret(path, "etcd_password_file", one_word=False) == "correct horse battery"
    Path(path).chmod(0o604)
    with pytest.raises(ConfigError, match="etcd_password_file: .* accessible by group or others"):
        access.read_secret(path, "etcd_password_file", one_word=False)


async def test_fleetctl_keeps_the_token_off_plain_http_and_says_so(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    runner = await serve(make_app(registry(), "test"), str(tmp_path / "s"), tcp=f"127.0.0.1:{port}")
    try:
        code, _, err = await run_fleetctl({"FLEETCTL_TOKEN": TOKEN}, "--endpoint",
                                          f"http://127.0.0.1:{port}", "list-machines")
        assert code == 0
        assert err == "WARNING: not sending the API token over plain http; use an https endpoint\n"
    finally:
        await runner.cleanup()


async def test_fleetctl_on_the_unix_socket_ignores_the_token(tls: Tls) -> None:
    code, _, err = await run_fleetctl({"FLEETCTL_TOKEN": "whatever"}, "--endpoint",
                                      f"unix://{tls.socket}", "list-machines")
    assert (code, err) == (0, "")


# etcd ----------------------------------------------------------------------------------------

SECURE_ETCD = {"etcd_servers": ["https://10.0.0.1:2379"], "etcd_cafile": "/ca.pem",
               "etcd_username": "fleet-h1", "etcd_password_file": "/p"}


@pytest.mark.parametrize(("extra", "warned"), [
    (SECURE_ETCD, ()),
    ({**SECURE_ETCD, "etcd_username": "", "etcd_password_file": "", "etcd_certfile": "/c",
      "etcd_keyfile": "/k"}, ()),
    ({**SECURE_ETCD, "etcd_username": "", "etcd_password_file": ""}, ("shows etcd no credentials",)),
    ({"etcd_servers": ["http://10.0.0.1:2379"], "etcd_insecure": True, "etcd_username": "u"},
     ("etcd_insecure=true: fleetd talks to etcd over plain http:// (http://10.0.0.1:2379)",)),
    ({"etcd_servers": ["http://10.0.0.1:2379"], "etcd_insecure": True},
     ("etcd_insecure=true", "shows etcd no credentials")),
])
def test_etcd_warnings(extra: dict, warned: tuple[str, ...]) -> None:
    found = access.etcd_warnings(FleetConfig(**extra))
    assert len(found) == len(warned)
    assert all(w.startswith(want) or want in w for w, want in zip(found, warned, strict=True))


def test_plain_http_etcd_is_refused_without_etcd_insecure() -> None:
    with pytest.raises(ConfigError, match=r"plain http:// URLs \(http://127.0.0.1:2379\).*etcd_insecure=true"):
        access.etcd_warnings(FleetConfig())


def test_fleetd_with_a_plain_etcd_exits_1_naming_the_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "fleet.conf"
    conf.write_text("etcd_servers=http://127.0.0.1:1\nmachine_id_file=/nonexistent\n")
    assert fleetd_cli.main(["--config", str(conf)]) == 1
    assert "set etcd_insecure=true to accept a plain etcd" in capsys.readouterr().err
