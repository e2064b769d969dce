"""Whether the leader key names a leader that may stand, or a forgery to replace (pure).

A real leader key is written by a campaign: the candidate's machine id, put on the lease that
also holds that machine's presence key (`machines/<id>`), so the two vanish together. etcd's
permissions cannot say "only with a lease", so every candidate checks this itself before it
defers to the key: a key on no lease, on a lease that is not the named machine's, or naming a
machine that is not live is a forgery (or a leftover of a crashed campaign) and is replaced.
A key naming this very machine while its engine does not hold it is replaced too: only the
engine that campaigned knows its fencing token, so nobody could ever lead on such a key. The
one exception is `own_key`: a key naming this machine on this engine's own lease is its own
campaign whose reply was lost (a txn that timed out after etcd applied it); the engine takes
it up, its token being the key's create revision.
"""

from __future__ import annotations

from fleetd.registry.kv import KeyValue


def own_key(leader: KeyValue | None, me: str, lease: int) -> bool:
    """Whether `leader` is this engine's own campaign: its machine id on its live `lease`."""
    return leader is not None and bool(lease) and leader.value == me and leader.lease == lease


def forged_because(leader: KeyValue | None, machine: KeyValue | None, me: str) -> str | None:
    """Why the leader key `leader` cannot stand (None: it stands, or there is none).

    `machine`: the presence key of the machine the leader key names (None if absent); `me`:
    this engine's machine id (the caller holds no leadership).
    """
    if leader is None:
        return None
    if leader.lease == 0:
        return "it is on no lease"
    if machine is None:
        return "it names no live machine"
    if machine.lease != leader.lease:
        return "its lease is not the lease of the machine it names"
    if leader.value == me:
        return "it names this machine, whose engine did not campaign for it"
    return None
