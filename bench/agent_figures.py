"""The agent benchmark's pure parts: unit files, what it saw and when, figures, its markdown.

`Timeline` collects per unit the first moment the bench saw it active on h1's system bus
(a PropertiesChanged signal) and in etcd (a state record on the watch of states/); with
systemd's own timestamps (`systemctl show`, CLOCK_MONOTONIC like the bench's clock) it gives
the latency spreads. No I/O here: `bench.agent` runs the host and feeds this.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

UNIT_PREFIX = "bench-agent-"
TIMESTAMPS = ("Id", "InactiveExitTimestampMonotonic", "ActiveEnterTimestampMonotonic")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def spread(name: str, values: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / max of `values` (milliseconds), keyed `<name>_ms_p50` and so on."""
    return {f"{name}_ms_p50": round(percentile(values, 50), 1),
            f"{name}_ms_p90": round(percentile(values, 90), 1),
            f"{name}_ms_max": round(max(values), 1)}


def unit_names(count: int) -> list[str]:
    return [f"{UNIT_PREFIX}{i:04d}.service" for i in range(count)]


def unit_text(name: str, machine_id: str) -> str:
    return (f"[Unit]\nDescription=bench.agent sleeper {name}\n\n[Service]\nType=exec\n"
            f"ExecStart=/bin/sleep infinity\n\n[X-Fleet]\nMachineID={machine_id}\n")


def parse_show(text: str) -> dict[str, dict[str, str]]:
    """`systemctl show -p A -p B unit...` output -> unit Id -> {property: value}."""
    units: dict[str, dict[str, str]] = {}
    for block in text.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in props:
            units[props["Id"]] = props
    return units


def cpu_seconds(stat: str, ticks_per_second: int) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def status_kib(status: str, key: str) -> int:
    """A `Key:   123 kB` figure of /proc/<pid>/status (or /proc/meminfo), in KiB; 0 if absent."""
    for line in status.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


@dataclass
class Timeline:
    """When each bench unit was first seen active: on the bus and in etcd; and the state writes."""

    on_bus: dict[str, float] = field(default_factory=dict)
    in_etcd: dict[str, float] = field(default_factory=dict)
    revisions: set[int] = field(default_factory=set)

    def signal(self, unit: str, active: str, now: float) -> None:
        if unit.startswith(UNIT_PREFIX) and active == "active":
            self.on_bus.setdefault(unit, now)

    def state(self, unit: str, kind: str, value: str, revision: int, now: float) -> None:
        """A watch event on states/<unit>/<h1>: `kind` "put" or "delete", `value` the record."""
        if not unit.startswith(UNIT_PREFIX):
            return
        self.revisions.add(revision)
        if kind == "put" and unit not in self.in_etcd and json.loads(value).get("active") == "active":
            self.in_etcd[unit] = now


def latencies(timeline: Timeline, shown: dict[str, dict[str, str]]) -> dict[str, float]:
    """Spreads over the units: systemd's own start, and each step from "active" to etcd."""
    steps: dict[str, list[float]] = {"systemd_start": [], "above_systemd": [], "start_to_etcd": [],
                                     "signal_after_active": [], "etcd_after_signal": []}
    for unit, seen in timeline.in_etcd.items():
        exited = int(shown[unit]["InactiveExitTimestampMonotonic"]) / 1e6
        entered = int(shown[unit]["ActiveEnterTimestampMonotonic"]) / 1e6
        steps["systemd_start"].append((entered - exited) * 1000)
        steps["above_systemd"].append((seen - entered) * 1000)
        steps["start_to_etcd"].append((seen - exited) * 1000)
        if unit in timeline.on_bus:
            steps["signal_after_active"].append((timeline.on_bus[unit] - entered) * 1000)
            steps["etcd_after_signal"].append((seen - timeline.on_bus[unit]) * 1000)
    return {k: v for name, values in steps.items() if values for k, v in spread(name, values).items()}


def json_line(figures: dict[str, float]) -> str:
    return json.dumps(figures, sort_keys=True)


def _triple(f: dict[str, float], name: str) -> str:
    keys = (f"{name}_ms_p50", f"{name}_ms_p90", f"{name}_ms_max")
    return " / ".join(f"{f[k]:g}" for k in keys) + " ms" if all(k in f for k in keys) else "-"


def markdown(f: dict[str, float], command: str, machine: str) -> str:
    """The benchmarks.md section: command, date, machine, figures against the goals, JSON."""
    rows = [
        ("fleetd RSS with the units running (VmRSS)", f"{f['rss_mib']:.1f} MiB", "<= 60 MB (57.2 MiB)"),
        ("fleetd RSS before the units (VmRSS)", f"{f['rss_empty_mib']:.1f} MiB", ""),
        (f"fleetd CPU over {f['idle_seconds']:g} s idle", f"{f['idle_cpu_percent']:.2f} %", "< 1 %"),
        ("etcd revisions during the idle window (any writer)", f"{f['idle_etcd_revisions']:g}", "0"),
        ("active in etcd above systemd's own (ActiveEnter -> etcd), p50 / p90 / max",
         _triple(f, "above_systemd"), "p50 <= 20 ms"),
        ("of which systemd emits the signal (ActiveEnter -> signal on the bus)",
         _triple(f, "signal_after_active"), ""),
        ("of which fleetd, etcd and the watch (signal -> etcd)", _triple(f, "etcd_after_signal"), ""),
        ("systemd's own start (InactiveExit -> ActiveEnter)", _triple(f, "systemd_start"), ""),
        ("start -> active in etcd (InactiveExit -> etcd)", _triple(f, "start_to_etcd"), ""),
        (f"etcd txns carrying the {f['units']:g} units' states until all were active",
         f"{f['state_txns']:g}", "few; one per publish pass"),
        ("`fleetctl start --no-block` -> every unit active in etcd", f"{f['launch_seconds']:.1f} s", ""),
    ]
    table = ["| figure | measured | goal |", "|---|---:|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    head = (f"## Agent on one real host (`{command}`)\n\n"
            f"Recorded {time.strftime('%Y-%m-%d')} on {machine}. One local-cluster host (systemd in "
            "systemd-nspawn) runs fleetd (agent, engine and API) and the units, `Type=exec` "
            "sleepers pinned to it by MachineID and started with one `fleetctl start --no-block`. "
            "All times are CLOCK_MONOTONIC, one kernel clock for systemd and the bench: systemd's "
            "`InactiveExitTimestampMonotonic`/`ActiveEnterTimestampMonotonic`, and when the bench "
            "first saw the unit active in a PropertiesChanged signal on the host's bus and in a "
            "state record on its own watch of `states/`. The bus listener is a child process of "
            "the bench and competes for the same CPUs (`--no-bus` leaves it out, and the split "
            "with it). States go out in one txn per publish pass (4 ms after the first change, "
            "one txn in flight): changes that happen together share a txn, but systemd completes "
            "these starts one after another over the whole launch.\n\n")
    return head + "\n".join(table) + "\n\n```json\n" + json_line(f) + "\n```\n"
