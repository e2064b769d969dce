"""Markdown for the engine benchmark's section of docs/benchmarks.md (pure)."""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from typing import Any

COLUMNS = [("machines", "machines"), ("units", "units"), ("mode", "mode"), ("mix", "mix"),
           ("seconds", "seconds"), ("placements_per_s", "placements/s"),
           ("etcd_txns", "txns"), ("txns_per_placement", "txns/placement"),
           ("etcd_requests", "requests"), ("etcd_reads", "reads"), ("engine_cpu_s", "engine CPU s")]


def machine_line() -> str:
    return (f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def table(results: Sequence[Any]) -> str:
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |",
             "|" + "|".join("---:" if i > 3 else "---" for i in range(len(COLUMNS))) + "|"]
    for r in results:
        lines.append("| " + " | ".join(str(getattr(r, field)) for field, _ in COLUMNS) + " |")
    return "\n".join(lines)


def engine_markdown(results: Sequence[Any], command: str) -> str:
    return (f"## Engine throughput (`{command}`)\n\n"
            f"Recorded {time.strftime('%Y-%m-%d')} on {machine_line()}; etcd 3.4 on loopback.\n\n"
            + table(results) + "\n")
