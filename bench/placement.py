"""Placement quality: how many machines the real scheduler uses, against the lower bound.

Synthetic 2-D (cpu, memory) workloads go through `fleetd.engine.scheduler.schedule` exactly as
the engine calls it: batch (every unit in one snapshot) and online (one unit per pass, earlier
ones already assigned). For each policy it prints machines used / lower bound, where the lower
bound is max over resources of ceil(total demand / machine capacity). The last line is JSON.

    python -m bench.placement [--json] [--units N] [--record docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.record import record
from fleetd.engine.scheduler import BINPACK, SPREAD, Snapshot, UnitSpec, schedule
from fleetd.model.machine import Machine
from fleetd.model.requirements import Requirements
from fleetd.model.resources import Resources
from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment, Unit

GIB = 1024**3
CAPACITY = Resources(cpu=16_000, memory=64 * GIB)
SEED = 20261121
Shape = Callable[[random.Random], Resources]


def _uniform(cpu: tuple[float, float], mem: tuple[float, float]) -> Shape:
    return lambda rng: Resources(cpu=int(rng.uniform(*cpu) * 1000), memory=int(rng.uniform(*mem) * GIB))


def _menu(rng: random.Random) -> Resources:
    """Cloud-like instance shapes: 1:2, 1:4 and 1:8 CPU:GiB ratios."""
    cores = rng.choice([0.5, 1, 2, 4])
    return Resources(cpu=int(cores * 1000), memory=int(cores * rng.choice([2, 4, 8]) * GIB))


MIXES: dict[str, Shape] = {
    "small": _uniform((0.1, 2), (0.25, 8)),
    "menu": _menu,
    "cpu-heavy": _uniform((1, 6), (0.5, 6)),
    "memory-heavy": _uniform((0.1, 2), (4, 24)),
    "large": _uniform((0.5, 8), (1, 32)),
}


@dataclass(frozen=True)
class Result:
    mix: str
    policy: str
    arrival: str
    used: int
    bound: int
    seconds: float

    @property
    def ratio(self) -> float:
        return self.used / self.bound


def workload(mix: str, count: int) -> list[Resources]:
    rng = random.Random(f"{SEED}:{mix}")
    return [MIXES[mix](rng) for _ in range(count)]


def lower_bound(demands: list[Resources]) -> int:
    cpu = sum(d.cpu for d in demands) / CAPACITY.cpu
    mem = sum(d.memory for d in demands) / CAPACITY.memory
    return max(math.ceil(cpu), math.ceil(mem), 1)


def _specs(demands: list[Resources]) -> dict[str, UnitSpec]:
    specs = {}
    for i, demand in enumerate(demands):
        name = f"u{i:05d}.service"
        specs[name] = UnitSpec(Unit(name, "h", TargetState.LAUNCHED), Requirements(resources=demand))
    return specs


def _machines(bound: int) -> dict[str, Machine]:
    count = bound * 2 + 4
    return {f"{i:032x}": Machine(id=f"{i:032x}", capacity=CAPACITY) for i in range(1, count + 1)}


def run_batch(demands: list[Resources], policy: str) -> dict[str, str]:
    snapshot = Snapshot(_specs(demands), _machines(lower_bound(demands)), {}, policy)
    plan = schedule(snapshot)
    _check_all_placed(plan.pending)
    return {p.assignment.unit: p.assignment.machine for p in plan.placements}


def run_online(demands: list[Resources], policy: str) -> dict[str, str]:
    specs, machines = _specs(demands), _machines(lower_bound(demands))
    assignments: dict[str, Assignment] = {}
    for name in specs:
        snapshot = Snapshot({n: specs[n] for n in (*assignments, name)}, machines, assignments, policy)
        plan = schedule(snapshot)
        _check_all_placed(plan.pending)
        for p in plan.placements:
            assignments[p.assignment.unit] = p.assignment
    return {u: a.machine for u, a in assignments.items()}


def _check_all_placed(pending: tuple) -> None:
    if pending:
        raise SystemExit(f"bench: {len(pending)} units left pending: {pending[0].reason}")


def measure(mix: str, policy: str, arrival: str, count: int) -> Result:
    demands = workload(mix, count)
    started = time.perf_counter()
    where = (run_batch if arrival == "batch" else run_online)(demands, policy)
    seconds = time.perf_counter() - started
    return Result(mix, policy, arrival, len(set(where.values())), lower_bound(demands), seconds)


def summary(results: list[Result]) -> dict[str, float]:
    """Mean ratio per policy and arrival, plus the worst binpack ratios."""
    out: dict[str, float] = {}
    for policy in (BINPACK, SPREAD):
        for arrival in ("batch", "online"):
            ratios = [r.ratio for r in results if (r.policy, r.arrival) == (policy, arrival)]
            if ratios:
                out[f"{policy}_{arrival}_ratio"] = round(sum(ratios) / len(ratios), 4)
                out[f"{policy}_{arrival}_worst"] = round(max(ratios), 4)
    return out


def table(results: list[Result]) -> str:
    lines = ["| mix | policy | arrival | machines used | lower bound | ratio | seconds |",
             "|---|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r.mix} | {r.policy} | {r.arrival} | {r.used} | {r.bound} | {r.ratio:.3f} | "
              f"{r.seconds:.2f} |" for r in results]
    return "\n".join(lines)


def markdown(results: list[Result], figures: dict[str, float], count: int) -> str:
    head = (f"## Placement quality (`python -m bench.placement --units {count}`)\n\n"
            f"Recorded {time.strftime('%Y-%m-%d')} on {platform.machine()} / Python "
            f"{platform.python_version()}, {count} units per mix, machines of "
            f"{CAPACITY.cpu // 1000} CPU / {CAPACITY.memory // GIB}G. Goal: binpack <= 1.05x the "
            "lower bound on batches, <= 1.08x online. Spread uses every machine it is offered "
            "(here a pool of 2 x bound + 4): that is what spread is for.\n\n")
    return head + table(results) + "\n\n```json\n" + json.dumps(figures) + "\n```\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.placement", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON summary line")
    parser.add_argument("--units", type=int, default=400, help="units per mix (default 400)")
    parser.add_argument("--record", type=Path, metavar="FILE", help="also write the results into FILE")
    args = parser.parse_args(argv)
    results = []
    for mix in MIXES:
        for policy in (BINPACK, SPREAD):
            for arrival in ("batch", "online"):
                result = measure(mix, policy, arrival, args.units)
                results.append(result)
                if not args.json:
                    print(f"{mix:13} {policy:8} {arrival:7} used {result.used:4} / bound {result.bound:4}"
                          f" = {result.ratio:.3f}  ({result.seconds:.2f}s)", file=sys.stderr)
    figures = summary(results)
    if args.record:
        record(args.record, "placement", markdown(results, figures, args.units))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
