"""The mixed workload: unit specs, their files, and submitting them through fleetctl.

Units are tiny `/bin/sleep infinity` services named `nem-<tag>-<kind>-<i>.service`. Kinds:
plain, fenced (`AtMostOnce=true`: must never run on two hosts at once), conflict pairs,
pinned (`MachineMetadata=host=hN`) and one global unit. `Submitter` keeps submitting new
units in the background (during etcd faults) and records how long each fleetctl call took.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from nemesis.cluster import LocalCluster

PREFIX = "nem-"


@dataclass(frozen=True)
class UnitSpec:
    """One workload unit and the rule it must obey."""

    name: str
    kind: str  # plain | fenced | conflict | pinned | global
    conflicts: str = ""  # the partner unit of a conflict pair
    host: str = ""  # the host a pinned unit must run on
    slow: bool = False  # 1.5 s in ExecStartPre: its StartUnit job stays open that long

    def text(self) -> str:
        xfleet = {
            "fenced": "AtMostOnce=true\n",
            "conflict": f"Conflicts={self.conflicts}\n",
            "pinned": f"MachineMetadata=host={self.host}\n",
            "global": "Global=true\n",
        }.get(self.kind, "")
        pre = "ExecStartPre=/bin/sleep 1.5\n" if self.slow else ""
        unit = (f"[Unit]\nDescription=nemesis {self.kind} unit\n\n"
                f"[Service]\n{pre}ExecStart=/bin/sleep infinity\n")
        return unit + (f"\n[X-Fleet]\n{xfleet}" if xfleet else "")


def name(tag: str, kind: str, i: int | str) -> str:
    return f"{PREFIX}{tag}-{kind}-{i}.service"


def base_workload(tag: str, hosts: list[str]) -> list[UnitSpec]:
    """3 plain, 2 fenced, 1 conflict pair, 2 pinned (on the last two hosts), 1 global."""
    a, b = name(tag, "conflict", "a"), name(tag, "conflict", "b")
    specs = [UnitSpec(name(tag, "plain", i), "plain") for i in (1, 2, 3)]
    specs += [UnitSpec(name(tag, "fenced", i), "fenced") for i in (1, 2)]
    specs += [UnitSpec(a, "conflict", conflicts=b), UnitSpec(b, "conflict", conflicts=a)]
    specs += [UnitSpec(name(tag, "pinned", h), "pinned", host=h) for h in hosts[-2:]]
    specs.append(UnitSpec(name(tag, "global", 1), "global"))
    return specs


def write(specs: list[UnitSpec], directory: Path) -> list[str]:
    paths = []
    for spec in specs:
        path = directory / spec.name
        path.write_text(spec.text())
        paths.append(str(path))
    return paths


def submit(lc: LocalCluster, specs: list[UnitSpec], host: str | None = None, timeout: float = 60) -> float:
    """`fleetctl start --no-block` the units through `host`'s API; returns the call's seconds."""
    with tempfile.TemporaryDirectory(prefix="nemesis-") as tmp:
        paths = write(specs, Path(tmp))
        t0 = time.monotonic()
        lc.fleetctl("start", "--no-block", *paths, host=host, timeout=timeout)
        return time.monotonic() - t0


def destroy_all(lc: LocalCluster, host: str | None = None) -> None:
    """Destroy every nemesis unit fleet knows."""
    out = lc.fleetctl("list-unit-files", "--no-legend", "--fields=unit", host=host).stdout
    units = [u for u in out.split() if u.startswith(PREFIX)]
    if units:
        lc.fleetctl("destroy", *units, host=host, timeout=120)


def last_line(text: str) -> str:
    """The last non-empty line of a failure (fleetctl's own error message)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else text


class Submitter(threading.Thread):
    """Submits one new plain unit every `interval` s until stopped; records each call's time."""

    def __init__(self, lc: LocalCluster, tag: str, host: str, interval: float = 0.5):
        super().__init__(name="nemesis-submitter", daemon=True)
        self.lc, self.tag, self.host, self.interval = lc, tag, host, interval
        self.specs: list[UnitSpec] = []
        self.durations: list[float] = []
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self._halt.is_set():
            i += 1
            spec = UnitSpec(name(self.tag, "during", i), "plain")
            t0 = time.monotonic()
            try:
                submit(self.lc, [spec], host=self.host, timeout=60)
                self.specs.append(spec)
            except Exception as e:  # a failed submit is a finding, not a crash
                self.errors.append(last_line(str(e)))
            self.durations.append(time.monotonic() - t0)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=90)
