"""Client certificates as the TCP API's credential (`api_auth`): `cert` admits a certificate
that verifies against api_tls_client_ca_file and needs no token; a missing one is 401, an
expired, self-signed or wrongly signed one fails the handshake; every refusal is logged and
counted. `token+cert` needs both, `token/cert` either; `token` is what it was.

The real server (`serve`) on a temp socket and a free loopback port, its policy from a real
FleetConfig (`access.tcp_access`), certificates made by trustme, the logs caught by structlog.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
import trustme
from structlog.testing import capture_logs
from test_access import TOKEN, run_fleetctl, secret

from bench.etcd_server import free_ports
from fleetctl import client as client_module
from fleetd.api import access
from fleetd.api.http import make_app, serve
from fleetd.config import FleetConfig
from fleetd.metrics import Metrics
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

BEARER = {"Authorization": f"Bearer {TOKEN}"}
LONG_AGO = (datetime.datetime(2020, 1, 1), datetime.datetime(2021, 1, 1))


@dataclass(frozen=True)
class Pki:
    """Files in one directory: the cluster's CA, the server's certificate and client identities
    (certificate chain + key in one PEM, as `ssl.load_cert_chain` takes it)."""

    dir: Path
    ca_file: str
    server_cert: str
    server_key: str
    clients: dict[str, str]  # name -> PEM with key and certificate

    def client(self, name: str) -> str:
        return self.clients[name]


def make_pki(d: Path) -> Pki:
    """A CA; clients `good` (signed by it), `expired`, `self-signed` (a certificate nobody
    signed but its own key) and `other-ca` (signed by a CA fleetd does not trust)."""
    ca, stranger, other = trustme.CA(), trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(d / "server.pem"))
    server.private_key_pem.write_to_path(str(d / "server.key"))
    leaves = {"good": ca.issue_cert("operator@example"),
              "expired": ca.issue_cert("operator@example", not_before=LONG_AGO[0],
                                       not_after=LONG_AGO[1]),
              "other-ca": other.issue_cert("operator@example")}
    clients = {}
    for name, leaf in leaves.items():
        leaf.private_key_and_cert_chain_pem.write_to_path(str(d / f"{name}.pem"))
        clients[name] = str(d / f"{name}.pem")
    (d / "self-signed.pem").write_bytes(stranger.private_key_pem.bytes() + stranger.cert_pem.bytes())
    clients["self-signed"] = str(d / "self-signed.pem")
    return Pki(d, str(d / "ca.pem"), str(d / "server.pem"), str(d / "server.key"), clients)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def config(pki: Pki, auth: str, port: int) -> FleetConfig:
    """The TCP listener of `auth`, with the client CA and (where the mode uses one) a token."""
    uses_token = auth != "cert"
    return FleetConfig(
        api_listen=f"127.0.0.1:{port}", api_auth=auth, api_tls_cert_file=pki.server_cert,
        api_tls_key_file=pki.server_key, api_tls_client_ca_file=pki.ca_file,
        api_token_file=secret(pki.dir / "token", TOKEN) if uses_token else "")


@dataclass
class Listener:
    """A running API with its TCP listener, the metrics it counts and the logs it wrote."""

    url: str
    socket: str
    pki: Pki
    metrics: Metrics
    logs: list[dict]

    def client_tls(self, client: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.pki.ca_file)
        if client is not None:
            ctx.load_cert_chain(self.pki.client(client))
        return ctx

    async def get(self, client: str | None, headers: dict[str, str] | None = None,
                  path: str = "/fleet/v1/machines") -> tuple[int, dict]:
        connector = aiohttp.TCPConnector(ssl=self.client_tls(client))
        async with aiohttp.ClientSession(connector=connector) as session, \
                session.get(self.url + path, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    def failures(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value("fleet_api_auth_failures_total",
                                                       {"reason": reason})
        return value or 0.0

    def events(self, event: str) -> list[dict]:
        return [e for e in self.logs if e["event"] == event]


Start = Callable[[str], Awaitable[Listener]]


@pytest.fixture
async def start(pki: Pki, tmp_path: Path) -> AsyncIterator[Start]:
    """start(api_auth) -> a Listener; logs are caught for the whole test; every listener
    started is cleaned up afterwards."""
    runners = []

    async def started(auth: str) -> Listener:
        cfg = config(pki, auth, free_ports(1)[0])
        policy = access.tcp_access(cfg)
        assert policy is not None and policy.ssl is not None and policy.warnings == ()
        metrics, sock = Metrics(), str(tmp_path / f"fleet-{len(runners)}.sock")
        app = make_app(Registry(MemoryKV(), Keys("/t/")), "test", tcp_token=policy.token,
                       tcp_auth=policy.auth, recorder=metrics)
        runners.append(await serve(app, sock, tcp=cfg.api_listen, tcp_ssl=policy.ssl))
        return Listener(f"https://{cfg.api_listen}", sock, pki, metrics, logs)

    with capture_logs() as logs:
        yield started
        for runner in runners:
            await runner.cleanup()


# the rule, as a table ----------------------------------------------------------------------


@pytest.mark.parametrize(("auth", "has_cert", "decision"), [
    ("token", True, access.ASK_TOKEN), ("token", False, access.ASK_TOKEN),
    ("cert", True, access.ADMIT), ("cert", False, access.REFUSE),
    ("token+cert", True, access.ASK_TOKEN), ("token+cert", False, access.REFUSE),
    ("token/cert", True, access.ADMIT), ("token/cert", False, access.ASK_TOKEN),
])
def test_what_a_client_certificate_decides(auth: str, has_cert: bool, decision: str) -> None:
    assert access.by_certificate(auth, has_cert) == decision


@pytest.mark.parametrize(("auth", "verify"), [
    ("cert", ssl.CERT_OPTIONAL), ("token+cert", ssl.CERT_OPTIONAL),
    ("token/cert", ssl.CERT_OPTIONAL), ("token", ssl.CERT_REQUIRED)])
def test_the_certificate_modes_ask_for_a_certificate_without_demanding_one(
        pki: Pki, auth: str, verify: ssl.VerifyMode) -> None:
    """So that a missing certificate reaches the app (401, logged); `token` with a client CA
    keeps demanding one in the handshake, as before api_auth."""
    policy = access.tcp_access(config(pki, auth, 49153))
    assert policy is not None and policy.ssl is not None
    assert (policy.ssl.verify_mode, policy.auth) == (verify, auth)
    assert policy.token == (None if auth == "cert" else TOKEN)


# cert --------------------------------------------------------------------------------------


async def test_cert_admits_a_certificate_signed_by_the_client_ca_without_a_token(
        start: Start) -> None:
    api = await start("cert")
    assert await api.get("good") == (200, {"machines": []})
    assert api.logs == [] and api.failures("missing_cert") == api.failures("bad_cert") == 0


async def test_cert_answers_a_request_without_certificate_401_and_logs_it(start: Start) -> None:
    api = await start("cert")
    status, body = await api.get(None, BEARER)  # a token is no credential here
    assert status == 401
    assert body == {"error": {"code": 401, "message": access.NO_CERTIFICATE}}
    [event] = api.events("TCP API request without a client certificate refused")
    assert (event["client"], event["path"], event["log_level"]) == (
        "127.0.0.1", "/fleet/v1/machines", "warning")
    assert api.failures("missing_cert") == 1


@pytest.mark.parametrize(("client", "reason"), [
    ("expired", "client certificate: certificate has expired"),
    ("self-signed", "client certificate: self-signed certificate"),
    ("other-ca", "client certificate: unable to get local issuer certificate"),
])
async def test_cert_refuses_a_bad_certificate_in_the_handshake_and_logs_why(
        start: Start, client: str, reason: str) -> None:
    api = await start("cert")
    with pytest.raises(aiohttp.ClientError):
        await api.get(client)
    await asyncio.sleep(0)  # the refusal is logged as the server closes the connection
    refusals = api.events("TLS handshake refused")
    assert refusals and {e["reason"] for e in refusals} == {reason}
    assert all(e["client"].startswith("127.0.0.1:") for e in refusals)
    assert api.failures("bad_cert") == len(refusals)  # aiohttp may try twice
    assert await api.get("good") == (200, {"machines": []})  # the listener lives on


async def test_the_unix_socket_needs_no_certificate(start: Start) -> None:
    api = await start("cert")
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=api.socket)) as session, \
            session.get("http://fleetd/fleet/v1/machines") as resp:
        assert resp.status == 200


# token+cert, token/cert, token ------------------------------------------------------------


async def test_token_and_cert_needs_both(start: Start) -> None:
    api = await start("token+cert")
    assert await api.get("good", BEARER) == (200, {"machines": []})
    status, body = await api.get("good")
    assert (status, body["error"]["message"]) == (
        401, "missing bearer token: send Authorization: Bearer <token>")
    status, body = await api.get(None, BEARER)
    assert (status, body["error"]["message"]) == (401, access.NO_CERTIFICATE)
    with pytest.raises(aiohttp.ClientError):
        await api.get("expired", BEARER)
    assert (api.failures("missing"), api.failures("missing_cert")) == (1, 1)
    assert api.failures("bad_cert") >= 1


async def test_token_or_cert_takes_either(start: Start) -> None:
    api = await start("token/cert")
    assert (await api.get("good"))[0] == 200
    assert (await api.get(None, BEARER))[0] == 200
    status, body = await api.get(None, {"Authorization": "Bearer guess"})
    assert (status, body["error"]["message"]) == (401, "invalid bearer token")
    with pytest.raises(aiohttp.ClientError):  # a certificate given must still verify
        await api.get("other-ca", BEARER)


async def test_token_keeps_ignoring_certificates_as_credentials(start: Start) -> None:
    """api_auth=token with a client CA: the handshake demands the certificate (as before
    api_auth), and the token is still needed on top of it."""
    api = await start("token")
    status, body = await api.get("good")
    assert (status, body["error"]["message"]) == (
        401, "missing bearer token: send Authorization: Bearer <token>")
    assert (await api.get("good", BEARER))[0] == 200
    with pytest.raises(aiohttp.ClientError):
        await api.get(None, BEARER)
    await asyncio.sleep(0)
    refusals = api.events("TLS handshake refused")
    assert refusals and {e["reason"] for e in refusals} == {"peer did not return a certificate"}
    assert api.failures("missing_cert") == len(refusals)


async def test_plain_http_to_the_tls_port_is_logged_but_is_no_credential_failure(
        start: Start) -> None:
    api = await start("cert")
    with pytest.raises(aiohttp.ClientError):
        async with aiohttp.ClientSession() as session:
            await session.get(api.url.replace("https://", "http://") + "/fleet/v1/machines")
    await asyncio.sleep(0)
    assert {e["reason"] for e in api.events("TLS handshake refused")} == {"http request"}
    assert api.failures("bad_cert") == api.failures("missing_cert") == 0


# our fleetctl with FLEETCTL_CA_FILE / CERT_FILE / KEY_FILE and no token -------------------


async def test_fleetctl_uses_a_client_certificate_from_the_environment(start: Start) -> None:
    api = await start("cert")
    pem = api.pki.client("good")
    env = {"FLEETCTL_ENDPOINT": api.url, "FLEETCTL_CA_FILE": api.pki.ca_file,
           "FLEETCTL_CERT_FILE": pem, "FLEETCTL_KEY_FILE": pem}
    code, out, err = await run_fleetctl(env, "list-machines")
    assert (code, err) == (0, "")
    assert out.startswith("MACHINE")


async def test_fleetctl_without_a_certificate_says_what_is_missing(start: Start) -> None:
    api = await start("cert")
    code, out, err = await run_fleetctl(
        {"FLEETCTL_ENDPOINT": api.url, "FLEETCTL_CA_FILE": api.pki.ca_file}, "list-units")
    assert (code, out) == (1, "")
    assert err == f"fleetctl: authentication failed: {access.NO_CERTIFICATE}\n"


@pytest.mark.parametrize(("exc", "dropped"), [
    (aiohttp.ServerDisconnectedError(), True),  # TLS 1.3: noticed when reading the answer
    (aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"), True),
    (SimpleNamespace(os_error=ConnectionResetError()), True),  # TLS 1.2: while connecting
    (SimpleNamespace(os_error=ssl.SSLEOFError()), True),
    (SimpleNamespace(os_error=ConnectionRefusedError(errno.ECONNREFUSED, "refused")), False),
    (TimeoutError(), False),
    (SimpleNamespace(os_error=ssl.SSLCertVerificationError()), False),  # fleetd's cert: not ours
])
def test_which_failures_may_be_a_refused_client_certificate(exc: object, dropped: bool) -> None:
    assert client_module._dropped(exc) is dropped  # type: ignore[arg-type]


async def test_fleetctl_with_a_refused_certificate_exits_1_with_a_hint(start: Start) -> None:
    api = await start("cert")
    pem = api.pki.client("expired")
    code, out, err = await run_fleetctl(
        {"FLEETCTL_ENDPOINT": api.url, "FLEETCTL_CA_FILE": api.pki.ca_file,
         "FLEETCTL_CERT_FILE": pem, "FLEETCTL_KEY_FILE": pem}, "list-machines")
    assert (code, out) == (1, "")
    assert err.startswith(f"Error: cannot reach fleetd at {api.url}: ")
    assert "fleetd may have refused the client certificate" in err, err
