"""Who may reach the API and etcd: the TCP listener policy, its TLS context, the credentials.

Owns the rules, not the transport (`fleetd.api.http` and `fleetd.api.handshake` apply them):
- the unix socket needs no credential: its mode 0660 and group are the access control;
- a TCP listener (api_listen) starts only with TLS (cert + key) and the credential `api_auth`
  names, unless api_insecure_tcp=true, which is loudly warned about (a token without TLS is
  always refused: it would travel in clear, and fleetctl sends tokens to https endpoints only);
- `api_auth` says what a TCP request proves: `token` (`Authorization: Bearer <token>`, compared
  in constant time), `cert` (a client certificate that verifies against
  api_tls_client_ca_file), `token+cert` (both) or `token/cert` (either). In the certificate
  modes the handshake asks for a certificate without demanding one: a presented certificate
  that does not verify (expired, self-signed, another CA) fails the handshake, a missing one
  is answered 401 where it is needed (`by_certificate`), so both refusals can be logged;
- `token` with api_tls_client_ca_file keeps what that pair meant before api_auth: the
  handshake demands a certificate signed by that CA, and the token is checked as well;
- secret files (api_token_file, etcd_password_file) must not be readable or writable by group
  or others (like ssh's private keys): fleetd refuses to start otherwise;
- etcd is reached over TLS (https:// URLs): plain http:// is refused unless etcd_insecure=true,
  which is loudly warned about at every start, and so is a fleetd that shows etcd no
  credentials (no etcd_username, no client certificate).
"""

from __future__ import annotations

import hmac
import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from fleetd.config import CERT_MODES, FleetConfig
from fleetd.errors import ConfigError

SOCKET_MODE = 0o660
REALM = 'Bearer realm="fleetd"'
INSECURE_WARNING = ("api_insecure_tcp=true: the TCP API at {listen} has NO TLS and NO token: "
                    "anyone who can reach it controls the cluster (trusted networks only)")
NO_CERTIFICATE = ("missing client certificate: present a certificate signed by the CA of "
                  "api_tls_client_ca_file (fleetctl --cert-file/--key-file)")
# what a request's client certificate decides (`by_certificate`)
ADMIT, ASK_TOKEN, REFUSE = "admit", "token", "refuse"

ETCD_INSECURE_WARNING = ("etcd_insecure=true: fleetd talks to etcd over plain http:// ({servers}): "
                         "anyone on the network path can read the registry, steal etcd credentials "
                         "and, through them, run commands as root on every host")
ETCD_ANONYMOUS_WARNING = ("fleetd shows etcd no credentials (neither etcd_username nor etcd_certfile): "
                          "an etcd that lets it in lets in anyone who reaches it")


@dataclass(frozen=True)
class TcpAccess:
    """How the TCP listener admits requests: its TLS context, `api_auth` and the token (None:
    no token is checked)."""

    ssl: ssl.SSLContext | None
    token: str | None
    warnings: tuple[str, ...] = ()
    auth: str = "token"


def by_certificate(auth: str, has_certificate: bool) -> str:
    """What the client certificate of a TCP request decides under `auth`: ADMIT (it is the
    credential), REFUSE (one is needed and none came) or ASK_TOKEN (the token decides).

    A certificate that reached this far was verified in the handshake.
    """
    if auth in ("cert", "token/cert") and has_certificate:
        return ADMIT
    if auth in ("cert", "token+cert") and not has_certificate:
        return REFUSE
    return ASK_TOKEN


def read_secret(path: str, key: str, *, one_word: bool = True) -> str:
    """The stripped content of a secret file; ConfigError naming `key` if unsafe or unusable.

    A token is one word; a password (`one_word=False`) may hold inner spaces.
    """
    try:
        info = os.stat(path)
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigError(f"{key}: {path} is accessible by group or others "
                          f"(mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 it")
    if not text or (one_word and any(c.isspace() for c in text)):
        raise ConfigError(f"{key}: {path} must hold one non-empty word" if one_word
                          else f"{key}: {path} is empty")
    return text


def server_ssl_context(cert: str, key: str, client_ca: str = "",
                       verify: ssl.VerifyMode = ssl.CERT_REQUIRED) -> ssl.SSLContext:
    """TLS for the TCP listener; with `client_ca`, a client certificate is verified against it:
    demanded (CERT_REQUIRED) or, with CERT_OPTIONAL, verified only when one is presented."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
        if client_ca:
            ctx.load_verify_locations(cafile=client_ca)
            ctx.verify_mode = verify
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"api_tls_cert_file/api_tls_key_file/api_tls_client_ca_file: {exc}") from None
    return ctx


def tcp_access(cfg: FleetConfig) -> TcpAccess | None:
    """The TCP listener's policy from the config; None without api_listen.

    Refuses (ConfigError) a listener without both TLS and a token unless api_insecure_tcp
    (the certificate modes always have TLS: the config demands api_tls_client_ca_file).
    """
    if not cfg.api_listen:
        return None
    secured = bool(cfg.api_tls_cert_file and (cfg.api_token_file or cfg.api_auth == "cert"))
    if not secured and not cfg.api_insecure_tcp:
        raise ConfigError(
            "api_listen needs TLS and a token: set api_tls_cert_file, api_tls_key_file and "
            "api_token_file (or api_insecure_tcp=true to listen without them; trusted networks only)")
    if cfg.api_token_file and not cfg.api_tls_cert_file:
        raise ConfigError("api_token_file needs api_tls_cert_file and api_tls_key_file: "
                          "a token sent over plain TCP can be read by anyone on the path")
    verify = ssl.CERT_OPTIONAL if cfg.api_auth in CERT_MODES else ssl.CERT_REQUIRED
    tls = (server_ssl_context(cfg.api_tls_cert_file, cfg.api_tls_key_file,
                              cfg.api_tls_client_ca_file, verify)
           if cfg.api_tls_cert_file else None)
    token = read_secret(cfg.api_token_file, "api_token_file") if cfg.api_token_file else None
    warnings = () if secured else (INSECURE_WARNING.format(listen=cfg.api_listen),)
    return TcpAccess(tls, token, warnings, cfg.api_auth)


def etcd_warnings(cfg: FleetConfig) -> tuple[str, ...]:
    """What to warn about in how fleetd reaches etcd; ConfigError for plain http:// URLs unless
    etcd_insecure (TLS is the default, as in the local and Vagrant clusters)."""
    plain = [url for url in cfg.etcd_servers if url.startswith("http://")]
    if plain and not cfg.etcd_insecure:
        raise ConfigError(
            f"etcd_servers has plain http:// URLs ({', '.join(plain)}): use https:// with "
            "etcd_cafile and etcd credentials (etcd_username + etcd_password_file), or set "
            "etcd_insecure=true to accept a plain etcd (trusted networks only)")
    warnings = [ETCD_INSECURE_WARNING.format(servers=", ".join(plain))] if plain else []
    if not (cfg.etcd_username or cfg.etcd_certfile):
        warnings.append(ETCD_ANONYMOUS_WARNING)
    return tuple(warnings)


def bearer_ok(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries exactly `token` (constant-time compare)."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def refusal(header: str | None) -> str:
    """The 401 message for a request whose token is missing or wrong."""
    if not header:
        return "missing bearer token: send Authorization: Bearer <token>"
    return "invalid bearer token"
