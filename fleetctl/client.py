"""fleetctl's HTTP client for API v1 (the only aiohttp importer on the client side).

Owns endpoint parsing (unix://, file://, http://, https://), TLS material and the bearer token
(sent only to https endpoints; a 401 is an `AuthError`), one session per command run, page
following, batched unit submissions (POST /units), and turning transport failures into
`ClientError` messages a user can act on and error bodies into `ApiError(code, message)`.
"""

from __future__ import annotations

import asyncio
import errno
import json
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar
from urllib.parse import urlsplit

import aiohttp
from pydantic import ValidationError
from yarl import URL

from fleetd.api import schema
from fleetd.model.states import TargetState

DEFAULT_ENDPOINT = "unix:///var/run/fleet.sock"
WATCH_READ_TIMEOUT = 50.0  # fleetd sends a keep-alive comment every 15 s
API_PATH = "fleet/v1"
M = TypeVar("M", bound=schema.Wire)


class ClientError(Exception):
    """fleetd could not be asked: bad endpoint, unreachable, timed out, garbled answer."""


class ApiError(ClientError):
    """fleetd answered with an error body."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AuthError(Exception):
    """fleetd answered 401: the token is missing or wrong.

    Not a ClientError on purpose: commands catch ClientError per unit and go on, while a
    refused token must stop the whole run with one clear message.
    """


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where fleetd listens: a base URL and, for unix sockets, the socket path."""

    text: str
    base: URL
    socket_path: str | None = None
    server_hostname: str | None = None  # TLS name when `base` is a --tunnel's loopback port


def parse_endpoint(text: str, warn: TextIO = sys.stderr) -> Endpoint:
    """Parse --endpoint with fleet's rules and messages (only the first of a comma list is used)."""
    first, *rest = [part.strip() for part in text.split(",")]
    if rest:
        print(f"WARNING: multiple endpoints given; using only the first: {first}", file=warn)
    parts = urlsplit(first)
    if not parts.scheme or "://" not in first:
        raise ClientError("URL scheme undefined")
    if parts.scheme in ("unix", "file"):
        if parts.netloc:
            raise ClientError(
                f'unable to connect to host "{parts.netloc}" with scheme "{parts.scheme}"'
            )
        return Endpoint(first, URL("http://fleetd/").joinpath(API_PATH), parts.path)
    if parts.scheme in ("http", "https"):
        return Endpoint(first, URL(first.rstrip("/")).joinpath(API_PATH))
    raise ClientError(f'unsupported URL scheme "{parts.scheme}"')


def tls_context(
    ca_file: str = "", cert_file: str = "", key_file: str = ""
) -> ssl.SSLContext | None:
    """TLS settings for an https endpoint; None when no TLS material is given.

    An unreadable or malformed file is a ClientError naming the flag.
    """
    if not (ca_file or cert_file):
        return None
    ctx = _tls_step("--ca-file", ca_file, lambda: ssl.create_default_context(cafile=ca_file or None))
    if cert_file:
        _tls_step("--cert-file/--key-file", cert_file,
                  lambda: ctx.load_cert_chain(cert_file, key_file or None))
    return ctx


T = TypeVar("T")


def _tls_step(flag: str, path: str, step: Callable[[], T]) -> T:
    try:
        return step()
    except OSError as exc:
        raise ClientError(f"cannot use {flag} {path}: {exc.strerror or exc}") from None
    except ssl.SSLError as exc:
        raise ClientError(f"cannot use {flag} {path}: {exc.reason or exc}") from None


def read_token(environ: Mapping[str, str], token_file: str = "") -> str | None:
    """The API bearer token: from `token_file` (--token-file) if given, else FLEETCTL_TOKEN."""
    if not token_file:
        return environ.get("FLEETCTL_TOKEN", "").strip() or None
    try:
        text = Path(token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ClientError(f"cannot read --token-file {token_file}: {exc.strerror}") from None
    if not text:
        raise ClientError(f"--token-file {token_file} is empty")
    return text


# etcd briefly unavailable behind fleetd (a member died, a leader election): every request is
# safe to send again (writes are create-if-absent / set-to-value), so try twice more.
UNAVAILABLE_RETRIES = (0.5, 1.5)
CERT_REFUSED_HINT = ("; fleetd may have refused the client certificate (expired, or not signed "
                     "by the CA of its api_tls_client_ca_file): its log says why")
PAGE_SIZE = 5000  # items per listing page fleetd is asked for (fleet's servers ignore it: 100)
DESTROY_BATCH = 1000  # names per DELETE /units: about 24 txns, a fraction of a second


class Client:
    """An async API client; use as `async with Client(...) as client:`."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float = 3.0,
        tls: ssl.SSLContext | None = None,
        token: str | None = None,
        client_cert: bool = False,
        debug: TextIO | None = None,
    ) -> None:
        """`token` is sent as a bearer token, only to https endpoints; `client_cert`: `tls`
        holds a client certificate (--cert-file), which an error message may then blame."""
        self.endpoint = endpoint
        self._client_cert = client_cert
        self._auth = {"Authorization": f"Bearer {token}"} if token and _is_https(endpoint) else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout if timeout > 0 else None)
        self._tls = tls
        self._debug = debug
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        connector: aiohttp.BaseConnector
        if self.endpoint.socket_path:
            connector = aiohttp.UnixConnector(path=self.endpoint.socket_path)
        else:
            connector = aiohttp.TCPConnector(ssl=self._tls if self._tls else True)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    # transport ------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: Sequence[str],
        *,
        params: dict | None = None,
        body: schema.Wire | None = None,
    ) -> tuple[int, str]:
        for delay in (*UNAVAILABLE_RETRIES, None):
            try:
                return await self._request_once(method, path, params=params, body=body)
            except ApiError as exc:
                if exc.code != 503 or delay is None:
                    raise
                self._log_retry(exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _log_retry(self, exc: ApiError, delay: float) -> None:
        if self._debug is not None:
            print(f"DEBUG: fleetd answered 503 ({exc}); retrying in {delay} s", file=self._debug)

    async def _request_once(
        self,
        method: str,
        path: Sequence[str],
        *,
        params: dict | None = None,
        body: schema.Wire | None = None,
    ) -> tuple[int, str]:
        assert self._session is not None, "use Client as an async context manager"
        url = self.endpoint.base.joinpath(*path)
        data = body.to_json() if body is not None else None
        headers = {**self._auth, **({"Content-Type": "application/json"} if body is not None else {})}
        try:
            async with self._session.request(
                method, url, params=params, data=data, headers=headers,
                server_hostname=self.endpoint.server_hostname,
            ) as resp:
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._unreachable(exc) from exc
        self._log(method, url, params, resp.status)
        if resp.status == 401:
            raise AuthError(_error_message(resp.status, text))
        if resp.status >= 400:
            raise ApiError(resp.status, _error_message(resp.status, text))
        return resp.status, text

    def _unreachable(self, exc: BaseException) -> ClientError:
        """The error for a request that got no answer; a connection dropped while a client
        certificate was offered is most likely fleetd refusing it in the TLS handshake."""
        hint = CERT_REFUSED_HINT if self._client_cert and _dropped(exc) else ""
        return ClientError(f"cannot reach fleetd at {self.endpoint.text}: {_reason(exc)}{hint}")

    def _log(self, method: str, url: URL, params: dict | None, status: int) -> None:
        if self._debug is not None:
            query = f" {params}" if params else ""
            print(f"DEBUG: {method} {url}{query} -> {status}", file=self._debug)

    async def _get(self, model: type[M], *path: str, params: dict | None = None) -> M:
        _, text = await self._request("GET", path, params=params)
        return _decode(model, text)

    async def _pages(self, model: type[M], path: str, params: dict | None = None) -> list[M]:
        pages, query = [], {"pageSize": str(PAGE_SIZE), **(params or {})}
        while True:
            page = await self._get(model, path, params=query or None)
            pages.append(page)
            token = getattr(page, "next_page_token", None)
            if not token:
                return pages
            query["nextPageToken"] = token

    # API ------------------------------------------------------------------------------------

    async def list_units(self, machine_id: str | None = None) -> list[schema.Unit]:
        """Every unit (only those placed on `machine_id`, if given)."""
        params = {"machineID": machine_id} if machine_id else None
        return [u for page in await self._pages(schema.UnitPage, "units", params) for u in page.units]

    async def get_unit(self, name: str) -> schema.Unit | None:
        try:
            return await self._get(schema.Unit, "units", name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def submit_units(self, entries: Sequence[schema.Unit]) -> list[schema.UnitResult]:
        """Create, replace or move units with POST /units: one request per MAX_BATCH entries.

        Returns one result per entry, in order. A rejected request raises ApiError (the server
        wrote none of its entries).
        """
        results: list[schema.UnitResult] = []
        for start in range(0, len(entries), schema.MAX_BATCH):
            body = schema.UnitBatch(units=list(entries[start : start + schema.MAX_BATCH]))
            _, text = await self._request("POST", ("units",), body=body)
            results += _decode(schema.UnitResults, text).results
        return results

    async def set_desired(self, names: list[str], desired: TargetState) -> None:
        """Set one desired state on many units in one POST; ClientError if any was refused."""
        entries = [schema.Unit(name=name, desired_state=desired) for name in names]
        for result in await self.submit_units(entries) if entries else []:
            if result.status >= 400:
                raise ApiError(result.status, f'unit "{result.name}": {result.message}')

    async def destroy_units(self, names: Sequence[str]) -> list[schema.UnitResult]:
        """Destroy many units with DELETE /units: one request per DESTROY_BATCH names (each
        well within --request-timeout; one sent again after a 503 does no harm); one result
        per name, in order (204 destroyed, 404 already gone)."""
        results: list[schema.UnitResult] = []
        for start in range(0, len(names), DESTROY_BATCH):
            body = schema.UnitNames(names=list(names[start : start + DESTROY_BATCH]))
            _, text = await self._request("DELETE", ("units",), body=body)
            results += _decode(schema.UnitResults, text).results
        return results

    async def list_states(
        self, unit_name: str | None = None, machine_id: str | None = None
    ) -> list[schema.UnitState]:
        params = {k: v for k, v in (("unitName", unit_name), ("machineID", machine_id)) if v}
        pages = await self._pages(schema.StatePage, "state", params)
        return [s for page in pages for s in page.states]

    async def list_machines(self) -> list[schema.Machine]:
        pages = await self._pages(schema.MachinePage, "machines")
        return [m for page in pages for m in page.machines]

    async def move_unit(self, name: str, machine: str | None) -> schema.MoveResult:
        """Ask fleetd to re-place `name` (on `machine`, or where the scheduler puts it)."""
        body = schema.MoveRequest(machine_id=machine)
        _, text = await self._request("POST", ("units", name, "move"), body=body)
        return _decode(schema.MoveResult, text)

    async def rebalance_plan(self, max_moves: int) -> list[schema.RebalanceMove]:
        """The moves fleetd's scheduler would make to restore the placement goal, in order."""
        plan = await self._get(schema.RebalancePlan, "rebalance", params={"maxMoves": str(max_moves)})
        return plan.moves

    async def lock_machine(self, machine: str, max_parallel: int) -> schema.LockState:
        """Take a slot of the maintenance lock for `machine`; ApiError 409 while it is busy."""
        body = schema.LockRequest(max_parallel=max_parallel)
        _, text = await self._request("POST", ("machines", machine, "lock"), body=body)
        return _decode(schema.LockState, text)

    async def unlock_machine(self, machine: str) -> schema.LockState:
        """Release `machine`'s slot of the maintenance lock; ApiError 404 if it holds none."""
        _, text = await self._request("DELETE", ("machines", machine, "lock"))
        return _decode(schema.LockState, text)

    async def set_machine_state(self, machine: str, state: str,
                                if_locked: bool = False) -> schema.MachineStateChange:
        """Cordon, drain or uncordon (`ready`) `machine`: an id, a unique prefix or `self`;
        `if_locked`: only if it holds the maintenance lock."""
        body = schema.MachineStateRequest(state=state, if_locked=if_locked)
        _, text = await self._request("PUT", ("machines", machine, "state"), body=body)
        return _decode(schema.MachineStateChange, text)

    async def list_alarms(self) -> list[schema.Alarm]:
        """Alarms the engine raised (e.g. mass-failure); [] from a fleetd that has none to tell."""
        try:
            return (await self._get(schema.AlarmList, "alarms")).alarms
        except ApiError as exc:
            if exc.code in (404, 405):
                return []
            raise

    async def list_endpoints(self, unit: str | None = None) -> list[schema.Endpoint] | None:
        """Published endpoints (of one unit, or all); None if `unit` does not exist."""
        try:
            path = ("endpoints", unit) if unit else ("endpoints",)
            return (await self._get(schema.EndpointList, *path)).endpoints
        except ApiError as exc:
            if exc.code == 404 and unit:
                return None
            raise

    async def watch(self, kinds: Sequence[str]) -> AsyncIterator[tuple[str, str]]:
        """(event, data) from GET /watch (server-sent events), forever: a dropped stream is
        resumed with Last-Event-ID after a second; ClientError if fleetd cannot be reached."""
        last: str | None = None
        while True:
            got_any = False
            async for event, data, event_id in self._watch_once(kinds, last):
                got_any = True
                last = event_id or last
                if event == "error":
                    break
                yield event, data
            if not got_any:
                raise ClientError(f"watch stream from {self.endpoint.text} ended at once")
            await asyncio.sleep(1.0)

    async def _watch_once(self, kinds: Sequence[str],
                          last: str | None) -> AsyncIterator[tuple[str, str, str | None]]:
        assert self._session is not None, "use Client as an async context manager"
        url = self.endpoint.base.joinpath("watch")
        params = {"kinds": ",".join(kinds)}
        headers = {**self._auth, **({"Last-Event-ID": last} if last else {})}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout.total,
                                        sock_read=WATCH_READ_TIMEOUT)
        try:
            async with self._session.get(url, params=params, headers=headers, timeout=timeout,
                                         server_hostname=self.endpoint.server_hostname) as resp:
                self._log("GET", url, params, resp.status)
                if resp.status >= 400:
                    raise ApiError(resp.status, _error_message(resp.status, await resp.text()))
                fields: dict[str, str] = {}
                async for raw in resp.content:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if line and not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
                    elif not line and "event" in fields:
                        yield fields["event"], fields.get("data", ""), fields.get("id")
                        fields = {}
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._unreachable(exc) from exc

    async def clear_alarm(self, kind: str) -> bool:
        """Acknowledge an alarm; False if it was not raised."""
        try:
            await self._request("DELETE", ("alarms", kind))
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    async def stream_records(self, method: str, path: Sequence[str],
                             params: dict | None = None) -> AsyncIterator[dict]:
        """The NDJSON records of a streamed answer (status, journal, restart) as they arrive.

        Only connecting is timed: the answer lasts as long as the remote command does (with
        journal --follow, until the caller stops iterating, which closes the request).
        """
        assert self._session is not None, "use Client as an async context manager"
        url = self.endpoint.base.joinpath(*path)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout.total)
        try:
            async with self._session.request(method, url, params=params, headers=self._auth,
                                             timeout=timeout,
                                             server_hostname=self.endpoint.server_hostname) as resp:
                self._log(method, url, params, resp.status)
                if resp.status >= 400:
                    message = _error_message(resp.status, await resp.text())
                    raise AuthError(message) if resp.status == 401 else ApiError(resp.status, message)
                async for record in _ndjson(resp.content.iter_any()):
                    yield record
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._unreachable(exc) from exc


async def _ndjson(pieces: AsyncIterator[bytes]) -> AsyncIterator[dict]:
    """JSON objects, one a line, from a byte stream cut anywhere."""
    buffer = b""
    async for piece in pieces:
        buffer += piece
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield _record(line)


def _record(line: bytes) -> dict:
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise ClientError(f"unexpected answer from fleetd: {line[:200]!r}")
    return record


_DROPPED = (errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE)


def _dropped(exc: BaseException) -> bool:
    """Whether the server closed the connection without a word: during the TLS handshake
    (TLS 1.2) or right after it (TLS 1.3, where the client's certificate is checked last).
    aiohttp says so in several ways, depending on when the close is noticed."""
    cause = getattr(exc, "os_error", None) or exc
    return (isinstance(exc, aiohttp.ServerDisconnectedError)
            or isinstance(cause, ssl.SSLEOFError | ConnectionResetError | ConnectionAbortedError
                          | BrokenPipeError)
            or (isinstance(cause, OSError) and cause.errno in _DROPPED))


def _is_https(endpoint: Endpoint) -> bool:
    return endpoint.socket_path is None and endpoint.base.scheme == "https"


def _decode(model: type[M], text: str) -> M:
    try:
        return model.from_json(text)
    except ValidationError as exc:
        raise ClientError(f"unexpected answer from fleetd: {exc.errors()[0].get('msg')}") from exc


def _error_message(status: int, text: str) -> str:
    try:
        return schema.ErrorBody.from_json(text).error.message
    except ValidationError:
        return f"HTTP {status}: {text.strip()[:200]}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "request timed out"
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror
    return str(exc) or type(exc).__name__
