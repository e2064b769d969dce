"""`fleetctl ssh`'s pure part: which address an argument names, and the ssh command line.

The ssh options come from fleet's global SSH flags (`SshOptions`), so `fleetctl ssh` and
`--tunnel` (fleetctl.tunnel) connect the same way; with `--tunnel`, every connection hops
through the tunnel host (an ssh `-W` ProxyCommand carrying the same options).

Resolution follows fleet: `--machine` is a machine-id prefix (it must be unique), `--unit` a
unit name (`.service` appended when no suffix is given); without either, the first argument
is tried as both, and matching both is an error. Global units have no single host.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from fleetd.api import schema
from fleetd.model.names import normalize_name

NOT_FOUND = "Requested machine could not be found."
DEFAULT_KNOWN_HOSTS = "~/.fleetctl/known_hosts"


class SshError(Exception):
    """The argument names no usable host (message printed as is)."""


def machine_address(prefix: str, machines: Sequence[schema.Machine]) -> str | None:
    """The IP of the one machine whose id starts with `prefix`; None if none does."""
    found = [m for m in machines if m.id.startswith(prefix)] if prefix else []
    if len(found) > 1:
        raise SshError("found more than one machine")
    return found[0].primary_ip if found else None


def unit_address(arg: str, units: Mapping[str, schema.Unit], machines: Sequence[schema.Machine],
                 is_global: bool = False) -> str | None:
    """The IP of the machine running unit `arg`; None if there is no such unit."""
    name = normalize_name(arg)
    unit = units.get(name)
    if unit is None:
        return None
    if is_global:
        raise SshError(f"Unable to connect to global unit {name}.")
    ips = {m.id: m.primary_ip for m in machines}
    if not unit.machine_id or unit.machine_id not in ips:
        raise SshError(f"Unit {name} does not appear to be running.")
    return ips[unit.machine_id]


def resolve(lookup: str, machines: Sequence[schema.Machine], units: Mapping[str, schema.Unit],
            global_units: frozenset[str] = frozenset(), by: str = "") -> str:
    """The address `lookup` names; `by` is "machine", "unit" or "" (try both)."""
    check = lambda: normalize_name(lookup) in global_units  # noqa: E731
    machine = machine_address(lookup, machines) if by in ("", "machine") else None
    unit = unit_address(lookup, units, machines, check()) if by in ("", "unit") else None
    if machine and unit:
        raise SshError(f"Ambiguous argument, both machine and unit found for `{lookup}`.\n"
                       "Please use flag `-m` or `-u` to refine the search")
    if not (machine or unit):
        raise SshError(NOT_FOUND)
    return machine or unit or ""


@dataclass(frozen=True, slots=True)
class SshOptions:
    """fleet's global SSH flags, shared by `fleetctl ssh` and `--tunnel`."""

    user: str = ""
    strict: bool = True
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    timeout: float = 10.0
    interactive: bool = True  # False: no prompt can be answered (stdin is not a terminal)
    jump: tuple[str, int] | None = None  # the --tunnel host every connection goes through


def option_args(opts: SshOptions) -> list[str]:
    """ssh's `-o` options (and `-l USER`) for these flags."""
    argv = ["-o", f"ConnectTimeout={max(1, math.ceil(opts.timeout))}"]
    argv += [] if opts.interactive else ["-o", "BatchMode=yes"]
    if opts.strict:
        argv += ["-o", "StrictHostKeyChecking=ask", "-o", f'UserKnownHostsFile="{opts.known_hosts}"']
    else:
        argv += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 "-o", "LogLevel=ERROR"]
    argv += ["-l", opts.user] if opts.user else []
    if opts.jump is not None:
        hop = ["ssh", *option_args(replace(opts, jump=None)), "-p", str(opts.jump[1]),
               "-W", "%h:%p", "--", opts.jump[0]]
        argv += ["-o", "ProxyCommand=" + " ".join(shlex.quote(word) for word in hop)]
    return argv


def command_line(address: str, command: Sequence[str], port: int = 22,
                 forward_agent: bool = False, opts: SshOptions | None = None) -> list[str]:
    """The system ssh client's argv: `ssh [OPTIONS] -p PORT [-A] -- ADDRESS [CMD]`.

    The remote command's words are joined with spaces, as fleet did (the remote shell splits
    them again); no command means an interactive login shell.
    """
    argv = ["ssh", *(option_args(opts) if opts else []), "-p", str(port)]
    argv += ["-A"] if forward_agent else []
    return [*argv, "--", address, *([" ".join(command)] if command else [])]
