"""The KV port on a real etcd v3 cluster: the only module that imports aetcd and grpc.

`EtcdKV` owns the gRPC channel and everything fleetd needs that aetcd's `Client` lacks: a
list of endpoints as one multi-address gRPC target with pick_first (failover), keepalive with
a ping timeout (a hung member is detected), a deadline on every unary call, TLS,
user/password auth (the token etcd trades for them is sent on every call and fetched again
after it expires), one watch stream per `watch_prefix` with the `hasleader` guard, and
translation of gRPC errors into `fleetd.errors`.

It drives aetcd's generated etcd stubs (`aetcd.rpc`) directly rather than `aetcd.Client`,
whose channel cannot use TLS and whose shared watch stream hides stream ends.
Resuming broken watches is the caller's job (`fleetd.registry.watch.follow`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import grpc
from aetcd import rpc

from fleetd.errors import Compacted, ConfigError, FleetError, NotFound, RegistryUnavailable
from fleetd.observe import NoRecorder, Recorder
from fleetd.registry.kv import (
    Compare,
    KeyValue,
    Listing,
    Op,
    Put,
    TxnResult,
    WatchEvent,
)
from fleetd.registry.permissions import Grant, role_name

DEFAULT_PORT = 2379

CHANNEL_OPTIONS: dict[str, int | str] = {
    "grpc.lb_policy_name": "pick_first",  # round_robin stalls watches on a hung member
    "grpc.keepalive_time_ms": 5000,  # >= etcd's --grpc-keepalive-min-time (5 s)
    "grpc.keepalive_timeout_ms": 2000,
    "grpc.http2.ping_timeout_ms": 2000,  # without it a frozen member is never left
    "grpc.keepalive_permit_without_calls": 0,  # etcd 3.4 refuses pings without streams
    "grpc.http2.max_pings_without_data": 0,
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 3000,  # default 120 s would outlast an etcd restart
    "grpc.max_receive_message_length": 2**31 - 1,  # like clientv3: big prefix listings
    "grpc.use_local_subchannel_pool": 1,  # a connection per client: no sharing with others in-process
}

_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INTERNAL,
}

_TARGETS = {
    "create": rpc.Compare.CREATE, "mod": rpc.Compare.MOD,
    "version": rpc.Compare.VERSION, "value": rpc.Compare.VALUE,
}
_RESULTS = {
    "==": rpc.Compare.EQUAL, "!=": rpc.Compare.NOT_EQUAL,
    "<": rpc.Compare.LESS, ">": rpc.Compare.GREATER,
}
_ACCESS = {"read": rpc.Permission.READ, "write": rpc.Permission.WRITE,
           "readwrite": rpc.Permission.READWRITE}
_REQUIRE_LEADER = (("hasleader", "true"),)
_AUTH_REFUSALS = ("user name is empty", "authentication failed", "permission denied")
Metadata = tuple[tuple[str, str], ...]


# configuration ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """PEM files for a TLS connection; `server_name` overrides the name checked in the cert."""

    ca: str | Path | None = None
    cert: str | Path | None = None
    key: str | Path | None = None
    server_name: str | None = None


@dataclass(frozen=True, slots=True)
class EtcdAuth:
    """An etcd user; fleetd trades the password for a token (Auth.Authenticate) sent on calls."""

    username: str
    password: str = field(repr=False)


def _split_endpoint(endpoint: str) -> tuple[str, str, int]:
    """"http://10.0.0.1:2379" -> ("http", "10.0.0.1", 2379); a bare "host:port" is http."""
    url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"etcd endpoint {endpoint!r}: expected http(s)://host:port")
    try:
        port = url.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConfigError(f"etcd endpoint {endpoint!r}: {exc}") from exc
    return url.scheme, url.hostname, port


def _ip_version(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def grpc_target(endpoints: Sequence[str]) -> str:
    """One gRPC target for all endpoints, so pick_first fails over between them.

    IP literals become "ipv4:a:p1,b:p2" (or "ipv6:[a]:p1,..."); one host name becomes
    "dns:///name:port" (gRPC walks every address it resolves to).
    """
    if not endpoints:
        raise ConfigError("etcd endpoints: at least one endpoint is required")
    hosts = [_split_endpoint(e)[1:] for e in endpoints]
    versions = {_ip_version(h) for h, _ in hosts}
    if versions == {4}:
        return "ipv4:" + ",".join(f"{h}:{p}" for h, p in hosts)
    if versions == {6}:
        return "ipv6:" + ",".join(f"[{h}]:{p}" for h, p in hosts)
    if len(hosts) == 1:
        return f"dns:///{hosts[0][0]}:{hosts[0][1]}"
    raise ConfigError(
        "etcd endpoints: list IP addresses of one family, or one DNS name that resolves "
        f"to every member (got {', '.join(endpoints)})"
    )


def _wants_tls(endpoints: Sequence[str], tls: TLSFiles | None) -> bool:
    schemes = {_split_endpoint(e)[0] for e in endpoints}
    if len(schemes) > 1:
        raise ConfigError("etcd endpoints: mix of http:// and https://")
    return schemes == {"https"} or tls is not None


def _read(path: str | Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"etcd TLS file {path}: {exc.strerror}") from exc


def _credentials(tls: TLSFiles) -> grpc.ChannelCredentials:
    if (tls.cert is None) != (tls.key is None):
        raise ConfigError("etcd TLS: give both a client cert and its key, or neither")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca), private_key=_read(tls.key),
        certificate_chain=_read(tls.cert),
    )


# error translation ------------------------------------------------------------------------


def _translate(err: grpc.aio.AioRpcError) -> FleetError:
    code, details = err.code(), err.details() or ""
    if "required revision has been compacted" in details:
        return Compacted(0)
    if code == grpc.StatusCode.NOT_FOUND and "lease" in details:
        return NotFound(details)
    if "invalid auth token" in details or "revision of auth store is old" in details:
        # expired, or issued before users or roles changed: the next call authenticates again
        return RegistryUnavailable(f"etcd auth token expired: {details}")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED) or any(
            words in details for words in _AUTH_REFUSALS):
        return ConfigError(f"etcd refused our credentials: {details}")
    if code in _TRANSIENT:
        return RegistryUnavailable(f"etcd {code.name.lower()}: {details}")
    return FleetError(f"etcd rejected the request ({code.name}): {details}")


def _error_code(exc: FleetError) -> str:
    """A short, bounded label for a failed call: the gRPC status code, else the error kind."""
    cause = exc.__cause__
    if isinstance(cause, grpc.aio.AioRpcError):
        return str(cause.code().name).lower()
    if isinstance(exc, Compacted):
        return "compacted"
    return "usage" if isinstance(cause, grpc.aio.UsageError) else type(exc).__name__.lower()


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise _translate(exc) from exc
    except grpc.aio.UsageError as exc:  # e.g. the channel was closed under us
        raise RegistryUnavailable(f"etcd channel unusable: {exc}") from exc


# protobuf conversion ----------------------------------------------------------------------


def _prefix_end(prefix: bytes) -> bytes:
    """The first key after every key starting with `prefix` (etcd's range_end)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\0"
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _keyvalue(kv: rpc.KeyValue) -> KeyValue:
    return KeyValue(kv.key.decode(), kv.value.decode(), kv.create_revision, kv.mod_revision,
                    kv.lease)


def _compare(c: Compare) -> rpc.Compare:
    msg = rpc.Compare(key=c.key.encode(), target=_TARGETS[c.target], result=_RESULTS[c.op])
    if c.target == "value":
        msg.value = str(c.value).encode()
    else:
        setattr(msg, {"create": "create_revision", "mod": "mod_revision"}.get(c.target, "version"),
                int(c.value))
    return msg


def _request_op(op: Op) -> rpc.RequestOp:
    if isinstance(op, Put):
        put = rpc.PutRequest(key=op.key.encode(), value=op.value.encode(), lease=op.lease)
        return rpc.RequestOp(request_put=put)
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=op.key.encode()))


def _event(ev: rpc.Event) -> WatchEvent:
    if ev.type == rpc.Event.DELETE:
        return WatchEvent("delete", ev.kv.key.decode(), "", ev.kv.mod_revision)
    return WatchEvent("put", ev.kv.key.decode(), ev.kv.value.decode(), ev.kv.mod_revision)


# streams --------------------------------------------------------------------------------


async def _first_write(call: grpc.aio.StreamStreamCall, request: object) -> None:
    """Send a stream's first request, or fail at once if the call ends before it is sent.

    grpc's `write` first waits for the call's initial metadata to go out. A call cancelled
    while that is under way (its channel closed by `EtcdKV._rotate`) never sends it, and a
    bare `write` would wait forever, with no error: the watch goes deaf. Cancelling the
    write when the call ends turns that into an interrupted call (`RegistryUnavailable`).
    """
    if call.done():
        raise RegistryUnavailable("etcd stream ended before it opened")
    write = asyncio.ensure_future(call.write(request))
    call.add_done_callback(lambda _: write.cancel())
    try:
        await write
    except asyncio.InvalidStateError as exc:  # the call ended between the check and the write
        raise RegistryUnavailable(f"etcd stream ended before it opened: {exc}") from exc


# the adapter ------------------------------------------------------------------------------


class EtcdKV:
    """The KV port on etcd. Create inside the event loop that will use it."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        request_timeout: float = 2.0,
        tls: TLSFiles | None = None,
        auth: EtcdAuth | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.recorder = recorder or NoRecorder()
        self.target = grpc_target(self.endpoints)
        self.auth = auth
        self._token: str | None = None
        self.request_timeout = request_timeout
        self._credentials = _credentials(tls or TLSFiles()) if _wants_tls(endpoints, tls) else None
        self._options = dict(CHANNEL_OPTIONS)
        if tls is not None and tls.server_name:
            self._options["grpc.ssl_target_name_override"] = tls.server_name
        self._chan: grpc.aio.Channel | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._keepalives: dict[int, tuple[grpc.aio.Channel, grpc.aio.StreamStreamCall]] = {}
        self._keepalive_lock = asyncio.Lock()  # one round trip at a time on a stream
        self._auth_lock = asyncio.Lock()

    def _channel(self) -> grpc.aio.Channel:
        if self._chan is None:
            options = list(self._options.items())
            if self._credentials is None:
                self._chan = grpc.aio.insecure_channel(self.target, options=options)
            else:
                self._chan = grpc.aio.secure_channel(self.target, self._credentials,
                                                     [*options, *self._tls_name()])
        return self._chan

    def _tls_name(self) -> list[tuple[str, str]]:
        """The name every member's certificate is checked against: TLSFiles.server_name, else
        the host of the first endpoint (a multi-address target has no name of its own)."""
        if "grpc.ssl_target_name_override" in self._options:
            return []
        return [("grpc.ssl_target_name_override", _split_endpoint(self.endpoints[0])[1])]

    async def _md(self, *extra: tuple[str, str]) -> Metadata:
        """Call metadata: `extra` plus, with auth, the token (authenticating once if needed)."""
        if self.auth is not None and self._token is None:
            async with self._auth_lock:  # one Authenticate (a bcrypt check in etcd) for all callers
                if self._token is None:
                    self._token = await self._authenticate(self.auth)
        return (*extra, ("token", self._token)) if self._token else extra

    async def _authenticate(self, auth: EtcdAuth) -> str:
        request = rpc.AuthenticateRequest(name=auth.username, password=auth.password)
        with _translated():
            resp = await rpc.AuthStub(self._channel()).Authenticate(request, timeout=self.request_timeout)
        return str(resp.token)

    @contextmanager
    def _guard(self, op: str, timed: bool = True) -> Iterator[None]:
        """`_translated`; forget an expired auth token so the next call gets a new one, and
        leave a member that let a call time out (it may be frozen: see `_rotate`).
        Reports the call (kind `op`; its duration if `timed`) and its error to the recorder."""
        chan = self._chan
        started = time.perf_counter()
        try:
            with _translated():
                yield
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our caller is being cancelled
            self._record(op, started, timed, "interrupted")
            # the call was cancelled under us: `_rotate` closed its channel
            raise RegistryUnavailable("etcd call interrupted: moving to another member") from None
        except FleetError as exc:
            self._record(op, started, timed, _error_code(exc))
            if isinstance(exc, RegistryUnavailable):
                self._recover(exc, chan)
            raise
        self._record(op, started, timed, None)

    def _record(self, op: str, started: float, timed: bool, error: str | None) -> None:
        self.recorder.etcd_request(op, time.perf_counter() - started if timed else None, error)

    def _recover(self, exc: RegistryUnavailable, chan: grpc.aio.Channel | None) -> None:
        if "auth token" in str(exc):
            self._token = None
        if "deadline_exceeded" in str(exc) and chan is not None and chan is self._chan:
            self._rotate()

    def _rotate(self) -> None:
        """Drop the channel and put the first endpoint last, so the next call goes elsewhere.

        A frozen member keeps its TCP connections up: gRPC only notices through its keep-alive
        ping, seconds later, while every call and watch on it hangs. One timed-out call is
        enough to move on; the watches on the old channel break and resume from their last
        revision on the new one, so no event is lost. With one endpoint this just reconnects.
        """
        old, self._chan = self._chan, None
        self.endpoints = self.endpoints[1:] + self.endpoints[:1]
        self.target = grpc_target(self.endpoints)
        if old is not None:
            task = asyncio.get_running_loop().create_task(old.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _kv(self) -> rpc.KVStub:
        return rpc.KVStub(self._channel())

    def _lease(self) -> rpc.LeaseStub:
        return rpc.LeaseStub(self._channel())

    # reads ------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        with self._guard("get"):
            resp = await self._kv().Range(rpc.RangeRequest(key=key.encode()),
                                          timeout=self.request_timeout, metadata=await self._md())
        return _keyvalue(resp.kvs[0]) if resp.kvs else None

    async def get_prefix(self, prefix: str) -> Listing:
        raw = prefix.encode()
        request = rpc.RangeRequest(key=raw, range_end=_prefix_end(raw))
        with self._guard("range"):
            resp = await self._kv().Range(request, timeout=self.request_timeout, metadata=await self._md())
        return Listing(tuple(_keyvalue(kv) for kv in resp.kvs), resp.header.revision)

    async def get_prefixes(self, prefixes: Sequence[str]) -> list[Listing]:
        ranges = [rpc.RequestOp(request_range=rpc.RangeRequest(key=raw, range_end=_prefix_end(raw)))
                  for raw in (p.encode() for p in prefixes)]
        with self._guard("range"):
            resp = await self._kv().Txn(rpc.TxnRequest(success=ranges), timeout=self.request_timeout,
                                        metadata=await self._md())
        revision = resp.header.revision
        return [Listing(tuple(_keyvalue(kv) for kv in r.response_range.kvs), revision)
                for r in resp.responses]

    async def get_keys(self, prefix: str) -> Listing:
        raw = prefix.encode()
        request = rpc.RangeRequest(key=raw, range_end=_prefix_end(raw), keys_only=True)
        with self._guard("range"):
            resp = await self._kv().Range(request, timeout=self.request_timeout, metadata=await self._md())
        return Listing(tuple(_keyvalue(kv) for kv in resp.kvs), resp.header.revision)

    async def count(self, prefix: str) -> int:
        raw = prefix.encode()
        request = rpc.RangeRequest(key=raw, range_end=_prefix_end(raw), count_only=True)
        with self._guard("range"):
            resp = await self._kv().Range(request, timeout=self.request_timeout, metadata=await self._md())
        return int(resp.count)

    # writes -----------------------------------------------------------------------------

    async def put(self, key: str, value: str, lease: int = 0) -> int:
        request = rpc.PutRequest(key=key.encode(), value=value.encode(), lease=lease)
        with self._guard("put"):
            resp = await self._kv().Put(request, timeout=self.request_timeout, metadata=await self._md())
        return resp.header.revision

    async def delete(self, key: str) -> bool:
        with self._guard("delete"):
            resp = await self._kv().DeleteRange(rpc.DeleteRangeRequest(key=key.encode()),
                                                timeout=self.request_timeout, metadata=await self._md())
        return resp.deleted > 0

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        request = rpc.TxnRequest(
            compare=[_compare(c) for c in compares],
            success=[_request_op(op) for op in success],
            failure=[_request_op(op) for op in failure],
        )
        with self._guard("txn"):
            resp = await self._kv().Txn(request, timeout=self.request_timeout, metadata=await self._md())
        return TxnResult(resp.succeeded, resp.header.revision)

    async def compact(self, revision: int, physical: bool = False) -> None:
        """Drop history before `revision` (an operator/test tool; not part of the KV port).

        Compacting at or below an earlier compaction is a no-op, as in `MemoryKV`.
        """
        try:
            with self._guard("compact"):
                await self._kv().Compact(
                    rpc.CompactionRequest(revision=revision, physical=physical),
                    timeout=self.request_timeout, metadata=await self._md())
        except Compacted:
            return

    # leases -----------------------------------------------------------------------------

    async def grant(self, ttl: int) -> int:
        with self._guard("lease"):
            resp = await self._lease().LeaseGrant(rpc.LeaseGrantRequest(TTL=ttl),
                                                  timeout=self.request_timeout, metadata=await self._md())
        if resp.error:
            raise RegistryUnavailable(f"etcd refused a lease: {resp.error}")
        return resp.ID

    async def refresh(self, lease: int, timeout: float | None = None) -> int:
        """One keep-alive round trip; etcd answers TTL 0 for an expired or unknown lease.

        The round trip goes over the lease's keep-alive stream, opened at the first refresh
        and kept open (opening a stream per keep-alive cost each host about 1 ms of CPU a
        second); any error, a timeout or a new channel closes it and the next refresh opens
        another. A timeout counts as etcd's deadline_exceeded (the member is left)."""
        with self._guard("lease"):
            try:
                async with self._keepalive_lock, asyncio.timeout(timeout or self.request_timeout):
                    return await self._keepalive_round(lease)
            except TimeoutError:
                self._drop_keepalive(lease)
                raise RegistryUnavailable("etcd deadline_exceeded: no keep-alive reply in time") from None
            except BaseException:
                self._drop_keepalive(lease)
                raise

    async def _keepalive_round(self, lease: int) -> int:
        request = rpc.LeaseKeepAliveRequest(ID=lease)
        open_ = self._keepalives.get(lease)
        if open_ is not None and open_[0] is self._chan and not open_[1].done():
            call = open_[1]
            try:
                await call.write(request)
            except asyncio.InvalidStateError as exc:
                raise RegistryUnavailable(f"etcd keep-alive stream ended: {exc}") from exc
        else:
            self._drop_keepalive(lease)
            metadata = await self._md()  # may await: pick the channel after it
            chan = self._channel()
            call = rpc.LeaseStub(chan).LeaseKeepAlive(metadata=metadata)
            self._keepalives[lease] = (chan, call)
            await _first_write(call, request)
        reply = await call.read()
        if reply is grpc.aio.EOF:
            raise RegistryUnavailable("etcd closed the lease keep-alive stream without a reply")
        return int(reply.TTL)

    def _drop_keepalive(self, lease: int) -> None:
        open_ = self._keepalives.pop(lease, None)
        if open_ is not None:
            open_[1].cancel()

    async def revoke(self, lease: int) -> None:
        """Revoke a lease and delete its keys; an already-gone lease is not an error."""
        self._drop_keepalive(lease)
        try:
            with self._guard("lease"):
                await self._lease().LeaseRevoke(rpc.LeaseRevokeRequest(ID=lease),
                                                timeout=self.request_timeout, metadata=await self._md())
        except NotFound:
            return

    # watches ----------------------------------------------------------------------------

    def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        return self._watch(prefix, start_revision)

    async def _watch(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        """One watch on its own gRPC stream; ends only by raising (or by the caller closing)."""
        raw = prefix.encode()
        create = rpc.WatchCreateRequest(key=raw, range_end=_prefix_end(raw),
                                        start_revision=max(start_revision, 0))
        with self._guard("watch"):
            metadata = await self._md(*_REQUIRE_LEADER)  # may await: pick the channel after it
            call = rpc.WatchStub(self._channel()).Watch(metadata=metadata)
        try:
            with self._guard("watch"):
                await _first_write(call, rpc.WatchRequest(create_request=create))
            while True:
                for event in await self._next_events(call):
                    yield event
        finally:
            call.cancel()

    async def _next_events(self, call: grpc.aio.StreamStreamCall) -> list[WatchEvent]:
        with self._guard("watch", timed=False):
            resp = await call.read()
        if resp is grpc.aio.EOF:
            raise RegistryUnavailable("etcd closed the watch stream")
        if resp.compact_revision:
            raise Compacted(resp.compact_revision)
        if resp.canceled:
            raise RegistryUnavailable(f"etcd cancelled the watch: {resp.cancel_reason}")
        return [_event(ev) for ev in resp.events]

    # users (an operator's tool, `fleetd etcd-setup`; needs etcd's root role) -----------------

    async def set_user(self, user: str, password: str, grants: Sequence[Grant]) -> None:
        """Create or update the etcd user `user`: its password, and one role of its own
        holding exactly `grants` (new ones granted before stale ones are revoked, so a fleetd
        already running as `user` is never refused what it keeps)."""
        auth, role = rpc.AuthStub(self._channel()), role_name(user)
        wanted = [rpc.Permission(permType=_ACCESS[g.access], key=g.key.encode(),
                                 range_end=_prefix_end(g.key.encode()) if g.prefix else b"") for g in grants]
        with self._guard("auth"):
            options = {"timeout": self.request_timeout, "metadata": await self._md()}
            if role not in (await auth.RoleList(rpc.AuthRoleListRequest(), **options)).roles:
                await auth.RoleAdd(rpc.AuthRoleAddRequest(name=role), **options)
            held = (await auth.RoleGet(rpc.AuthRoleGetRequest(role=role), **options)).perm
            for perm in wanted:
                await auth.RoleGrantPermission(rpc.AuthRoleGrantPermissionRequest(name=role, perm=perm),
                                               **options)
            kept = {(w.key, w.range_end) for w in wanted}  # a grant of the same range replaces it
            for perm in [p for p in held if (p.key, p.range_end) not in kept]:
                await auth.RoleRevokePermission(rpc.AuthRoleRevokePermissionRequest(
                    role=role, key=perm.key, range_end=perm.range_end), **options)
            if user in (await auth.UserList(rpc.AuthUserListRequest(), **options)).users:
                await auth.UserChangePassword(rpc.AuthUserChangePasswordRequest(
                    name=user, password=password), **options)
            else:
                await auth.UserAdd(rpc.AuthUserAddRequest(name=user, password=password), **options)
            await auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user=user, role=role), **options)

    async def close(self) -> None:
        for lease in list(self._keepalives):
            self._drop_keepalive(lease)
        if self._chan is not None:
            chan, self._chan = self._chan, None
            await chan.close()
