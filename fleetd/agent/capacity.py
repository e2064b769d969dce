"""What this host can offer units: CPU cores and memory, from config or detected.

Detection reads the CPUs this process may run on and the cgroup v2 limits of the whole
container/host (cpu.max, memory.max) when they are tighter than the hardware, else
/proc/meminfo's MemTotal. A configured value (capacity_cpu, capacity_memory) wins.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetd.model.resources import Resources, parse_size

CGROUP_ROOT = Path("/sys/fs/cgroup")
MEMINFO = Path("/proc/meminfo")


def machine_capacity(cpu_cores: float, memory: str, root: Path = CGROUP_ROOT,
                     meminfo: Path = MEMINFO) -> Resources:
    """Configured capacity where given (cores > 0, memory non-empty), detected otherwise."""
    cpu = round(cpu_cores * 1000) if cpu_cores > 0 else detect_cpu(root)
    mem = parse_size(memory, "capacity_memory") if memory else detect_memory(root, meminfo)
    return Resources(cpu=cpu, memory=mem)


def detect_cpu(root: Path = CGROUP_ROOT) -> int:
    """Millicores: usable CPUs, lowered by a cgroup cpu.max quota if there is one."""
    cores = len(os.sched_getaffinity(0)) * 1000
    quota = _read(root / "cpu.max").split()
    if len(quota) == 2 and quota[0].isdigit() and quota[1].isdigit() and int(quota[1]):
        cores = min(cores, int(quota[0]) * 1000 // int(quota[1]))
    return cores


def detect_memory(root: Path = CGROUP_ROOT, meminfo: Path = MEMINFO) -> int:
    """Bytes: MemTotal, lowered by a cgroup memory.max limit if there is one; 0 if unknown."""
    total = 0
    for line in _read(meminfo).splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            total = int(parts[1]) * 1024 if len(parts) >= 2 and parts[1].isdigit() else 0
    limit = _read(root / "memory.max").strip()
    if limit.isdigit() and (not total or int(limit) < total):
        total = int(limit)
    return total


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
