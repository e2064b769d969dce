"""What the loops and the API tell the metrics about (pure): the `Recorder` port, a recorder that ignores
everything, and the bounded categories that stand for the scheduler's free-text reasons.

Engine, agent and etcd adapter depend on `Recorder` only; the composition root hands them
`fleetd.metrics.Metrics` (the one user of prometheus_client), tests and tools get `NoRecorder`.
A recorder's methods must be cheap: they run on every etcd call and every pass.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Protocol

# (how the reason starts, category): the first match wins. Reasons come from
# fleetd.engine.evictions, .placement, .reasons and .departures; only their fixed opening words
# are matched, never the unit names or metadata that follow.
_PATTERNS = tuple((re.compile(pattern), name) for pattern, name in (
    (r"machine \S+ vanished in a mass failure", "mass_failure"),
    (r"no machines in the cluster", "no_machines"),
    (r"a template cannot", "template"),
    (r"insufficient ", "resources"),
    (r"conflicts with ", "conflicts"),
    (r"(follows a unit )?replaced by ", "replaced"),
    (r"(waiting for peer |peers? \S)", "peer"),
    (r"(no machine matches|\d+ machines? do(es)? not match|machine \S+ does not match) metadata",
     "metadata"),
    (r"machine \S+ (is not \S+ )?\(MachineID\)", "machine_id"),
    (r"machine \S+ went away", "machine_gone"),
    (r"(machine \S+ is (draining|cordoned)|\d+ machines are cordoned)", "draining"),
    (r"moved off machine |machine \S+ (is the machine it moves|is not \S+, where it moves)",
     "moved"),
    (r"failed on |machine \S+ failed it already", "failed"),
    (r"unit no longer exists", "unit_removed"),
    (r"desired state is ", "desired_state"),
    (r"global units ", "global"),
))
PENDING_CATEGORIES = ("resources", "conflicts", "replaced", "peer", "metadata", "machine_id",
                      "no_machines", "template", "mass_failure", "draining", "moved", "failed",
                      "other")
AUTH_FAILURES = ("missing", "invalid", "locked_out", "missing_cert", "bad_cert")
EVICTION_CATEGORIES = ("machine_gone", "unit_removed", "desired_state", "conflicts", "replaced",
                       "peer", "metadata", "machine_id", "global", "template", "draining", "moved",
                       "failed", "other")


def category(reason: str) -> str:
    """The bounded category of one scheduler reason (`other` for words not known here)."""
    for pattern, name in _PATTERNS:
        if pattern.match(reason):
            return name
    return "other"


def by_category(reasons: Iterable[str]) -> dict[str, int]:
    """How many reasons fall in each category (each distinct text is classified once)."""
    counts: Counter[str] = Counter()
    for reason, n in Counter(reasons).items():
        counts[category(reason)] += n
    return dict(counts)


class Recorder(Protocol):
    """Where the loops report what they did; every method returns at once."""

    def leadership(self, leading: bool) -> None:
        """The engine became leader (True) or stepped down (False)."""

    def engine_pass(self, seconds: float, placements: int, updates: int,
                    evictions: Mapping[str, int], pending: Mapping[str, int]) -> None:
        """A scheduling pass committed: its duration, actions, and evictions/pending units by
        category (pending: every unit pending after this pass)."""

    def engine_failure(self, reason: str) -> None:
        """A pass or leadership session failed: `etcd_unavailable`, `leadership_lost`, or
        `forged_leader` (a candidate found a forged leader key and deleted it)."""

    def unit_files_deleted(self, count: int) -> None:
        """The leader deleted `count` unit files no unit referenced (fleetd.engine.file_gc)."""

    def etcd_request(self, op: str, seconds: float | None, error: str | None) -> None:
        """One etcd call of kind `op`; `seconds` None for calls that wait by design (watch
        reads); `error` a short code (`unavailable`, `deadline_exceeded`, ...) or None."""

    def agent_pass(self, seconds: float, ok: bool) -> None:
        """One agent pass ended, all tasks done (ok) or stopped at a failure / error."""

    def agent_task(self, task: str, ok: bool) -> None:
        """One agent task (load, unload, reload, start, stop) done or failed."""

    def agent_relist_catches(self, keys: int) -> None:
        """A safety-net listing found `keys` changes the watches never delivered (a bug)."""

    def agent_pass_abandoned(self) -> None:
        """An agent pass ran past its timeout and was abandoned (a bug)."""

    def api_auth_failure(self, reason: str) -> None:
        """A TCP request refused for its credentials: `missing`, `invalid` (a wrong token or
        dashboard login) or `locked_out` (its address failed too often; token not checked);
        `missing_cert` (no client certificate where one is needed: a 401, or a handshake
        refused under api_auth=token with a client CA) or `bad_cert` (a connection whose
        client certificate did not verify, refused in the TLS handshake)."""


class NoRecorder:
    """A `Recorder` that keeps nothing."""

    def leadership(self, leading: bool) -> None:
        return None

    def engine_pass(self, seconds: float, placements: int, updates: int,
                    evictions: Mapping[str, int], pending: Mapping[str, int]) -> None:
        return None

    def engine_failure(self, reason: str) -> None:
        return None

    def unit_files_deleted(self, count: int) -> None:
        return None

    def etcd_request(self, op: str, seconds: float | None, error: str | None) -> None:
        return None

    def agent_pass(self, seconds: float, ok: bool) -> None:
        return None

    def agent_task(self, task: str, ok: bool) -> None:
        return None

    def agent_relist_catches(self, keys: int) -> None:
        return None

    def agent_pass_abandoned(self) -> None:
        return None

    def api_auth_failure(self, reason: str) -> None:
        return None
