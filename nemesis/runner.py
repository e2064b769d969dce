"""One run of one scenario, start to finish, and the cluster's safety net between runs.

A run: submit the workload and wait until it runs cleanly; start the sampler; let the
scenario inject and heal its fault; wait for convergence (timed from the heal); judge what
the sampler and the final look saw; destroy the workload and wait until no host runs any of
it. `restore` brings back whatever a failed scenario left broken.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from nemesis import checker, probes
from nemesis.cluster import LocalCluster
from nemesis.sampler import Sampler, snapshot
from nemesis.scenarios import SCENARIOS, Run
from nemesis.workload import base_workload, destroy_all, submit

HOSTS = 5


@dataclass
class Result:
    """What one run of one scenario found; the lists are the evidence."""

    scenario: str
    run: int
    duplicates: list[str] = field(default_factory=list)
    fenced_duplicates: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    converge_s: float | None = None
    figures: dict[str, object] = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        return self.converge_s is not None


def tag_of(scenario: str, run: int) -> str:
    """Per-run unit name tag: the scenario's initials, the run, and a clock digit group
    (po3t4711) so that leftovers of an earlier invocation never share a name."""
    return "".join(w[0] for w in scenario.split("-")) + f"{run}t{int(time.time()) % 10000}"


def restore(lc: LocalCluster) -> None:
    """Heal cut hosts, start stopped ones, restart dead etcd members, thaw frozen ones."""
    lc.restore_etcd()
    for host in lc.hosts():
        if lc.is_cut(host):
            lc.heal(host)
    stopped = [h for h in lc.hosts() if not lc.is_running(h)]
    if stopped:
        lc.start_host(*stopped)


def cleanup(lc: LocalCluster, timeout: float = 60) -> None:
    """Destroy every nemesis unit and wait until no host runs one."""
    destroy_all(lc)
    lc.wait_until(lambda: not any(snapshot(lc).values()), timeout, "no nem-* unit active on any host")


def run_once(lc: LocalCluster, scenario: str, number: int, converge_timeout: float = 60) -> Result:
    """Run `scenario` once on a clean, healthy cluster and judge it."""
    hosts = lc.running_hosts()
    tag = tag_of(scenario, number)
    run = Run(lc, tag, base_workload(tag, hosts), probes.lease_ttl(lc, hosts[0]))
    submit(lc, run.specs)
    setup_s, found = checker.wait_converged(lc, run.specs, time.monotonic(), converge_timeout)
    result = Result(scenario, number, figures={"setup_s": setup_s and round(setup_s, 2)})
    if setup_s is None:
        result.violations.append(f"workload never ran cleanly before the fault: {found}")
    sampler = Sampler(lc)
    sampler.start()
    try:
        SCENARIOS[scenario](run)
        conv_s, final = checker.wait_converged(lc, run.specs, run.healed_at, converge_timeout)
    finally:
        sampler.stop()
        restore(lc)
    judge(result, run, sampler, conv_s, final)
    cleanup(lc)
    return result


def judge(result: Result, run: Run, sampler: Sampler, conv_s: float | None, final: checker.Findings) -> None:
    """Fill `result` from the sampler's worst instants (it ran until convergence), the final
    look and the registry."""
    result.duplicates, result.fenced_duplicates = checker.duplicates(run.specs, dict(sampler.worst))
    seen = {v for _, snap in sampler.samples for v in checker.rule_violations(run.specs, snap)}
    result.violations += sorted(seen) + run.violations
    if conv_s is None:
        result.violations += [v for v in final.violations if v not in seen]
    registry = checker.registry_view(run.lc)
    result.lost = checker.lost(run.specs, final if conv_s is None else checker.Findings(), registry)
    result.converge_s = None if conv_s is None else round(conv_s, 2)
    result.figures.update(run.figures)
    if final.strays:
        result.figures["strays"] = final.strays

