"""`fleetctl ssh`'s pure part: which address an argument names, and the ssh command line.

Resolution follows fleet: `--machine` is a machine-id prefix (it must be unique), `--unit` a
unit name (`.service` appended when no suffix is given); without either, the first argument
is tried as both, and matching both is an error. Global units have no single host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fleetd.api import schema
from fleetd.model.names import normalize_name

NOT_FOUND = "Requested machine could not be found."


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


def command_line(address: str, command: Sequence[str], port: int = 22, user: str | None = None,
                 forward_agent: bool = False) -> list[str]:
    """The system ssh client's argv: `ssh -p PORT [-A] [-l USER] -- ADDRESS [CMD]`.

    The remote command's words are joined with spaces, as fleet did (the remote shell splits
    them again); no command means an interactive login shell.
    """
    argv = ["ssh", "-p", str(port)]
    argv += ["-A"] if forward_agent else []
    argv += ["-l", user] if user else []
    return [*argv, "--", address, *([" ".join(command)] if command else [])]
