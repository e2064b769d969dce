"""Markdown for the engine benchmark's section of docs/benchmarks.md (pure, apart from reading
which machine it runs on).

Besides the table of runs it checks the targets of issue 4 against whichever runs are there:
fleet v1.0.0 took 1.11 s for 100 x 1,000 cold and 5.19 s for 100 x 3,000 on this machine class.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

COLUMNS = [("machines", "machines"), ("units", "units"), ("mode", "mode"), ("mix", "mix"),
           ("seconds", "seconds"), ("placements_per_s", "placements/s"), ("etcd_txns", "txns"),
           ("txns_per_placement", "txns/placement"), ("etcd_requests", "etcd requests"),
           ("etcd_reads", "reads"), ("engine_cpu_s", "engine CPU s"), ("engine_rss_mb", "engine RSS MiB"),
           ("load_s", "load s"),
           ("decide_s", "decide s"), ("commit_s", "commit s"), ("submit_seconds", "fleetctl s"),
           ("limit_s", "limit s"), ("limit_ratio", "s / limit")]


def machine_line() -> str:
    return (f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}")


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def table(results: Sequence[Any]) -> str:
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |",
             "|" + "|".join("---:" if i > 3 else "---" for i in range(len(COLUMNS))) + "|"]
    for r in results:
        lines.append("| " + " | ".join(_cell(getattr(r, field)) for field, _ in COLUMNS) + " |")
    return "\n".join(lines)


def _find(results: Sequence[Any], machines: int, units: int, mode: str = "cold") -> Any | None:
    return next((r for r in results if (r.machines, r.units, r.mode, r.mix) ==
                 (machines, units, mode, "plain")), None)


Check = tuple[str, Callable[[Sequence[Any]], tuple[str, bool] | None]]


def _cold_1000(rs: Sequence[Any]) -> tuple[str, bool] | None:
    r = _find(rs, 100, 1000)
    return (f"{r.seconds} s", r.seconds <= 0.11) if r else None


def _linear(rs: Sequence[Any]) -> tuple[str, bool] | None:
    small, big = _find(rs, 100, 1000), _find(rs, 100, 3000)
    if not (small and big):
        return None
    ratio = big.seconds / small.seconds
    return f"{ratio:.2f}x", ratio <= 3.2


def _cold_10000(rs: Sequence[Any]) -> tuple[str, bool] | None:
    r = _find(rs, 1000, 10000)
    return (f"{r.seconds} s", r.seconds <= 2) if r else None


def _cold_100000(rs: Sequence[Any]) -> tuple[str, bool] | None:
    r = _find(rs, 5000, 100000)
    return (f"{r.placements_per_s:.0f}/s", r.placements_per_s >= 2000) if r else None


def _live(rs: Sequence[Any]) -> tuple[str, bool] | None:
    lives = [r for r in rs if r.mode == "live" and r.units == 1000]
    if not lives:
        return None
    worst = max(r.seconds for r in lives)
    return f"{worst} s (slowest live run)", worst <= 1


def _txns(rs: Sequence[Any]) -> tuple[str, bool] | None:
    worst = max((r.txns_per_placement for r in rs), default=None)
    return (f"{worst} (highest)", worst <= 0.02) if worst is not None else None


def _near_limit(machines: int, units: int) -> Callable[[Sequence[Any]], tuple[str, bool] | None]:
    def check(rs: Sequence[Any]) -> tuple[str, bool] | None:
        r = _find(rs, machines, units)
        if r is None or getattr(r, "limit_ratio", None) is None:
            return None
        return f"{r.limit_ratio}x ({r.seconds} s / {r.limit_s} s)", r.limit_ratio <= 2.0
    return check


CHECKS: list[Check] = [
    ("100 x 1,000 cold <= 0.11 s (10x fleet's 1.11 s)", _cold_1000),
    ("100 x 3,000 <= 3.2x the 1,000-unit time (linear)", _linear),
    ("1,000 x 10,000 cold <= 2 s", _cold_10000),
    ("5,000 x 100,000 cold >= 2,000 placements/s", _cold_100000),
    ("live: 1,000 units in one fleetctl command -> all committed <= 1 s", _live),
    ("etcd txns per placement <= 0.02", _txns),
    ("1,000 x 10,000 cold <= 2.0x the bare-txn limit", _near_limit(1000, 10000)),
    ("5,000 x 100,000 cold <= 2.0x the bare-txn limit", _near_limit(5000, 100000)),
]


def targets(results: Sequence[Any]) -> str:
    lines = ["| target | measured | met |", "|---|---|---|"]
    for title, check in CHECKS:
        found = check(results)
        if found is not None:
            lines.append(f"| {title} | {found[0]} | {'yes' if found[1] else '**no**'} |")
    return "\n".join(lines)


INCREMENTAL_TARGETS = (
    ("one unit added to the placed cluster -> its placement committed", "one_unit_ms", 20.0),
    ("one machine lost -> all its units re-placed and committed", "one_machine_ms", 100.0),
)


def incremental_targets(r: Any) -> str:
    lines = ["| change | measured | target | met |", "|---|---:|---:|---|"]
    for title, field, target in INCREMENTAL_TARGETS:
        value = getattr(r, field)
        met = "yes" if value is not None and value <= target else "**no**"
        lines.append(f"| {title} (`{field}`) | {_cell(value)} ms | <= {target:g} ms | {met} |")
    return "\n".join(lines)


def incremental_markdown(r: Any, command: str, samples: int) -> str:
    """The --incremental section: the targets, then the cold run the changes were made on."""
    return (f"## Incremental engine (`{command}`)\n\n"
            f"Recorded {time.strftime('%Y-%m-%d')} on {machine_line()}; etcd 3.4, one member on "
            f"loopback, data on tmpfs. {r.units:,} units placed cold on {r.machines:,} machines, "
            "then, with the engine still leading, one change at a time, each once the engine was "
            "idle again, timed by the bench from its write to the assignments seen on its own "
            f"watch of assign/ (the median of {samples} changes each). A lost machine is a revoked "
            "lease; its time is less the engine's settle wait (1.5 s), which it takes on purpose so "
            "that machines failing together are seen together.\n\n"
            + incremental_targets(r) + "\n\n" + table([r]) + "\n\n```json\n"
            + json.dumps({"one_machine_ms": r.one_machine_ms, "one_unit_ms": r.one_unit_ms}) + "\n```\n")


def engine_markdown(results: Sequence[Any], command: str, repeat: int = 1) -> str:
    runs = f"Median of {repeat} runs for cases up to 10,000 units. " if repeat > 1 else ""
    return (f"## Engine throughput (`{command}`)\n\n"
            f"Recorded {time.strftime('%Y-%m-%d')} on {machine_line()}; etcd 3.4, one member on "
            f"loopback, data on tmpfs. {runs}Columns load/decide/commit come from the engine's "
            "own log (one pass for cold runs; live runs log only passes of more than 50 actions).\n\n"
            + targets(results) + "\n\n" + table(results) + "\n")
