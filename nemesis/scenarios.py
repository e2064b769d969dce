"""The faults, one small function each: inject, hold, heal (always, in `finally`).

Each takes a `Run` (the cluster, the run's workload, the hosts that stay healthy for the
API) and records what it measured in `run.figures`, extra broken rules in `run.violations`,
and when the fault was healed in `run.healed_at` (convergence is timed from there).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nemesis import probes
from nemesis.cluster import LocalCluster
from nemesis.sampler import placements, snapshot
from nemesis.workload import Submitter, UnitSpec, name, submit


@dataclass
class Run:
    """One run of one scenario: inputs, and what the scenario measured."""

    lc: LocalCluster
    tag: str
    specs: list[UnitSpec]
    ttl: float
    figures: dict[str, object] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    healed_at: float = 0.0

    def api(self, avoid: set[str] | frozenset[str] = frozenset()) -> str:
        """A running host outside `avoid` whose API fleetctl can use."""
        return next(h for h in self.lc.running_hosts() if h not in avoid)

    def home(self, kind: str = "fenced", i: int = 1) -> str:
        """The host running the workload's unit `kind`-`i` now."""
        hosts = placements(snapshot(self.lc)).get(name(self.tag, kind, i), [])
        return hosts[0] if hosts else self.lc.running_hosts()[0]

    def add(self, *specs: UnitSpec) -> None:
        self.specs.extend(specs)

    def healed(self) -> None:
        self.healed_at = time.monotonic()


MOVABLE = ("plain", "fenced", "conflict")


def movable_on(run: Run, host: str) -> list[str]:
    """Workload units on `host` that fleet should move when the host is lost."""
    where = placements(snapshot(run.lc))
    kinds = {s.name: s.kind for s in run.specs}
    return sorted(u for u, hs in where.items() if host in hs and kinds.get(u) in MOVABLE)


def wait_moved(run: Run, units: list[str], gone: set[str], t0: float, timeout: float) -> dict[str, float]:
    """Per unit, seconds from t0 until it is active on a host outside `gone`."""
    moved: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(moved) < len(units) and time.monotonic() < deadline:
        where = placements(snapshot(run.lc))
        for unit in units:
            if unit not in moved and set(where.get(unit, [])) - gone:
                moved[unit] = round(time.monotonic() - t0, 2)
        time.sleep(0.2)
    return moved


def power_off(run: Run) -> None:
    """Cut the power of a fenced unit's host; time each of its units until active elsewhere."""
    victim = run.home()
    units = movable_on(run, victim)
    t0 = time.monotonic()
    try:
        run.lc.kill_host(victim)
        moved = wait_moved(run, units, {victim}, t0, run.ttl + 30)
        run.figures["reschedule_s"] = sorted(moved.values())
        run.figures["not_moved"] = sorted(set(units) - set(moved))
    finally:
        run.lc.start_host(victim)
        run.healed()


def cut_network(run: Run) -> None:
    """Cut the network of a fenced unit's host for lease TTL + 5 s, then heal it."""
    victim = run.home()
    try:
        run.lc.cut(victim)
        time.sleep(run.ttl + 5)
    finally:
        run.lc.heal(victim)
        run.healed()


def _new_unit(run: Run, api: str, label: str) -> tuple[str, float]:
    spec = UnitSpec(name(run.tag, label, 1), "plain")
    run.add(spec)
    t0 = time.monotonic()
    submit(run.lc, [spec], host=api)
    return spec.name, t0


def kill_leader(run: Run) -> None:
    """SIGKILL the engine leader's fleetd, submit a unit at once, time until it runs."""
    leader = probes.engine_leader(run.lc) or run.api()
    run.figures["leader"] = leader
    run.lc.kill_fleet(leader)
    unit, t0 = _new_unit(run, run.api({leader}), "afterkill")
    took = probes.wait_running(run.lc, unit, t0, run.ttl + 30)
    run.figures["schedule_s"] = None if took is None else round(took, 2)
    run.healed()  # systemd restarts fleetd by itself


def sigstop_leader(run: Run) -> None:
    """SIGSTOP the engine leader's fleetd for longer than the lease TTL; time a new unit."""
    leader = probes.engine_leader(run.lc) or run.api()
    run.figures["leader"] = leader
    run.lc.freeze(leader)
    try:
        frozen_at = time.monotonic()
        unit, t0 = _new_unit(run, run.api({leader}), "whilestopped")
        took = probes.wait_running(run.lc, unit, t0, run.ttl + 20)
        run.figures["schedule_s"] = None if took is None else round(took, 2)
        run.figures["target_s"] = run.ttl + 1
        time.sleep(max(0.0, frozen_at + run.ttl + 2 - time.monotonic()))
    finally:
        run.lc.thaw(leader)
        run.healed()


def _with_submitter(run: Run, fault: Callable[[], None], heal: Callable[[], None], hold: float) -> None:
    """Keep submitting units while `fault` holds for `hold` s; record the longest fleetctl call."""
    sub = Submitter(run.lc, run.tag, run.api())
    sub.start()
    time.sleep(1)
    try:
        fault()
        time.sleep(hold)
    finally:
        heal()
        run.healed()
        sub.stop()  # the fault is over: the last call in flight finishes, no new ones
        run.add(*sub.specs)
        run.figures["max_stall_s"] = round(max(sub.durations, default=0.0), 2)
        run.figures["submits"] = len(sub.durations)
        run.figures["failed_submits"] = len(sub.errors)
        run.figures["submit_errors"] = sub.errors[:3]


def kill_etcd_leader(run: Run) -> None:
    """SIGKILL etcd's leader member for 5 s (workload keeps submitting), then restart it."""
    member = run.lc.etcd_leader() or 1
    run.figures["member"] = member
    _with_submitter(run, lambda: run.lc.etcd_kill(member), lambda: run.lc.etcd_start(member), 5)


def sigstop_etcd_member(run: Run) -> None:
    """SIGSTOP etcd member 1 (every client's first endpoint) for 8 s, then SIGCONT it."""
    run.figures["member"] = 1
    _with_submitter(run, lambda: run.lc.etcd_freeze(1), lambda: run.lc.etcd_thaw(1), 8)


def brake(run: Run) -> None:
    """Cut the power of 3 of 5 hosts at once: expect no mass rescheduling and an alarm."""
    victims = run.lc.running_hosts()[:3]
    units = sorted({u for v in victims for u in movable_on(run, v)})
    survivors = set(run.lc.running_hosts()) - set(victims)
    seen, stored = False, 0
    try:
        run.lc.kill_host(*victims)
        deadline = time.monotonic() + run.ttl + 5
        while time.monotonic() < deadline:
            seen = seen or probes.alarm_seen(run.lc, min(survivors))
            stored = max(stored, probes.alarms_in_etcd(run.lc))
            time.sleep(0.5)
        where = placements(snapshot(run.lc))
        moved = [u for u in units if set(where.get(u, [])) & survivors]
        run.figures.update(alarm_seen=seen, alarms_in_etcd=stored, mass_rescheduled=len(moved),
                           stranded=len(units))
        run.violations += [f"{u} rescheduled during the brake" for u in moved]
    finally:
        run.lc.start_host(*victims)
        run.healed()


def restart_during_start(run: Run) -> None:
    """Start 4 slow units pinned to one host and restart fleet.service there mid-StartUnit."""
    leader = probes.engine_leader(run.lc)
    target = next(h for h in reversed(run.lc.running_hosts()) if h != leader)
    specs = [UnitSpec(name(run.tag, "slow", i), "pinned", host=target, slow=True) for i in range(1, 5)]
    run.add(*specs)
    submit(run.lc, specs, host=run.api({target}))
    run.figures["caught_starting"] = probes.wait_activating(run.lc, target, {s.name for s in specs}, 15)
    try:
        run.lc.host_exec(target, "systemctl", "restart", "fleet.service", timeout=60)
    finally:
        run.healed()


def forged_leader(run: Run) -> None:
    """Overwrite the leader key with a lease-less value (issue 17's attack), submit a unit at
    once; time until a real leader holds the key again and until the unit runs."""
    t0 = time.monotonic()
    run.lc.etcdctl("put", f"{probes.PREFIX}leader", "intruder")
    unit, t1 = _new_unit(run, run.api(), "afterforgery")
    leader = probes.wait_real_leader(run.lc, run.ttl + 5)
    run.figures["replaced_s"] = None if leader is None else round(time.monotonic() - t0, 2)
    run.figures["target_s"] = run.ttl
    took = probes.wait_running(run.lc, unit, t1, run.ttl + 20)
    run.figures["schedule_s"] = None if took is None else round(took, 2)
    if leader is None:
        run.violations.append(f"the forged leader key still stood {run.ttl + 5} s later")
    run.healed()


SCENARIOS: dict[str, Callable[[Run], None]] = {
    "power-off": power_off,
    "cut-network": cut_network,
    "kill-leader": kill_leader,
    "sigstop-leader": sigstop_leader,
    "kill-etcd-leader": kill_etcd_leader,
    "sigstop-etcd-member": sigstop_etcd_member,
    "brake": brake,
    "restart-during-start": restart_during_start,
    "forged-leader": forged_leader,
}
