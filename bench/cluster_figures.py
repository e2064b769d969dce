"""The cluster benchmark's figures (pure): etcd's request counter, the targets, and its section
of docs/benchmarks.md, a table that gains one row per recorded run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REQUESTS = "grpc_server_msg_received_total"  # every unary request and every stream message
ZERO = ("stalls", "relist_catches", "abandoned", "duplicates", "lost")
TARGETS = {  # for --agents 1000 --units 100000 on a 2-core machine
    "placed_s": 15, "active_s": 90, "idle_etcd_rps_per_agent": 1.2, "lose_one_s": 10,
    "lose_tenth_s": 15, "leader_kill_s": 8, "list_units_s": 3,
}
COLUMNS = [("date", "date"), ("agents", "agents"), ("units", "units"), ("engines", "engines"),
           ("processes", "processes"), ("placed_s", "placed s"), ("active_s", "active s"),
           ("idle_etcd_rps_per_agent", "idle etcd req/s per agent"), ("lose_one_s", "lose one s"),
           ("lose_tenth_s", "lose a tenth s"), ("leader_kill_s", "leader kill s"),
           ("list_units_s", "list-units s"), ("zero_counters", "stalls/catches/abandoned/dup/lost"),
           ("rss_mb_per_agent", "RSS MiB per agent"), ("peak_rss_mb", "peak RSS MiB per process"),
           ("etcd_db_mb", "etcd db MiB"), ("commit", "commit")]
TITLE = "## Cluster: real agents on real etcd (`python -m bench.cluster`)"
HEADER = "| " + " | ".join(title for _, title in COLUMNS) + " |"


def metric_sum(text: str, name: str) -> float:
    """The sum of every sample of metric `name` in a Prometheus text page."""
    total = 0.0
    for row in text.splitlines():
        if row.startswith(name) and row[len(name):len(name) + 1] in ("{", " "):
            total += float(row.rsplit(" ", 1)[1])
    return total


def misses(figures: Mapping[str, Any]) -> list[str]:
    """The targets a run at the target size missed, as `key value > target`."""
    return [f"{key} {figures[key]} > {target}" for key, target in TARGETS.items()
            if figures.get(key) is not None and figures[key] > target]


def nonzero(figures: Mapping[str, Any]) -> list[str]:
    """The counters that must be 0 and are not."""
    return [f"{key}={figures[key]}" for key in ZERO if figures.get(key)]


def row(figures: Mapping[str, Any]) -> str:
    cells = {**figures, "zero_counters": "/".join(str(figures.get(k, "")) for k in ZERO)}
    return "| " + " | ".join(str(cells.get(key, "")) for key, _ in COLUMNS) + " |"


def section(old: str | None, figures: Mapping[str, Any], notes: str) -> str:
    """The section text with the rows already recorded in `old` (its previous text) and this
    run's row last."""
    rows = [line for line in (old or "").splitlines()
            if line.startswith("| ") and line != HEADER and line.count("|") == len(COLUMNS) + 1]
    targets = "\n".join(f"| {key} <= {value} |" for key, value in TARGETS.items())
    return "\n".join([
        TITLE, "", notes, "",
        "Targets for `--agents 1000 --units 100000`; every counter in the zero column must be 0 "
        "in every run:", "", "| target |", "|---|", targets, "",
        HEADER, "|" + "|".join("---" if i < 1 else "---:" for i in range(len(COLUMNS))) + "|",
        *rows, row(figures),
    ])
