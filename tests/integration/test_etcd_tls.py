"""EtcdKV against a real etcd that demands TLS client certs, and one that demands a user.

TLS: the right CA + client cert reads and writes; no client cert, or a CA that did not sign
etcd's cert, is a RegistryUnavailable. Auth: with etcd's auth enabled, the right user and
password work, none or a wrong one is a ConfigError naming the refusal, a key outside the
user's role is refused, and an expired token is replaced after one failed call.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from aetcd import rpc

from bench.etcd_server import EtcdCluster, ServerTLS
from fleetd.errors import ConfigError, RegistryUnavailable
from fleetd.registry.etcd import EtcdAuth, EtcdKV, TLSFiles
from tests.conftest import require_etcd

pytestmark = pytest.mark.etcd


@dataclass(frozen=True)
class Pki:
    ca: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _write(path: Path, blob: trustme.Blob) -> Path:
    blob.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EtcdCluster, Pki]]:
    require_etcd()
    d = tmp_path_factory.mktemp("pki")
    ca, other = trustme.CA(), trustme.CA()
    server, client = ca.issue_cert("127.0.0.1", "localhost"), ca.issue_cert("fleetd-client")
    pki = Pki(_write(d / "ca.pem", ca.cert_pem), _write(d / "client.pem", client.cert_chain_pems[0]),
              _write(d / "client.key", client.private_key_pem), _write(d / "other.pem", other.cert_pem))
    tls = ServerTLS(pki.ca, _write(d / "server.pem", server.cert_chain_pems[0]),
                    _write(d / "server.key", server.private_key_pem), pki.client_cert, pki.client_key)
    with EtcdCluster(1, tls=tls) as cluster:
        yield cluster, pki


@pytest.fixture
async def kv_for() -> AsyncIterator:
    made: list[EtcdKV] = []

    def make(endpoint: str, **options: object) -> EtcdKV:
        made.append(EtcdKV([endpoint], request_timeout=1.0, **options))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for kv in made:
        await kv.close()


def _key() -> str:
    return f"/fleet/{uuid.uuid4().hex[:8]}"


async def test_right_ca_and_client_cert_read_and_write(tls_etcd, kv_for) -> None:
    cluster, pki = tls_etcd
    assert cluster.endpoints[0].startswith("https://")
    kv = kv_for(cluster.endpoints[0], tls=TLSFiles(pki.ca, pki.client_cert, pki.client_key))
    key = _key()
    await kv.put(key, "over tls")
    found = await kv.get(key)
    assert found is not None and found.value == "over tls"


async def test_without_client_cert_etcd_is_unavailable(tls_etcd, kv_for) -> None:
    cluster, pki = tls_etcd
    kv = kv_for(cluster.endpoints[0], tls=TLSFiles(ca=pki.ca))
    with pytest.raises(RegistryUnavailable):
        await kv.put(_key(), "refused")


async def test_wrong_ca_etcd_is_unavailable(tls_etcd, kv_for) -> None:
    cluster, pki = tls_etcd
    kv = kv_for(cluster.endpoints[0], tls=TLSFiles(pki.other_ca, pki.client_cert, pki.client_key))
    with pytest.raises(RegistryUnavailable):
        await kv.get(_key())


async def test_plain_http_client_cannot_talk_to_tls_etcd(tls_etcd, kv_for) -> None:
    cluster, _ = tls_etcd
    kv = kv_for(cluster.endpoints[0].replace("https://", "http://"))
    with pytest.raises(RegistryUnavailable):
        await kv.get(_key())


async def test_missing_ca_file_is_a_config_error(tls_etcd, tmp_path: Path) -> None:
    cluster, _ = tls_etcd
    with pytest.raises(ConfigError, match="etcd TLS file"):
        EtcdKV(cluster.endpoints[0:1], tls=TLSFiles(ca=tmp_path / "missing.pem"))


# auth ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_etcd() -> Iterator[EtcdCluster]:
    """A plain etcd with auth on: root/rootpw, and user fleet/fleetpw with read-write on /fleet/."""
    require_etcd()
    with EtcdCluster(1) as cluster:
        yield cluster


_AUTH_ENABLED: set[str] = set()


async def _enable_auth(endpoint: str) -> None:
    """Once per etcd (3.4 has no AuthStatus call to ask)."""
    if endpoint in _AUTH_ENABLED:
        return
    kv = EtcdKV([endpoint])
    auth = rpc.AuthStub(kv._channel())
    try:
        await auth.RoleAdd(rpc.AuthRoleAddRequest(name="root"))
        await auth.UserAdd(rpc.AuthUserAddRequest(name="root", password="rootpw"))
        await auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"))
        await auth.RoleAdd(rpc.AuthRoleAddRequest(name="fleet"))
        perm = rpc.Permission(permType=rpc.Permission.READWRITE, key=b"/fleet/", range_end=b"/fleet0")
        await auth.RoleGrantPermission(rpc.AuthRoleGrantPermissionRequest(name="fleet", perm=perm))
        await auth.UserAdd(rpc.AuthUserAddRequest(name="fleet", password="fleetpw"))
        await auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="fleet", role="fleet"))
        await auth.AuthEnable(rpc.AuthEnableRequest())
        _AUTH_ENABLED.add(endpoint)
    finally:
        await kv.close()


@pytest.fixture
async def auth_endpoint(auth_etcd: EtcdCluster) -> str:
    await _enable_auth(auth_etcd.endpoints[0])
    return auth_etcd.endpoints[0]


async def test_right_user_and_password_read_and_write(auth_endpoint, kv_for) -> None:
    kv = kv_for(auth_endpoint, auth=EtcdAuth("fleet", "fleetpw"))
    key = _key()
    await kv.put(key, "authenticated")
    found = await kv.get(key)
    assert found is not None and found.value == "authenticated"


async def test_without_credentials_etcd_refuses(auth_endpoint, kv_for) -> None:
    kv = kv_for(auth_endpoint)
    with pytest.raises(ConfigError, match="etcd refused our credentials"):
        await kv.put(_key(), "anonymous")


async def test_wrong_password_etcd_refuses(auth_endpoint, kv_for) -> None:
    kv = kv_for(auth_endpoint, auth=EtcdAuth("fleet", "wrong"))
    with pytest.raises(ConfigError, match="authentication failed"):
        await kv.get(_key())


async def test_key_outside_the_role_is_refused(auth_endpoint, kv_for) -> None:
    kv = kv_for(auth_endpoint, auth=EtcdAuth("fleet", "fleetpw"))
    with pytest.raises(ConfigError, match="permission denied"):
        await kv.put("/elsewhere/x", "nope")


async def test_expired_token_is_replaced_after_one_failed_call(auth_endpoint, kv_for) -> None:
    kv = kv_for(auth_endpoint, auth=EtcdAuth("fleet", "fleetpw"))
    key = _key()
    await kv.put(key, "before")
    kv._token = "expired.token"  # what etcd forgets after --auth-token-ttl
    with pytest.raises(RegistryUnavailable, match="auth token"):
        await kv.get(key)
    found = await kv.get(key)
    assert found is not None and found.value == "before"
