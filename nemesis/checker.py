"""Judging the cluster's real state against the workload's rules (pure over snapshots).

Duplicates: a non-global unit active on more than one host. Fenced duplicates: the same for
`AtMostOnce` units (at any sampled instant or at the end). Violations: a conflict pair on one
host, a pinned unit on another host than its `host=` metadata, a global unit missing from a
running host after convergence. Lost: a unit we launched that, once the wait is over, runs
nowhere or is gone from fleet's registry. `wait_converged` polls until nothing is wrong.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from nemesis.cluster import LocalCluster
from nemesis.sampler import Snapshot, placements, snapshot
from nemesis.workload import PREFIX, UnitSpec


@dataclass
class Findings:
    """What one look (or one run) found; every list holds unit names with a reason."""

    duplicates: list[str] = field(default_factory=list)
    fenced_duplicates: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)  # nem-* units running that we never launched

    def ok(self) -> bool:
        return not (self.duplicates or self.violations or self.missing)


def rule_violations(specs: list[UnitSpec], snap: Snapshot) -> list[str]:
    """Conflict pairs sharing a host and pinned units off their host (true at any instant)."""
    where = placements(snap)
    found = []
    for spec in specs:
        hosts = where.get(spec.name, [])
        if spec.kind == "conflict" and spec.name < spec.conflicts:
            shared = set(hosts) & set(where.get(spec.conflicts, []))
            found += [f"{spec.name}+{spec.conflicts} both on {h}" for h in sorted(shared)]
        if spec.kind == "pinned":
            found += [f"{spec.name} on {h}, wants host={spec.host}" for h in hosts if h != spec.host]
    return found


def duplicates(specs: list[UnitSpec], worst: dict[str, int]) -> tuple[list[str], list[str]]:
    """(all non-global duplicates, fenced ones) given each unit's max hosts at once."""
    multi = [s for s in specs if s.kind != "global" and worst.get(s.name, 0) > 1]
    dup = [f"{s.name} on {worst[s.name]} hosts at once" for s in multi]
    fenced = [f"{s.name} on {worst[s.name]} hosts at once" for s in multi if s.kind == "fenced"]
    return dup, fenced


def evaluate(specs: list[UnitSpec], snap: Snapshot) -> Findings:
    """Everything wrong with one snapshot, judged as a converged cluster should be."""
    where = placements(snap)
    worst = {u: len(h) for u, h in where.items()}
    dup, fenced = duplicates(specs, worst)
    missing = [s.name for s in specs if s.kind != "global" and not where.get(s.name)]
    violations = rule_violations(specs, snap)
    for spec in specs:
        if spec.kind == "global":
            absent = sorted(set(snap) - set(where.get(spec.name, [])))
            violations += [f"{spec.name} not on {h}" for h in absent]
    known = {s.name for s in specs}
    strays = sorted(u for u in where if u not in known)
    return Findings(dup, fenced, violations, missing, strays)


def wait_converged(lc: LocalCluster, specs: list[UnitSpec], since: float,
                   timeout: float) -> tuple[float | None, Findings]:
    """Seconds from `since` until a snapshot is fine (None on timeout), and the last findings."""
    deadline = time.monotonic() + timeout
    while True:
        found = evaluate(specs, snapshot(lc))
        if found.ok():
            return time.monotonic() - since, found
        if time.monotonic() >= deadline:
            return None, found
        time.sleep(0.25)


def registry_view(lc: LocalCluster, host: str | None = None) -> dict[str, str]:
    """fleet's desired state per nemesis unit, as etcd holds it (through list-unit-files)."""
    out = lc.fleetctl("list-unit-files", "--no-legend", "--fields=unit,dstate", host=host).stdout
    rows = (line.split() for line in out.splitlines() if line.strip())
    return {r[0]: r[1] for r in rows if len(r) >= 2 and r[0].startswith(PREFIX)}


def lost(specs: list[UnitSpec], final: Findings, registry: dict[str, str]) -> list[str]:
    """Launched units running nowhere after the wait, or no longer launched in the registry."""
    gone = [f"{s.name}: dstate {registry.get(s.name, 'missing')}" for s in specs
            if registry.get(s.name) != "launched"]
    return [f"{m}: runs nowhere" for m in final.missing] + gone
