"""What a host's etcd user may read and write, from its roles and the key layout (pure).

`grants(keys, roles, machine_id)` maps a host to etcd permissions (a key or a prefix, read,
write or both); `fleetd etcd-setup` makes an etcd role of them. Two kinds of host:

- `engine` or `api` (the control plane): read-write on the whole prefix. They write units,
  files, global records, assignments, pending reasons, alarms, remote-command requests,
  dynamic metadata and the leader key, and the API reads everything.
- `agent` only: read what its agent needs (its own assignments, global records, unit files,
  its own remote-command requests and metadata, and the maintenance lock's slots, to renew
  the one it may hold); write its own presence key (the lease is its heartbeat), the unit
  states, failure records and endpoint records it reports and remote-command output.

Not expressible with etcd's key-range permissions, and so left to fleetd: states/, failed/
and endpoints/ are keyed by unit first, so an agent-only host may write any machine's records
there (they are reports that no fleetd acts on by running anything), and exec-out/ is keyed by
request; "only with a lease" cannot be said at all (the engine checks the leader key itself,
see `fleetd.engine.election`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fleetd.registry.keys import Keys

Access = Literal["read", "write", "readwrite"]
CONTROL_ROLES = frozenset({"engine", "api"})


@dataclass(frozen=True, slots=True)
class Grant:
    """`access` to `key`, or with `prefix` to every key that starts with it."""

    access: Access
    key: str
    prefix: bool = False


def grants(keys: Keys, roles: Sequence[str], machine_id: str) -> tuple[Grant, ...]:
    """The permissions of the etcd user of the host `machine_id` whose fleetd has `roles`."""
    if CONTROL_ROLES & set(roles):
        return (Grant("readwrite", keys.prefix, prefix=True),)
    return (
        Grant("read", keys.assigned_to(machine_id), prefix=True),
        Grant("read", keys.globals, prefix=True),
        Grant("read", keys.files, prefix=True),
        Grant("read", keys.exec_requests(machine_id), prefix=True),
        Grant("read", keys.machine_metadata(machine_id), prefix=True),  # its watch is a prefix watch
        Grant("readwrite", keys.machine(machine_id)),
        Grant("readwrite", keys.states, prefix=True),
        Grant("readwrite", keys.endpoints, prefix=True),
        Grant("readwrite", f"{keys.prefix}exec-out/", prefix=True),
        Grant("readwrite", keys.failures, prefix=True),  # failed units it reports
        Grant("read", keys.maintenance, prefix=True),  # to renew the lock slot it may hold
    )


def role_name(user: str) -> str:
    """The etcd role that carries `user`'s grants (one role per user: re-granting replaces it)."""
    return f"{user}-grants"
