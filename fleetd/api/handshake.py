"""The TCP listener's TLS handshakes, done before the HTTP server sees a connection.

asyncio's own TLS server drops a failed handshake silently (it logs only in debug mode), so an
operator would never learn that a client's certificate was expired, self-signed or signed by
another CA. Here every accepted connection starts as plain TCP; `loop.start_tls` shakes hands
with the listener's context, and then the HTTP protocol takes the TLS transport over, as if
asyncio had made it. A handshake that fails on TLS is reported to `refused` with the peer's
address (a peer that merely disconnects or stays silent is not); either way it is closed.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

HANDSHAKE_TIMEOUT = 30.0  # seconds a client may take to finish its handshake
Refused = Callable[[str, ssl.SSLError], None]


def refusal(exc: ssl.SSLError) -> tuple[str, str | None]:
    """Why a handshake failed, in OpenSSL's words, and the credential failure it is: `bad_cert`
    (the client certificate did not verify: `client certificate: certificate has expired`,
    `self-signed certificate`, `unable to get local issuer certificate`), `missing_cert` (a
    certificate was demanded and none came) or None (`http request`, `... alert ...`: plain
    HTTP, or a client that distrusts our certificate)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"client certificate: {exc.verify_message or exc.reason}", "bad_cert"
    why = (exc.reason or str(exc)).lower().replace("_", " ")
    return why, "missing_cert" if exc.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE" else None


class TlsAcceptor:
    """The protocol factory of one TLS listener: each connection gets a `_Handshake` that hands
    it to `make_protocol()` once TLS is up. `close()` drops handshakes still under way."""

    def __init__(self, make_protocol: Callable[[], asyncio.Protocol], context: ssl.SSLContext,
                 refused: Refused, timeout: float = HANDSHAKE_TIMEOUT) -> None:
        self.make_protocol = make_protocol
        self.context = context
        self.refused = refused
        self.timeout = timeout
        self.pending: set[_Handshake] = set()

    def __call__(self) -> asyncio.Protocol:
        return _Handshake(self)

    def close(self) -> None:
        for handshake in list(self.pending):
            handshake.abort()


class _Handshake(asyncio.Protocol):
    """One connection until its handshake ends. Application data that the TLS layer decrypts
    before the hand-over (it comes with the client's last handshake message) is kept and
    replayed to the HTTP protocol, in order, with an end-of-file if one came; whatever still
    reaches this object after the hand-over (a connection loss scheduled just before it) is
    passed on."""

    def __init__(self, acceptor: TlsAcceptor) -> None:
        self.acceptor = acceptor
        self.raw: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.protocol: asyncio.Protocol | None = None
        self.early: list[bytes] = []
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.raw = transport
        self.acceptor.pending.add(self)
        self.task = asyncio.get_running_loop().create_task(self._shake(transport))

    async def _shake(self, raw: asyncio.Transport) -> None:
        peer = _address(raw.get_extra_info("peername"))
        acceptor = self.acceptor
        try:
            tls = await asyncio.get_running_loop().start_tls(
                raw, self, acceptor.context, server_side=True,
                ssl_handshake_timeout=acceptor.timeout)
        except ssl.SSLError as exc:
            acceptor.refused(peer, exc)
            return
        except (OSError, TimeoutError):  # the peer left, reset or stayed silent
            raw.abort()
            return
        except asyncio.CancelledError:
            raw.abort()
            raise
        finally:
            acceptor.pending.discard(self)
        if tls is None or tls.is_closing():  # the peer left right after its handshake
            raw.abort()
            return
        self._hand_over(tls)

    def _hand_over(self, tls: asyncio.Transport) -> None:
        self.protocol = protocol = self.acceptor.make_protocol()
        tls.set_protocol(protocol)
        protocol.connection_made(tls)
        for data in self.early:
            protocol.data_received(data)
        if self.eof:
            protocol.eof_received()

    def abort(self) -> None:
        if self.raw is not None:
            self.raw.abort()

    def data_received(self, data: bytes) -> None:
        if self.protocol is not None:
            self.protocol.data_received(data)
        else:
            self.early.append(data)

    def eof_received(self) -> bool:
        if self.protocol is not None:
            return bool(self.protocol.eof_received())
        self.eof = True
        return True  # keep the transport open until the HTTP protocol decides

    def connection_lost(self, exc: Exception | None) -> None:
        if self.protocol is not None:
            self.protocol.connection_lost(exc)


def _address(peer: object) -> str:
    """`host:port` of a peername (IPv6 hosts in brackets); `?` if there is none."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "?"
