"""The cluster benchmark's smoke run: 100 real agents, 10,000 units, every failure phase.

It runs `python -m bench.cluster` as a user would (its own 3-member etcd, its own processes)
and asserts only what must hold on any machine: every counter that must be 0 is 0 (no stall
report, no relist catch, no abandoned pass, no unit active twice, none lost) and every phase
produced its figure. Times are the benchmark's business (docs/benchmarks.md), never asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import require_etcd

from bench import cluster_figures

REPO = Path(__file__).resolve().parents[2]
PHASES = ("placed_s", "active_s", "idle_etcd_rps_per_agent", "list_units_s", "lose_one_s",
          "lose_tenth_s", "leader_kill_s")


def test_smoke_run_has_every_figure_and_zero_counters() -> None:
    require_etcd()
    done = subprocess.run(
        [sys.executable, "-m", "bench.cluster", "--agents", "100", "--units", "10000",
         "--idle-seconds", "10", "--timeout", "300", "--no-record"],
        capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.stdout.strip(), done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert cluster_figures.nonzero(figures) == [], done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(isinstance(figures.get(key), float | int) for key in PHASES), figures
