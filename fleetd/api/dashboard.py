"""The read-only web dashboard: its page and assets, and how a browser logs in over TCP.

Owns what `GET /` and `GET /dashboard/<asset>` answer and the cookie login (no HTTP library:
`fleetd.api.http` turns an `Answer` into a response):
- over TCP every request needs the API token; a browser cannot send `Authorization` when it
  navigates or opens an EventSource, so `GET /?token=<token>` with the right token sets an
  HttpOnly, SameSite=Strict session cookie (Secure under TLS) and redirects to `/`, taking the
  token out of the address bar;
- the cookie holds an HMAC of the token, never the token, and admits GET/HEAD requests only
  (the dashboard is read-only; a stolen cookie cannot change the cluster);
- without a valid token or cookie, `/` answers a small HTML page saying how to log in.
The page itself (fleetd/api/static) is plain HTML, CSS and JavaScript with no external resource.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from importlib import resources

from fleetd.api.access import REALM

COOKIE = "fleetd_session"
READ_METHODS = ("GET", "HEAD")
ASSET_PATH = "/dashboard/{name}"
ASSETS = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
_PAGE = "index.html"
_SESSION_LABEL = b"fleetd dashboard session v1"
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_COMMON = (("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store"),
           ("Referrer-Policy", "no-referrer"))


@dataclass(frozen=True)
class Answer:
    """A response to send: status, content type, extra headers and body."""

    status: int
    content_type: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


def session_value(token: str) -> str:
    """The cookie value for `token`: an HMAC of it, so the cookie never carries the token."""
    return hmac.new(token.encode(), _SESSION_LABEL, hashlib.sha256).hexdigest()


def cookie_ok(method: str, cookie: str | None, token: str) -> bool:
    """Whether a session cookie admits this request: right value (constant time), GET/HEAD only."""
    if method not in READ_METHODS or not cookie:
        return False
    return hmac.compare_digest(cookie.encode(), session_value(token).encode())


def set_cookie(token: str, secure: bool) -> str:
    """The Set-Cookie header value for a browser that showed the right token."""
    flags = "; Secure" if secure else ""
    return f"{COOKIE}={session_value(token)}; Path=/; HttpOnly; SameSite=Strict{flags}"


def login(given: str | None, token: str, secure: bool) -> Answer:
    """`GET /?token=` without a valid session: redirect with a cookie if `given` is right, else 401."""
    if given and hmac.compare_digest(given.encode(), token.encode()):
        return Answer(303, "text/plain", b"logged in\n",
                      (("Location", "/"), ("Set-Cookie", set_cookie(token, secure)), *_COMMON))
    return refused(wrong=bool(given))


def refused(wrong: bool = False) -> Answer:
    """The 401 page: what to do to see the dashboard."""
    problem = ("That token is not this cluster's API token." if wrong
               else "This dashboard needs the API token.")
    body = _LOGIN_PAGE.replace("{problem}", problem).encode()
    headers = (("WWW-Authenticate", REALM),
               ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"), *_COMMON)
    return Answer(401, "text/html", body, headers)


def page() -> Answer:
    """The dashboard's HTML page."""
    return Answer(200, "text/html", _read(_PAGE),
                  (("Content-Security-Policy", _CSP), ("X-Frame-Options", "DENY"), *_COMMON))


def asset(name: str) -> Answer | None:
    """One of the page's static files, or None for any other name."""
    if name not in ASSETS:
        return None
    return Answer(200, ASSETS[name], _read(name), _COMMON)


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fleetd: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;background:#f5f6f8;color:#1f2430;margin:0}
main{max-width:34rem;margin:12vh auto;background:#fff;border:1px solid #dde1e7;border-radius:10px;
padding:1.5rem 2rem}
h1{font-size:1.2rem;margin-top:0}code{background:#eef0f4;padding:.1rem .3rem;border-radius:4px}
</style></head>
<body><main>
<h1>fleetd dashboard</h1>
<p>{problem}</p>
<p>Open <code>/?token=&lt;token&gt;</code> once with the token from the file named by
<code>api_token_file</code> (the one <code>fleetctl</code> uses). fleetd then sets a session
cookie and takes the token out of the address.</p>
<p>On a host, the unix socket needs no token.</p>
</main></body></html>
"""
