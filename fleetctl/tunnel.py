"""`--tunnel HOST[:PORT]`'s pure part: parsing the flag and planning the ssh port forward.

fleet carried its API traffic through an SSH connection to the tunnel host. fleetctl does it with
the system ssh client and an OpenSSH local forward, so nothing has to be installed on the tunnel
host (fleet ran `fleetctl fd-forward` there):
- unix:// and http:// endpoints: a unix socket in a private directory on this machine is
  forwarded to the endpoint's socket path (or host:port) as seen from the tunnel host;
- https:// endpoints: a loopback TCP port is forwarded to host:port, and TLS still checks the
  certificate against the endpoint's own host name (`Endpoint.server_hostname`).
The process that runs the plan is fleetctl.sshtunnel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fleetctl.client import Endpoint
from fleetctl.sshcmd import SshOptions, option_args

DEFAULT_PORT = 22
LOOPBACK = "127.0.0.1"


class TunnelError(Exception):
    """A bad --tunnel value or a tunnel that could not be opened (message printed as is)."""


def parse_tunnel(text: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` -> (host, port); port defaults to 22."""
    host, port = text.strip(), str(DEFAULT_PORT)
    if host.startswith("["):
        inner, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise TunnelError(f'invalid --tunnel "{text}": use HOST[:PORT]')
        host, port = inner, rest[1:] or port
    elif host.count(":") == 1:
        host, port = host.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TunnelError(f'invalid --tunnel "{text}": use HOST[:PORT]')
    return host, int(port)


@dataclass(frozen=True, slots=True)
class Plan:
    """One tunnel: the ssh command, what must answer locally, and the endpoint to use instead."""

    argv: tuple[str, ...]
    local_socket: str | None  # wait for this unix socket ...
    local_port: int | None  # ... or this loopback TCP port
    endpoint: Endpoint


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def plan(tunnel: tuple[str, int], endpoint: Endpoint, opts: SshOptions, private_dir: str,
         free_port: int) -> Plan:
    """The forward for `endpoint` through `tunnel` (local names in `private_dir` / `free_port`)."""
    remote = endpoint.socket_path or f"{_bracket(endpoint.base.host or '')}:{endpoint.base.port}"
    shown = replace(endpoint, text=f"{endpoint.text} (through --tunnel {tunnel[0]}:{tunnel[1]})")
    if endpoint.base.scheme == "https" and not endpoint.socket_path:
        local, local_port, sock = f"{LOOPBACK}:{free_port}", free_port, None
        base = endpoint.base.with_host(LOOPBACK).with_port(free_port)
        moved = replace(shown, base=base, server_hostname=endpoint.base.host)
    else:
        sock = f"{private_dir}/fleet.sock"
        local, local_port, moved = sock, None, replace(shown, socket_path=sock)
    argv = ("ssh", *option_args(replace(opts, jump=None)), "-p", str(tunnel[1]), "-N",
            "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=15",
            "-L", f"{local}:{remote}", "--", tunnel[0])
    return Plan(argv, sock, local_port, moved)
