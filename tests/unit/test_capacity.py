"""Machine capacity: configured values win; detection honours cgroup limits below the hardware."""

from __future__ import annotations

import os
from pathlib import Path

from fleetd.agent.capacity import detect_cpu, detect_memory, machine_capacity

GIB = 1 << 30


def test_configured_values_win(tmp_path: Path) -> None:
    cap = machine_capacity(1.5, "2G", root=tmp_path, meminfo=tmp_path / "none")
    assert (cap.cpu, cap.memory) == (1500, 2 * GIB)


def test_memory_from_meminfo_lowered_by_cgroup_limit(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        8388608 kB\nMemFree:  1 kB\n")
    assert detect_memory(tmp_path, meminfo) == 8 * GIB
    (tmp_path / "memory.max").write_text(f"{2 * GIB}\n")
    assert detect_memory(tmp_path, meminfo) == 2 * GIB
    (tmp_path / "memory.max").write_text("max\n")
    assert detect_memory(tmp_path, meminfo) == 8 * GIB
    assert detect_memory(tmp_path, tmp_path / "absent") == 0


def test_cpu_from_affinity_lowered_by_cgroup_quota(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    assert detect_cpu(tmp_path) == cores * 1000
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert detect_cpu(tmp_path) == min(cores * 1000, 500)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert detect_cpu(tmp_path) == cores * 1000
