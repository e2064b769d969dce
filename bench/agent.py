"""Agent cost on one real host: fleetd's memory, idle CPU and state-report latency with N units.

Uses the local cluster (`vagrant/local-cluster`; brought up with one host if no h1 runs, and
taken down again afterwards). It submits N `Type=exec` sleepers pinned to h1 with one
`fleetctl start --no-block`, watches `states/` in etcd, and has a child process listen to
h1's system bus (PropertiesChanged, through fleetd's own D-Bus adapter; a process of its own
so that parsing signals never delays the watch). When every unit is active in etcd it reads
systemd's own timestamps in h1 (`systemctl show`; CLOCK_MONOTONIC, the kernel clock the
bench uses too). Per unit (see `bench.agent_figures.latencies`):
  systemd's own start:   ActiveEnter - InactiveExit
  above systemd's own:   active seen in etcd - ActiveEnter
                         = (signal seen on the bus - ActiveEnter) + (etcd - signal)
Then fleetd's RSS (/proc/<pid>/status of h1's fleetd, found by its pid namespace) and its
CPU time (utime + stime) over an idle window; then the units are destroyed. The last line
printed is one JSON object.

    python -m bench.agent [--units 200] [--idle-seconds 60] [--no-bus] [--json] [--record FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from bench.agent_figures import (
    TIMESTAMPS,
    UNIT_PREFIX,
    Timeline,
    cpu_seconds,
    json_line,
    latencies,
    markdown,
    parse_show,
    status_kib,
    unit_names,
    unit_text,
)
from bench.record import record
from fleetd.registry.etcd import EtcdKV
from fleetd.registry.keys import Keys, normalize_prefix
from fleetd.registry.kv import KV
from fleetd.systemd.base import Activity
from fleetd.systemd.dbus import DbusUnitManager

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "vagrant" / "local-cluster"
FLEETCTL = REPO / ".venv" / "bin" / "fleetctl"
STATE = Path(os.environ.get("LOCAL_CLUSTER_STATE", "/run/fleet-local-cluster"))
HOST = "h1"
PREFIX = "/_coreos.com/fleet/"
SETTLE_SECONDS = 5.0


# the host and the cluster -------------------------------------------------------------------


def run(args: Sequence[str | os.PathLike[str]], timeout: float = 600,
        env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"bench: `{' '.join(map(str, args))}` exited {proc.returncode}:\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def leader_pid() -> int | None:
    """PID of h1's systemd if h1 runs (the tool's state directory says which)."""
    try:
        pid = int((STATE / HOST / "leader").read_text())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}/comm").exists() else None


def in_host(leader: int, *cmd: str) -> str:
    return run(["nsenter", "-t", str(leader), "-a", *cmd], timeout=120)


def fleetd_pid(leader: int) -> int:
    """The fleetd process inside h1, seen from here: same pid namespace, `-m fleetd` command."""
    namespace = os.readlink(f"/proc/{leader}/ns/pid")
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and os.readlink(entry / "ns/pid") == namespace \
                    and b"-m\0fleetd\0" in (entry / "cmdline").read_bytes():
                return int(entry.name)
    raise SystemExit("bench: no fleetd process found in h1")


def fleetctl(*args: str) -> str:
    return run([FLEETCTL, *args], env={"FLEETCTL_ENDPOINT": f"unix://{STATE / HOST / 'fleet.sock'}"})


def machine_description() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                  if ln.startswith("model name")), platform.machine())
    mem = status_kib(Path("/proc/meminfo").read_text(), "MemTotal")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    head += " with uncommitted changes" if dirty else ""
    return (f"{model}, {os.cpu_count()} CPUs, {mem / 2**20:.0f} GiB, Linux {platform.release()}, "
            f"Python {platform.python_version()} (bench) / the host's python3 (fleetd), commit {head}")


# the run -------------------------------------------------------------------------------------


class Bench:
    """One run against h1; `figures` collects the results."""

    def __init__(self, kv: KV, leader: int, machine_id: str, count: int, idle_seconds: float,
                 bus: BusListener | None) -> None:
        self.kv, self.leader, self.machine_id, self.bus = kv, leader, machine_id, bus
        self.keys = Keys(normalize_prefix(PREFIX))
        self.names = unit_names(count)
        self.idle_seconds = idle_seconds
        self.timeline = Timeline()
        self.figures: dict[str, float] = {"units": count, "idle_seconds": idle_seconds}

    async def watch_states(self, start: int) -> None:
        async for event in self.kv.watch_prefix(self.keys.states, start):
            unit, machine = self.keys.split_pair(event.key, self.keys.states)
            if machine == self.machine_id:
                self.timeline.state(unit, event.kind, event.value, event.mod_revision, time.monotonic())

    async def measure(self) -> None:
        await self.remove_units()  # left over by a broken run
        pid = fleetd_pid(self.leader)
        self.figures["rss_empty_mib"] = self.rss(pid)
        started = time.monotonic()
        await asyncio.to_thread(self.submit)
        await self.until(lambda: len(self.timeline.in_etcd) == len(self.names), 600, "every unit active")
        self.figures["launch_seconds"] = round(time.monotonic() - started, 2)
        self.figures["state_txns"] = len(self.timeline.revisions)
        self.timeline.on_bus = self.bus.collect() if self.bus else {}
        shown = parse_show(in_host(self.leader, "systemctl", "show", *(f"-p{p}" for p in TIMESTAMPS),
                                   *self.names))
        self.figures.update(latencies(self.timeline, shown))
        await asyncio.sleep(SETTLE_SECONDS)
        await self.idle(fleetd_pid(self.leader))

    def submit(self) -> None:
        with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
            paths = []
            for name in self.names:
                path = Path(tmp, name)
                path.write_text(unit_text(name, self.machine_id))
                paths.append(str(path))
            fleetctl("start", "--no-block", *paths)

    async def idle(self, pid: int) -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        stat = Path(f"/proc/{pid}/stat")
        revision, cpu, began = await self.revision(), cpu_seconds(stat.read_text(), ticks), time.monotonic()
        await asyncio.sleep(self.idle_seconds)
        used, elapsed = cpu_seconds(stat.read_text(), ticks) - cpu, time.monotonic() - began
        self.figures["idle_cpu_percent"] = round(100 * used / elapsed, 3)
        self.figures["idle_etcd_revisions"] = await self.revision() - revision
        self.figures["rss_mib"] = self.rss(pid)
        self.figures["rss_peak_mib"] = round(status_kib(Path(f"/proc/{pid}/status").read_text(),
                                                        "VmHWM") / 1024, 1)

    @staticmethod
    def rss(pid: int) -> float:
        return round(status_kib(Path(f"/proc/{pid}/status").read_text(), "VmRSS") / 1024, 1)

    async def revision(self) -> int:
        return (await self.kv.get_prefix(self.keys.leader)).revision

    async def remove_units(self) -> None:
        """Destroy every bench unit in the cluster (this run's or a broken run's) and wait until
        h1 has reported them gone."""
        listed = fleetctl("list-unit-files", "--no-legend", "--fields=unit").split()
        present = [n for n in listed if n.startswith(UNIT_PREFIX)]
        if present:
            await asyncio.to_thread(fleetctl, "destroy", "--no-block", *present)
        deadline = time.monotonic() + 300
        while await self.states_left():
            if time.monotonic() > deadline:
                raise SystemExit("bench: timed out after 300s waiting for the units' states to go")
            await asyncio.sleep(0.2)

    async def states_left(self) -> int:
        listing = await self.kv.get_prefix(self.keys.states + UNIT_PREFIX)
        return len(listing.items)

    @staticmethod
    async def until(done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: timed out after {timeout:g}s waiting for {what}")
            await asyncio.sleep(0.05)


# the bus listener: a process of its own, so that parsing signals never delays the etcd watch


def listen_to_bus(address: str, conn: Connection) -> None:
    """Child process: note when each bench unit is first signalled active; send that on request."""
    asyncio.run(_listen(address, conn))


async def _listen(address: str, conn: Connection) -> None:
    bus = DbusUnitManager(bus_address=address, units_directory="/run/bench-agent/none")
    timeline = Timeline()

    def on_change(unit: str, activity: Activity | None) -> None:
        if activity is not None:
            timeline.signal(unit, activity.active, time.monotonic())

    await bus.connect()
    bus.on_change(on_change)
    conn.send("listening")
    asked = asyncio.Event()
    asyncio.get_running_loop().add_reader(conn.fileno(), asked.set)
    await asked.wait()
    conn.recv()
    conn.send(timeline.on_bus)
    await bus.close()


class BusListener:
    """Runs `listen_to_bus` on h1's system bus (seen from here) and collects what it saw."""

    def __init__(self, leader: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        address = f"unix:path=/proc/{leader}/root/run/dbus/system_bus_socket"
        self.process = context.Process(target=listen_to_bus, args=(address, child), daemon=True)

    def start(self) -> None:
        self.process.start()
        if not self.conn.poll(30) or self.conn.recv() != "listening":
            raise SystemExit("bench: the bus listener did not start")

    def collect(self) -> dict[str, float]:
        self.conn.send("report")
        found: dict[str, float] = self.conn.recv() if self.conn.poll(30) else {}
        self.process.join(10)
        return found

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()


async def bench_host(args: argparse.Namespace, leader: int) -> dict[str, float]:
    machine_id = (STATE / HOST / "machine-id").read_text().strip()
    endpoint = (STATE / "etcd" / "endpoint").read_text().strip()
    kv, bus = EtcdKV([endpoint], request_timeout=10), None if args.no_bus else BusListener(leader)
    bench = Bench(kv, leader, machine_id, args.units, args.idle_seconds, bus)
    if bus:
        bus.start()
    start = (await kv.get_prefix(bench.keys.states)).revision + 1
    watch = asyncio.create_task(bench.watch_states(start))
    try:
        await bench.measure()
        report(bench.figures, args.json)
    finally:
        if bus:
            bus.stop()
        await bench.remove_units()
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watch
        await kv.close()
    return bench.figures


def report(figures: dict[str, float], quiet: bool) -> None:
    if quiet:
        return
    for key in sorted(figures):
        print(f"{key:28} {figures[key]:g}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agent", description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=200, help="units to launch on h1 (default 200)")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="idle CPU window (default 60)")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary line")
    parser.add_argument("--no-bus", action="store_true",
                        help="do not listen to h1's bus (no split of the latency; one process less "
                             "competing for the CPUs)")
    parser.add_argument("--record", type=Path, metavar="FILE", help="also write the results into FILE")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (it drives the local cluster and reads other processes)")
    started_here = leader_pid() is None
    if started_here:
        run([TOOL, "up", "1"], timeout=900)
    try:
        figures = asyncio.run(bench_host(args, leader_pid() or 0))
    finally:
        if started_here:
            run([TOOL, "down"], timeout=300)
    if args.record:
        command = f"python -m bench.agent --units {args.units} --idle-seconds {args.idle_seconds:g}"
        command += " --no-bus" if args.no_bus else ""
        record(args.record, "agent", markdown(figures, command, machine_description()))
    print(json_line(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
