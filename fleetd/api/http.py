"""The HTTP server for API v1: routes, error mapping, listening sockets (the only aiohttp user).

Owns the transport: paths under /fleet/v1 (and fleet's legacy /v1-alpha), 405/404/415 answers,
JSON body decoding and its size limit, the `{"error":{"code","message"}}` body for every failure,
the `Server: fleetd/<version>` header, and the unix socket (stale file removal, mode, group) plus
optional TCP listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import ssl
import stat
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler
from pydantic import ValidationError

from fleetd.api import access, alarms, batch, endpoints, filters, handlers, handshake, openapi, relay, schema
from fleetd.api import dashboard as dashboard_api
from fleetd.api import lifecycle as lifecycle_api
from fleetd.api import lockout as lockout_api
from fleetd.api import metadata as metadata_api
from fleetd.api import moves as moves_api
from fleetd.api import summary as summary_api
from fleetd.api import watch as watch_api
from fleetd.api.snapshots import Snapshots
from fleetd.errors import ConfigError, FleetError, InvalidInput
from fleetd.logs import get_logger
from fleetd.model import remote
from fleetd.observe import NoRecorder, Recorder
from fleetd.registry.store import Registry

PREFIXES = ("/fleet/v1", "/v1-alpha")
JSON = "application/json"
REGISTRY_KEY = web.AppKey("registry", Registry)
LIMIT_KEY = web.AppKey("page_limit", int)
SNAPSHOTS_KEY = web.AppKey("snapshots", Snapshots)
RELAY_KEY = web.AppKey("relay", relay.Relay)
RECORDER_KEY = web.AppKey("recorder", Recorder)
SELF_KEY = web.AppKey("machine_id", str)
POLICY_KEY = web.AppKey("policy", str)
LOCK_TTL_KEY = web.AppKey("lock_ttl", float)
MAX_BODY = 64 * 1024 * 1024  # a POST /units of MAX_BATCH entries with sizeable unit files
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
W = TypeVar("W", bound=schema.Wire)
_UTF8 = ("utf-8", "utf8")  # JSON is UTF-8 (RFC 8259); any other declared charset is 415

def error_response(code: int, message: str) -> web.Response:
    return web.Response(
        status=code, text=schema.ErrorBody.of(code, message).to_json(), content_type=JSON
    )


def _reply(result: handlers.Result) -> web.Response:
    status, body = result
    if body is None:
        return web.Response(status=status)
    return web.Response(status=status, text=body.to_json(), content_type=JSON)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as fleet's JSON error body."""
    try:
        return await handler(request)
    except FleetError as exc:
        return error_response(handlers.status_for(exc), str(exc))
    except web.HTTPMethodNotAllowed:
        return error_response(405, "method not allowed")
    except web.HTTPNotFound:
        return error_response(404, "not found")
    except web.HTTPException as exc:
        return error_response(exc.status, exc.reason)


def _only(methods: str) -> Handler:
    async def refuse(request: web.Request) -> web.Response:
        return error_response(405, f"only {methods} supported against this resource")

    return refuse


def _reg(request: web.Request) -> Registry:
    return request.app[REGISTRY_KEY]


def _token(request: web.Request) -> str | None:
    return request.query.get("nextPageToken") or None


def _limit(request: web.Request) -> int:
    """Items per page: the server's (fleet's 100), or fleetd's `?pageSize=` (1..MAX_PAGE_SIZE)."""
    text = request.query.get("pageSize")
    if text is None:
        return request.app[LIMIT_KEY]
    if not text.isdigit() or not 1 <= int(text) <= handlers.MAX_PAGE_SIZE:
        raise InvalidInput(f"pageSize must be a whole number from 1 to {handlers.MAX_PAGE_SIZE}")
    return int(text)


async def list_units(request: web.Request) -> web.Response:
    wanted = filters.parse_unit_filter(request.query)
    return _reply(await handlers.list_units(_reg(request), _token(request), _limit(request),
                                            wanted, request.app[SNAPSHOTS_KEY]))


async def get_unit(request: web.Request) -> web.Response:
    return _reply(await handlers.get_unit(_reg(request), request.match_info["name"]))


async def put_unit(request: web.Request) -> web.Response:
    body = await _json_body(request, schema.Unit)
    return _reply(await handlers.put_unit(_reg(request), request.match_info["name"], body))


async def post_units(request: web.Request) -> web.Response:
    body = await _json_body(request, schema.UnitBatch)
    return _reply(await batch.post_units(_reg(request), body))


async def delete_units(request: web.Request) -> web.Response:
    body = await _json_body(request, schema.UnitNames)
    return _reply(await batch.delete_units(_reg(request), body))


async def _json_body(request: web.Request, model: type[W]) -> W:
    types = request.headers.getall("Content-Type", [])
    charset = (request.charset or "utf-8").lower()
    if len(types) != 1 or request.content_type != JSON or charset not in _UTF8:
        raise web.HTTPUnsupportedMediaType(reason="expected Content-Type application/json")
    try:
        raw = (await request.read()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"unable to decode body: not valid UTF-8 at byte {exc.start}") from exc
    try:
        body = model.from_json(raw)
    except ValidationError as exc:
        raise InvalidInput(f"unable to decode body: {_first_error(exc, raw)}") from exc
    repeated = schema.repeated_key(raw)
    if repeated is not None:
        raise InvalidInput(f"unable to decode body: duplicate key {json.dumps(repeated)}")
    return body


def _first_error(exc: ValidationError, raw: str) -> str:
    """`loc: msg`; inside a POST /units entry the unit's name stands for its index."""
    err = exc.errors()[0]
    loc, msg = list(err.get("loc", ())), err.get("msg", "invalid")
    named = _entry_name(raw, loc[1]) if len(loc) > 2 and loc[0] == "units" else None
    if named is not None:
        return f'unit "{named}": ' + _located(loc[2:], msg)
    return _located(loc, msg)


def _located(loc: list, msg: str) -> str:
    return f"{'.'.join(str(p) for p in loc) or 'body'}: {msg}"


def _entry_name(raw: str, index: object) -> str | None:
    try:
        name = json.loads(raw)["units"][index].get("name")
    except (ValueError, LookupError, TypeError, AttributeError):
        return None
    return name if isinstance(name, str) and name else None


async def delete_unit(request: web.Request) -> web.Response:
    return _reply(await handlers.delete_unit(_reg(request), request.match_info["name"]))


async def list_states(request: web.Request) -> web.Response:
    q = request.query
    return _reply(
        await handlers.list_states(
            _reg(request),
            q.get("unitName") or None,
            q.get("machineID") or None,
            _token(request),
            _limit(request),
            request.app[SNAPSHOTS_KEY],
        )
    )


async def get_state(request: web.Request) -> web.Response:
    return _reply(await handlers.get_state(_reg(request), request.match_info["name"]))


async def list_machines(request: web.Request) -> web.Response:
    return _reply(
        await handlers.list_machines(_reg(request), _token(request), _limit(request),
                                     request.app[SNAPSHOTS_KEY])
    )


async def list_alarms(request: web.Request) -> web.Response:
    return _reply(await alarms.list_alarms(_reg(request)))


async def clear_alarm(request: web.Request) -> web.Response:
    return _reply(await alarms.clear_alarm(_reg(request), request.match_info["kind"]))


async def list_endpoints(request: web.Request) -> web.Response:
    return _reply(await endpoints.list_all(_reg(request)))


async def get_endpoints(request: web.Request) -> web.Response:
    return _reply(await endpoints.list_unit(_reg(request), request.match_info["name"]))


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(text=openapi.document_json(), content_type=JSON)


async def patch_machines(request: web.Request) -> web.Response:
    body = await _json_body(request, metadata_api.MetadataPatch)
    return _reply(await metadata_api.patch_machines(_reg(request), body))


async def put_machine_state(request: web.Request) -> web.Response:
    body = await _json_body(request, schema.MachineStateRequest)
    return _reply(await lifecycle_api.set_state(_reg(request), request.match_info["machine"], body,
                                                request.app[SELF_KEY] or None))


async def lock_machine(request: web.Request) -> web.Response:
    body = await _json_body(request, schema.LockRequest)
    return _reply(await lifecycle_api.lock(_reg(request), request.match_info["machine"], body,
                                           request.app[SELF_KEY] or None, request.app[LOCK_TTL_KEY]))


async def unlock_machine(request: web.Request) -> web.Response:
    return _reply(await lifecycle_api.unlock(_reg(request), request.match_info["machine"],
                                             request.app[SELF_KEY] or None))


async def get_rebalance(request: web.Request) -> web.Response:
    max_moves = moves_api.parse_max_moves(request.query.get("maxMoves"))
    return _reply(await moves_api.rebalance_plan(_reg(request), max_moves, request.app[POLICY_KEY]))


async def move_unit(request: web.Request) -> web.Response:
    body = await _json_body(request, schema.MoveRequest)
    return _reply(await moves_api.move_unit(_reg(request), request.match_info["name"], body,
                                            request.app[SELF_KEY] or None, request.app[POLICY_KEY]))


WATCH_WRITE_TIMEOUT = 30.0  # a client that takes no bytes for this long is dropped
STOPPING_KEY = web.AppKey("stopping", asyncio.Event)


async def _stop_watches(app: web.Application) -> None:
    app[STOPPING_KEY].set()


async def watch(request: web.Request) -> web.StreamResponse:
    """Server-sent events of units/states/machines (see fleetd.api.watch)."""
    kinds = watch_api.parse_kinds(request.query.get("kinds"))
    last_id = watch_api.parse_last_id(request.headers.get("Last-Event-ID"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    stopping, transport = request.app[STOPPING_KEY], request.transport
    frames = watch_api.stream(_reg(request), kinds, last_id, alive=lambda: not stopping.is_set()
                              and transport is not None and not transport.is_closing())
    try:
        async for text in frames:
            await asyncio.wait_for(response.write(text.encode()), WATCH_WRITE_TIMEOUT)
    except (ConnectionError, TimeoutError):
        pass
    finally:
        await frames.aclose()
    return response


async def unit_status(request: web.Request) -> web.StreamResponse:
    return await _relayed(request, remote.make_request("status", request.match_info["name"]))


async def unit_restart(request: web.Request) -> web.StreamResponse:
    return await _relayed(request, remote.make_request("restart", request.match_info["name"]))


async def unit_journal(request: web.Request) -> web.StreamResponse:
    q = request.query
    lines, follow, output = remote.journal_query(q.get("lines"), q.get("follow"), q.get("output"))
    return await _relayed(request, remote.make_request(
        "journal", request.match_info["name"], lines, follow, output))


async def _relayed(request: web.Request, exec_request: remote.ExecRequest) -> web.StreamResponse:
    """Stream the owning host's answer as NDJSON (see `fleetd.api.relay`); 504 if it is silent."""
    try:
        async with request.app[RELAY_KEY].open(exec_request) as stream:
            response = web.StreamResponse(headers={"Content-Type": relay.NDJSON})
            await response.prepare(request)
            await stream.pipe(response.write, lambda: request.transport is None
                              or request.transport.is_closing())
    except relay.NoAnswer as exc:
        return error_response(504, str(exc))
    return response


async def get_leader(request: web.Request) -> web.Response:
    return _reply(await handlers.get_leader(_reg(request)))


async def get_summary(request: web.Request) -> web.Response:
    window = summary_api.parse_window(request.query)
    return _reply(await summary_api.get_summary(_reg(request), window))


def _answer(answer: dashboard_api.Answer) -> web.Response:
    """A dashboard answer (page, asset, login redirect, login page) as a response."""
    return web.Response(status=answer.status, body=answer.body, content_type=answer.content_type,
                        charset="utf-8", headers=dict(answer.headers))


async def dashboard_page(request: web.Request) -> web.Response:
    return _answer(dashboard_api.page())


async def dashboard_asset(request: web.Request) -> web.Response:
    found = dashboard_api.asset(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    return _answer(found)


def _add_routes(app: web.Application, prefix: str) -> None:
    unit, state = prefix + "/units/{name}", prefix + "/state/{name}"
    table: list[tuple[str, dict[str, Handler], str]] = [
        (prefix + "/units", {"GET": list_units, "POST": post_units, "DELETE": delete_units},
         "GET, POST and DELETE"),
        (unit, {"GET": get_unit, "PUT": put_unit, "DELETE": delete_unit}, "GET, PUT and DELETE"),
        (prefix + "/state", {"GET": list_states}, "GET"),
        (state, {"GET": get_state}, "GET"),
        (unit + "/status", {"GET": unit_status}, "GET"),
        (unit + "/journal", {"GET": unit_journal}, "GET"),
        (unit + "/restart", {"POST": unit_restart}, "POST"),
        (unit + "/move", {"POST": move_unit}, "POST"),
        (prefix + "/machines", {"GET": list_machines, "PATCH": patch_machines}, "GET and PATCH"),
        (prefix + "/machines/{machine}/state", {"PUT": put_machine_state}, "PUT"),
        (prefix + "/machines/{machine}/lock", {"POST": lock_machine, "DELETE": unlock_machine},
         "POST and DELETE"),
        (prefix + "/discovery", {"GET": get_openapi}, "GET"),
        (prefix + "/watch", {"GET": watch}, "GET"),
        (prefix + "/alarms", {"GET": list_alarms}, "GET"),
        (prefix + "/leader", {"GET": get_leader}, "GET"),
        (prefix + "/rebalance", {"GET": get_rebalance}, "GET"),
        (prefix + "/summary", {"GET": get_summary}, "GET"),
        (prefix + "/alarms/{kind}", {"DELETE": clear_alarm}, "DELETE"),
        (prefix + "/endpoints", {"GET": list_endpoints}, "GET"),
        (prefix + "/endpoints/{name}", {"GET": get_endpoints}, "GET"),
        (prefix + "/openapi.json", {"GET": get_openapi}, "GET"),
    ]
    for path, methods, allowed in table:
        resource = app.router.add_resource(path)
        for method, handler in methods.items():
            resource.add_route(method, handler)
        resource.add_route("*", _only(allowed))


def _add_metrics(app: web.Application, render: Callable[[], tuple[bytes, str]]) -> None:
    """GET /metrics at the root, as fleet served it (over TCP under the same token rule)."""

    async def scrape(request: web.Request) -> web.Response:
        body, content_type = render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    resource = app.router.add_resource("/metrics")
    resource.add_route("GET", scrape)
    resource.add_route("*", _only("GET"))


async def _server_header(version: str, request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = f"fleetd/{version}"


def _over_unix_socket(request: web.Request) -> bool:
    """Whether the request came over the unix socket (anything unknown counts as TCP)."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and sock.family == socket.AF_UNIX


def _tcp_auth(auth: str, token: str | None, lockout: lockout_api.Lockout,
              recorder: Recorder) -> Middleware:
    """Middleware: requests over TCP must prove what `auth` (api_auth) asks, see
    `access.by_certificate`; the unix socket needs nothing. A missing client certificate is
    401 and logged (a bad one never gets here: it failed the handshake, `fleetd.api.handshake`)."""
    log = get_logger("api")

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _over_unix_socket(request):
            return await handler(request)
        decision = access.by_certificate(auth, _has_certificate(request))
        if decision == access.ADMIT:
            return await handler(request)
        if decision == access.REFUSE:
            recorder.api_auth_failure("missing_cert")
            log.warning("TCP API request without a client certificate refused",
                        client=request.remote or "?", method=request.method, path=request.path)
            return error_response(401, access.NO_CERTIFICATE)
        assert token is not None, "api_auth asks for a token but there is none"
        return await _check_token(request, handler, token, lockout, recorder)

    return check


def _has_certificate(request: web.Request) -> bool:
    """Whether the TLS handshake of the request's connection verified a client certificate."""
    transport = request.transport
    return bool(transport is not None and transport.get_extra_info("peercert"))


async def _check_token(request: web.Request, handler: Handler, token: str,
                       lockout: lockout_api.Lockout, recorder: Recorder) -> web.StreamResponse:
    """The request carries `Authorization: Bearer <token>` (or, GET/HEAD only, the dashboard's
    session cookie; `GET /?token=` logs a browser in, see fleetd.api.dashboard). An address that
    sent wrong tokens too often is refused with 429 (fleetd.api.lockout)."""
    client = request.remote or ""
    wait = lockout.blocked_for(client)
    if wait is not None:
        recorder.api_auth_failure("locked_out")
        return _locked_out(wait)
    header, cookie = request.headers.get("Authorization"), request.cookies.get(dashboard_api.COOKIE)
    if access.bearer_ok(header, token) or dashboard_api.cookie_ok(request.method, cookie, token):
        return await handler(request)
    response, failure = _without_token(request, header, token)
    if failure is not None:
        recorder.api_auth_failure(failure)
        if failure == "invalid":  # a wrong token counts towards the lockout, a missing one not
            lockout.failed(client)
    return response


def _without_token(request: web.Request, header: str | None, token: str
                   ) -> tuple[web.Response, str | None]:
    """The answer to a TCP request without a valid token or session, and how it failed
    (`missing`, `invalid`; None: a dashboard login with the right `?token=`)."""
    if request.path == "/" and request.method in dashboard_api.READ_METHODS:
        given = request.query.get("token")
        answer = dashboard_api.login(given, token, request.secure)
        failed = answer.status >= 400
        return _answer(answer), ("invalid" if header or given else "missing") if failed else None
    response = error_response(401, access.refusal(header))
    response.headers["WWW-Authenticate"] = access.REALM
    return response, "invalid" if header else "missing"


def _locked_out(wait: float) -> web.Response:
    response = error_response(429, f"too many failed token attempts from this address; retry "
                                   f"in {lockout_api.retry_after_header(wait)} s")
    response.headers["Retry-After"] = lockout_api.retry_after_header(wait)
    return response


def make_app(
    registry: Registry,
    version: str,
    *,
    page_limit: int = handlers.DEFAULT_PAGE_LIMIT,
    tcp_token: str | None = None,
    tcp_auth: str = "token",
    relayed: relay.Relay | None = None,
    metrics: Callable[[], tuple[bytes, str]] | None = None,
    recorder: Recorder | None = None,
    lockout: lockout_api.Lockout | None = None,
    machine_id: str = "",
    policy: str = "binpack",
    lock_ttl: float = 600.0,
) -> web.Application:
    """The API application over `registry`; pages hold at most `page_limit` items.

    With `tcp_token`, requests that arrive over TCP need it as a bearer token (the unix socket
    never does); `tcp_auth` (api_auth) says whether a client certificate is needed instead of
    it (`cert`, `tcp_token` None), as well (`token+cert`) or is enough without it
    (`token/cert`). `relayed` asks other hosts for status/journal/restart (default: a relay
    writing its requests without a lease). `metrics` renders GET /metrics (body, content type).
    `recorder` counts refused credentials; `lockout` remembers them per address (default: a fresh
    `Lockout` with the standard policy). `machine_id`: this fleetd's machine (what `self` means
    in /machines/self/...); `policy`: the cluster's scheduler policy (a move is checked with
    it); `lock_ttl`: the maintenance lock's lease TTL.
    """
    middlewares: list[Middleware] = [errors_middleware]
    recorder = recorder or NoRecorder()
    if tcp_token is not None or tcp_auth != "token":
        middlewares.insert(0, _tcp_auth(tcp_auth, tcp_token, lockout or lockout_api.Lockout(),
                                        recorder))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[RECORDER_KEY] = recorder
    app[REGISTRY_KEY] = registry
    app[LIMIT_KEY] = page_limit
    app[SNAPSHOTS_KEY] = Snapshots()
    app[STOPPING_KEY] = asyncio.Event()
    app.on_shutdown.append(_stop_watches)
    app[RELAY_KEY] = relayed or relay.Relay(registry, lambda: 0)
    app[SELF_KEY] = machine_id
    app[POLICY_KEY] = policy
    app[LOCK_TTL_KEY] = lock_ttl
    for prefix in PREFIXES:
        _add_routes(app, prefix)
    root = app.router.add_resource("/")
    root.add_route("GET", dashboard_page)
    root.add_route("*", _only("GET"))
    app.router.add_get(dashboard_api.ASSET_PATH, dashboard_asset)
    if metrics is not None:
        _add_metrics(app, metrics)
    app.on_response_prepare.append(partial(_server_header, version))
    return app


# listening ----------------------------------------------------------------------------------------

MAX_LINE = 8190  # bytes of the request line, and of one header line (aiohttp's defaults)
# Connections the kernel queues before fleetd accepts them (capped by net.core.somaxconn): a
# burst of clients (1,000 fleetctl or scripts at once) waits instead of being refused.
LISTEN_BACKLOG = 4096


def transport_error(status: int, exc: BaseException | None) -> tuple[int, str]:
    """Status and message for a request that never reached the app: aiohttp could not parse it
    (an over-long path is 414, an over-long header 431, anything else it refused 400) or an
    unexpected exception escaped a handler (500)."""
    if isinstance(exc, LineTooLong):
        if _is_request_line(exc.args[0] if exc.args else b""):
            return 414, f"request path too long: at most {MAX_LINE} bytes"
        return 431, f"request header too long: at most {MAX_LINE} bytes"
    if isinstance(exc, HttpProcessingError):
        return 400, f"bad HTTP request: {exc.message}"
    return status, "internal server error" if status >= 500 else "bad HTTP request"


def _is_request_line(start: object) -> bool:
    """Whether the start of an over-long line (what LineTooLong quotes) is the request line:
    its target (aiohttp's C parser) or the whole line (its Python parser); else a header."""
    line = bytes(start) if isinstance(start, bytes | bytearray) else b""
    target = line.split(b" ", 1)[1] if line[:1].isupper() and b" " in line[:16] else line
    return target.startswith((b"/", b"http:", b"https:"))


class _JsonErrorHandler(RequestHandler):
    """A connection that answers what never reaches the app in fleet's JSON error body
    instead of aiohttp's plain text (aiohttp still logs it and closes the connection)."""

    __slots__ = ()

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)
        response = error_response(*transport_error(plain.status, exc))
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    """aiohttp's low-level server, making `_JsonErrorHandler` connections."""

    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    """AppRunner whose server is a `_JsonErrorServer` (aiohttp offers no public hook for the
    connection class; tests/unit/test_bad_input.py notices if this stops working)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer
        return server



class _TlsSite(web.TCPSite):
    """A TCP site whose TLS handshakes run in `handshake.TlsAcceptor`, so that a refused one is
    logged with the client's address and OpenSSL's reason, and counted when it was about the
    client certificate (`bad_cert`, `missing_cert`)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, context: ssl.SSLContext,
                 recorder: Recorder) -> None:
        super().__init__(runner, host, port, ssl_context=context, backlog=LISTEN_BACKLOG)
        server = runner.server
        assert server is not None, "set the runner up first"
        log = get_logger("api")

        def refused(client: str, exc: ssl.SSLError) -> None:
            why, failure = handshake.refusal(exc)
            if failure is not None:
                recorder.api_auth_failure(failure)
            log.warning("TLS handshake refused", client=client, reason=why)

        self.acceptor = handshake.TlsAcceptor(server, context, refused)

    async def start(self) -> None:
        """TCPSite.start with the acceptor as protocol factory and TLS left to it."""
        await web.BaseSite.start(self)
        self._server = await asyncio.get_running_loop().create_server(
            self.acceptor, self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        self._bound_port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.acceptor.close()
        await super().stop()


def remove_stale_socket(path: str) -> None:
    """Remove a socket file nobody listens on; refuse to touch a live socket or a non-socket."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket; refusing to remove it")
    if _socket_is_live(path):
        raise OSError(f"{path} is in use by another process")
    os.unlink(path)


def _socket_is_live(path: str) -> bool:
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(path)
        except OSError:
            return False
        return True


def _restrict_socket(path: str, mode: int, group: str | None) -> None:
    """Apply the socket's group, then its mode; an unknown group is a ConfigError naming the key."""
    if group is not None:
        try:
            shutil.chown(path, group=group)
        except LookupError:
            raise ConfigError(f'api_socket_group: no group named "{group}"') from None
        except PermissionError as exc:
            raise ConfigError(f'api_socket_group: cannot give {path} to group "{group}": '
                              f"{exc.strerror}") from None
    os.chmod(path, mode)


def _split_host_port(tcp: str) -> tuple[str, int]:
    host, sep, port = tcp.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f'invalid TCP listen address "{tcp}": expected host:port')
    return host.strip("[]") or "0.0.0.0", int(port)


async def serve(
    app: web.Application,
    socket_path: str,
    *,
    socket_mode: int = access.SOCKET_MODE,
    socket_group: str | None = None,
    tcp: str | None = None,
    tcp_ssl: ssl.SSLContext | None = None,
) -> web.AppRunner:
    """Listen on the unix socket (and `tcp` host:port if given, with TLS if `tcp_ssl`).

    Returns the started runner. The socket gets `socket_mode` and, if given, `socket_group`.
    """
    runner = _Runner(app, access_log=None, max_line_size=MAX_LINE, max_field_size=MAX_LINE)
    await runner.setup()
    try:
        remove_stale_socket(socket_path)
        await web.UnixSite(runner, socket_path, backlog=LISTEN_BACKLOG).start()
        _restrict_socket(socket_path, socket_mode, socket_group)
        if tcp:
            host, port = _split_host_port(tcp)
            site = (_TlsSite(runner, host, port, tcp_ssl, app[RECORDER_KEY]) if tcp_ssl else
                    web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG))
            await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
