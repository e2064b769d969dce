"""The process's open-file limit: fleetd raises its soft limit to the hard one at start (the only
user of the `resource` module).

systemd starts services with a soft limit of 1024 open files (the hard limit is far higher);
every API connection, etcd stream and unit file fleetd holds is one, so a burst of 1,000 API
clients would exhaust 1024 and be kept waiting in the listen queue. Raising the soft limit up
to the hard one needs no privilege.
"""

from __future__ import annotations

import resource
from collections.abc import Callable

Limits = tuple[int, int]
WANTED = 65536  # enough for thousands of concurrent clients; more is never asked for


def raised(soft: int, hard: int, wanted: int = WANTED) -> int:
    """The soft limit to set (pure): `wanted`, but never above `hard` nor below `soft`."""
    if soft == resource.RLIM_INFINITY:
        return soft
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    return max(soft, ceiling)


def raise_open_files(get: Callable[[int], Limits] = resource.getrlimit,
                     set_: Callable[[int, Limits], None] = resource.setrlimit) -> Limits:
    """Raise RLIMIT_NOFILE's soft limit (see `raised`); (before, after)."""
    soft, hard = get(resource.RLIMIT_NOFILE)
    new = raised(soft, hard)
    if new != soft:
        set_(resource.RLIMIT_NOFILE, (new, hard))
    return soft, new
