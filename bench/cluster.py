"""Cluster benchmark: N real fleetd agents and K engine candidates on a real 3-member etcd.

The agents are fleetd's own (agent, reconciler, heartbeat, publisher, registry and etcd client
code, each agent with its own etcd connection and lease); only systemd is an in-memory fake
(`fleetd.systemd.memory`). They run in several OS processes (`bench.cluster_load.layout`,
`bench.cluster_worker`): K whole fleetds (agent, engine candidate, API) one per process, one
agent alone, the rest a tenth of the cluster per process. The benchmark starts and stops its
own etcd (3 members on loopback, data on tmpfs, etcd's default raft timings); the processes
start one after another, their agents a batch at a time (see bench.cluster_worker). On real
hosts etcd and every fleetd have CPUs of their own; here a thousand simulated hosts share two
cores with etcd, so the processes that only simulate hosts run at a lower CPU priority
(bench.cluster_worker.HOSTS_NICE), etcd at a higher one (ETCD_NICE), and the tests' 200 ms
election timeout is not used: a starved member calls elections all along and fails
proposals, which is the machine's limit, not fleetd's. Phases:

  placed_s       U units submitted through one fleetd's API (POST /units, 5,000 per request;
                 the mix of bench.cluster_load) until every one has an assignment;
  active_s       ... until every unit, and the Global unit on every agent, is reported active
                 in states/ (read by a watch of the benchmark's own);
  idle_etcd_rps_per_agent  etcd's own request counter (every member's
                 grpc_server_msg_received_total) over --idle-seconds with nothing changing;
  list_units_s   the real `fleetctl list-units` against one fleetd's API;
  lose_one_s     the lone agent's process SIGKILLed until its units are active elsewhere;
  lose_tenth_s   the same for a tenth of the agents at once (one packed process). The
                 mass-failure brake holds only when more than half of the machines vanish
                 within one TTL, so it lets this planned loss through as configured by default;
  leader_kill_s  the engine leader's process SIGKILLed until a unit submitted just after it,
                 through another fleetd, is active.
Then the counters that must be 0: stalls (the agents' stall reports in their logs),
relist_catches and abandoned (the agents' alarms), duplicates (a unit active on two agents at
once, from the fakes' own history) and lost (a submitted unit never active). The run's peak RSS
of the biggest process and the sum of all peaks per agent, and etcd's db size, are reported.
Progress goes to stderr; the last line is one JSON object; a row is appended to
docs/benchmarks.md (unless --no-record). Exit 1 when a counter is not 0.

    python -m bench.cluster --agents N --units U [--engines K] [--idle-seconds S] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import multiprocessing
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import cluster_figures, cluster_history, cluster_load, cluster_worker
from bench.agent_figures import status_kib
from bench.etcd_server import ETCD_DEFAULT_TIMINGS, EtcdCluster
from bench.reads import fleetctl_seconds
from bench.record import record, recorded
from bench.report import machine_line
from fleetctl.client import Client, parse_endpoint
from fleetd.api import schema
from fleetd.errors import RegistryUnavailable
from fleetd.model.states import TargetState
from fleetd.model.unitfile import UnitFile
from fleetd.registry import codec
from fleetd.registry.etcd import EtcdKV
from fleetd.registry.keys import Keys
from fleetd.registry.kv import WatchEvent
from fleetd.registry.watch import list_then_follow

REPO = Path(__file__).resolve().parents[1]
ETCD_NICE = -10  # etcd's members ahead of the simulated hosts and the fleetds (see above)
PREFIX = "/bench-cluster/"
COUNT_SECONDS = 1.0  # how often placement progress is counted
BATCH = 5000  # units per POST /units
STALL = "agent pass still running"  # the agents' stall report (fleetd.stall)
PROGRESS_SECONDS = 5.0


@dataclass
class Child:
    """One process of the run, and what is known of it."""

    spec: cluster_worker.Spec
    proc: Any  # multiprocessing Process
    alarms: cluster_worker.Alarms
    killed_at: float | None = None
    peak_kib: int = 0

    @property
    def machines(self) -> list[str]:
        return [cluster_load.machine_id(i) for i in self.spec.process.agents]

    def note_peak(self) -> None:
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return
        self.peak_kib = max(self.peak_kib, status_kib(status, "VmHWM"))


class Cluster:
    """The benchmark's processes: started together, killed one by one, read at the end."""

    def __init__(self, agents: int, engines: int, endpoints: list[str], workdir: Path) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.children: list[Child] = []
        for process in cluster_load.layout(agents, engines):
            spec = cluster_worker.Spec(
                process, tuple(endpoints), PREFIX, str(workdir / f"{process.name}.history"),
                str(workdir / f"{process.name}.log"),
                str(workdir / f"{process.name}.sock") if process.fleetd else "")
            self.children.append(Child(spec, None, cluster_worker.new_alarms(self.ctx)))

    def start(self, timeout: float, progress: bool) -> None:
        """Start the processes one after another, each once the one before is ready."""
        deadline = time.monotonic() + timeout
        for number, child in enumerate(self.children, 1):
            ready = self.ctx.Event()
            child.proc = self.ctx.Process(target=cluster_worker.main, name=child.spec.process.name,
                                          args=(child.spec, child.alarms, ready), daemon=True)
            child.proc.start()
            while not ready.wait(0.5):
                if not child.proc.is_alive() or time.monotonic() > deadline:
                    raise SystemExit(f"bench: process {child.spec.process.name} did not start; "
                                     f"see {child.spec.log}")
            if progress:
                print(f"bench: started {child.spec.process.name} ({number}/{len(self.children)})",
                      file=sys.stderr)

    def named(self, name: str) -> Child:
        return next(c for c in self.children if c.spec.process.name == name)

    def of_machine(self, machine: str) -> Child:
        return next(c for c in self.children if machine in c.machines)

    def live(self) -> list[Child]:
        return [c for c in self.children if c.killed_at is None]

    def live_machines(self) -> set[str]:
        return {m for c in self.live() for m in c.machines}

    def dead_machines(self) -> set[str]:
        return {m for c in self.children if c.killed_at is not None for m in c.machines}

    def kill(self, children: Iterable[Child]) -> float:
        """SIGKILL `children` at once; the moment it was done."""
        chosen = list(children)
        for child in chosen:
            child.note_peak()
        at = time.monotonic()
        for child in chosen:
            child.proc.kill()
            child.killed_at = at
        for child in chosen:
            child.proc.join(10)
        return at

    def sockets(self) -> list[str]:
        """The API sockets of the live whole fleetds."""
        return [c.spec.socket for c in self.live() if c.spec.socket]

    def counters(self) -> dict[str, int]:
        totals = dict.fromkeys(cluster_worker.ALARMS, 0)
        for child in self.children:
            for name, value in child.alarms.read().items():
                totals[name] += value
        totals["stalls"] = sum(_count_lines(child.spec.log, STALL) for child in self.children)
        return totals

    def history(self) -> list[str]:
        lines: list[str] = []
        for child in self.children:
            path = Path(child.spec.history)
            lines += path.read_text().splitlines() if path.exists() else []
        return lines

    def killed(self) -> dict[str, float]:
        return {m: c.killed_at for c in self.children if c.killed_at is not None for m in c.machines}

    def memory(self) -> dict[str, float]:
        for child in self.live():
            child.note_peak()
        peak = max(self.children, key=lambda c: c.peak_kib)
        per_agent = sum(c.peak_kib for c in self.children) / sum(len(c.spec.process.agents)
                                                                 for c in self.children)
        return {"peak_rss_mb": round(peak.peak_kib / 1024, 1),
                "rss_mb_per_agent": round(per_agent / 1024, 2)}

    def stop(self) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.is_alive():
                child.proc.kill()
                child.proc.join(10)


def _count_lines(path: str, text: str) -> int:
    try:
        return sum(text in line for line in Path(path).read_text(errors="replace").splitlines())
    except OSError:
        return 0


class Board:
    """Which machines report each unit active, from a watch of states/ (list, then follow)."""

    def __init__(self, kv: EtcdKV, keys: Keys) -> None:
        self.kv, self.keys = kv, keys
        self.active: dict[str, set[str]] = {}

    async def run(self) -> None:
        await list_then_follow(self.kv, self.keys.states, self._event, self._relist)

    async def _relist(self) -> int:
        listing = await self.kv.get_prefix(self.keys.states)
        self.active = {}
        for item in listing.items:
            self._set(item.key, item.value)
        return listing.revision

    def _event(self, event: WatchEvent) -> None:
        self._set(event.key, event.value if event.kind == "put" else "")

    def _set(self, key: str, value: str) -> None:
        unit, machine = self.keys.split_pair(key, self.keys.states)
        on = self.active.setdefault(unit, set())
        if value and codec.decode_state(unit, machine, value).systemd.active == "active":
            on.add(machine)
        else:
            on.discard(machine)

    def active_count(self, units: Iterable[str], dead: set[str]) -> int:
        return sum(1 for unit in units if self.active.get(unit, set()) - dead)


async def until(what: str, done: Callable[[], bool], progress: Callable[[], str],
                timeout: float, quiet: bool) -> float:
    """Poll `done` every 20 ms; print `progress` every few seconds; the monotonic time it held."""
    deadline = time.monotonic() + timeout
    shown = time.monotonic()
    while not done():
        now = time.monotonic()
        if now > deadline:
            raise SystemExit(f"bench: {what}: not done within {timeout:.0f} s ({progress()})")
        if not quiet and now - shown > PROGRESS_SECONDS:
            print(f"bench: {what}: {progress()}", file=sys.stderr)
            shown = now
        await asyncio.sleep(0.02)
    return time.monotonic()


def entries(units: Iterable[tuple[str, str]]) -> list[schema.Unit]:
    """POST /units entries to launch `units` ((name, text) pairs); one options list per text."""
    options: dict[str, list[schema.UnitOption]] = {}
    batch = []
    for name, text in units:
        if text not in options:
            options[text] = [schema.UnitOption(section=o.section, name=o.name, value=o.value)
                             for o in UnitFile.parse(text).options]
        batch.append(schema.Unit(name=name, options=options[text], desired_state=TargetState.LAUNCHED))
    return batch


async def submit(socket: str, batch: list[schema.Unit]) -> None:
    async with Client(parse_endpoint(f"unix://{socket}"), timeout=300) as client:
        for start in range(0, len(batch), BATCH):
            await client.submit_units(batch[start:start + BATCH])


class Run:
    """The phases of one run against a started cluster."""

    def __init__(self, args: argparse.Namespace, cluster: Cluster, etcd: EtcdCluster) -> None:
        self.args, self.cluster, self.etcd = args, cluster, etcd
        self.keys = Keys(PREFIX)
        self.names = [name for name, _ in cluster_load.units(args.units, args.agents)]
        self.probes: list[str] = []
        self.figures: dict[str, Any] = {}

    def _say(self, text: str) -> None:
        if not self.args.json:
            print(f"bench: {text}", file=sys.stderr)

    async def _until(self, what: str, done: Callable[[], bool], progress: Callable[[], str]) -> float:
        return await until(what, done, progress, self.args.timeout, self.args.json)

    async def measure(self) -> dict[str, Any]:
        kv = EtcdKV(self.etcd.endpoints, request_timeout=60.0)
        board = Board(kv, self.keys)
        watching = asyncio.create_task(board.run())
        try:
            await self._placed_and_active(kv, board)
            await self._idle()
            self._list_units()
            await self._lose("lose_one_s", [self.cluster.named("lone")], kv, board)
            await self._lose("lose_tenth_s", [self.cluster.named("pack1")], kv, board)
            await self._leader_kill(kv, board)
        finally:
            watching.cancel()
            await kv.close()
        return self.figures

    async def _placed_and_active(self, kv: EtcdKV, board: Board) -> None:
        while await kv.get(self.keys.leader) is None:
            await asyncio.sleep(0.05)
        batch = entries([*cluster_load.units(self.args.units, self.args.agents),
                         (cluster_load.GLOBAL, cluster_load.global_text())])
        self._say(f"submitting {len(batch)} units through {self.cluster.sockets()[0]}")
        started = time.monotonic()
        sending = asyncio.create_task(submit(self.cluster.sockets()[0], batch))
        placed = [0]

        async def count() -> None:  # a count walks etcd's index: once a second, not faster
            while True:
                with contextlib.suppress(RegistryUnavailable):  # a slow etcd: count again
                    placed[0] = await kv.count(self.keys.assign)
                await asyncio.sleep(COUNT_SECONDS)

        counting = asyncio.create_task(count())
        done = await self._until("placed", lambda: placed[0] >= len(self.names),
                                 lambda: f"{placed[0]}/{len(self.names)} assigned")
        counting.cancel()
        await sending
        self.figures["placed_s"] = round(done - started, 2)
        self._say(f"placed in {self.figures['placed_s']} s")
        done = await self._until("active", lambda: self._all_active(board), lambda: self._active_text(board))
        self.figures["active_s"] = round(done - started, 2)
        self._say(f"active in {self.figures['active_s']} s")

    def _all_active(self, board: Board) -> bool:
        dead = self.cluster.dead_machines()
        live = self.cluster.live_machines()
        return (board.active_count(self.names, dead) == len(self.names)
                and live <= board.active.get(cluster_load.GLOBAL, set()))

    def _active_text(self, board: Board) -> str:
        dead = self.cluster.dead_machines()
        sidecars = len(board.active.get(cluster_load.GLOBAL, set()) - dead)
        return (f"{board.active_count(self.names, dead)}/{len(self.names)} active, "
                f"global unit on {sidecars}/{len(self.cluster.live_machines())} agents")

    async def _idle(self) -> None:
        await asyncio.sleep(5.0)  # the last state writes and their watch events are over
        self._say(f"idle for {self.args.idle_seconds} s: counting etcd requests")
        before = await asyncio.to_thread(self._etcd_requests)
        await asyncio.sleep(self.args.idle_seconds)
        after = await asyncio.to_thread(self._etcd_requests)
        agents = len(self.cluster.live_machines())
        self.figures["idle_etcd_rps_per_agent"] = round((after - before) / self.args.idle_seconds / agents, 3)
        self._say(f"idle: {self.figures['idle_etcd_rps_per_agent']} etcd requests/s per agent")

    def _etcd_requests(self) -> float:
        return sum(cluster_figures.metric_sum(self.etcd.metrics(i), cluster_figures.REQUESTS)
                   for i in range(len(self.etcd.members)))

    def _list_units(self) -> None:
        seconds = fleetctl_seconds(self.cluster.sockets()[0], ["list-units"], len(self.names))
        self.figures["list_units_s"] = round(seconds, 2)
        self._say(f"fleetctl list-units: {self.figures['list_units_s']} s")

    async def _lose(self, key: str, children: list[Child], kv: EtcdKV, board: Board) -> None:
        machines = [m for c in children for m in c.machines]
        moving = [self.keys.split_pair(item.key, self.keys.assign)[1]
                  for machine in machines
                  for item in (await kv.get_prefix(self.keys.assigned_to(machine))).items]
        self._say(f"{key}: killing {len(machines)} agents holding {len(moving)} units")
        killed = self.cluster.kill(children)
        dead = self.cluster.dead_machines()
        done = await self._until(key, lambda: board.active_count(moving, dead) == len(moving),
                                 lambda: f"{board.active_count(moving, dead)}/{len(moving)} active elsewhere")
        self.figures[key] = round(done - killed, 2)
        self._say(f"{key} = {self.figures[key]}")

    async def _leader_kill(self, kv: EtcdKV, board: Board) -> None:
        leader = await kv.get(self.keys.leader)
        if leader is None:
            raise SystemExit("bench: no engine leader before leader_kill")
        victim = self.cluster.of_machine(leader.value)
        self._say(f"leader_kill: killing {victim.spec.process.name}, the engine leader")
        probe = cluster_load.PROBE.format(1)
        self.probes.append(probe)
        killed = self.cluster.kill([victim])
        await submit(self.cluster.sockets()[0], entries([(probe, cluster_load.probe_text())]))
        dead = self.cluster.dead_machines()
        done = await self._until("leader_kill_s", lambda: board.active_count([probe], dead) == 1,
                                 lambda: "probe not active yet")
        self.figures["leader_kill_s"] = round(done - killed, 2)
        self._say(f"leader_kill_s = {self.figures['leader_kill_s']}")

    def verdict(self) -> dict[str, Any]:
        """The counters that must be 0, from the processes' memory, logs and histories."""
        spans = cluster_history.intervals(self.cluster.history(), self.cluster.killed())
        counters = self.cluster.counters()
        return {**counters,
                "duplicates": len(cluster_history.duplicates(spans, {cluster_load.GLOBAL})),
                "lost": len(cluster_history.lost(spans, [*self.names, *self.probes]))}


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=REPO, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True, cwd=REPO, check=False).stdout.strip()
    return done.stdout.strip() + ("+" if dirty else "")


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="fleetd-bench-cluster-"))
    ok = False
    with EtcdCluster(3, timings=ETCD_DEFAULT_TIMINGS, nice=ETCD_NICE) as etcd:
        cluster = Cluster(args.agents, args.engines, etcd.endpoints, workdir)
        try:
            started = time.monotonic()
            cluster.start(args.timeout, not args.json)
            if not args.json:
                print(f"bench: {len(cluster.children)} processes, {args.agents} agents up in "
                      f"{time.monotonic() - started:.1f} s (logs in {workdir})", file=sys.stderr)
            bench = Run(args, cluster, etcd)
            figures = asyncio.run(bench.measure())
            figures |= bench.verdict() | cluster.memory()
            figures["etcd_db_mb"] = round(max(etcd.db_bytes(i) for i in range(3)) / 2**20, 1)
            ok = True
        finally:
            cluster.stop()
            if ok:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                print(f"bench: logs and histories kept in {workdir}", file=sys.stderr)
    return {"date": datetime.date.today().isoformat(), "agents": args.agents, "units": args.units,
            "engines": args.engines, "processes": len(cluster.children), "commit": _commit(), **figures}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=100, help="fleetd agents (default 100)")
    parser.add_argument("--units", type=int, default=10000, help="units submitted (default 10000)")
    parser.add_argument("--engines", type=int, default=3,
                        help="whole fleetds competing for the engine (default 3, at least 2)")
    parser.add_argument("--idle-seconds", type=float, default=60.0,
                        help="the idle window etcd's requests are counted over (default 60)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds any phase may take")
    parser.add_argument("--json", action="store_true", help="no progress; only the JSON line")
    parser.add_argument("--record", type=Path, default=REPO / "docs" / "benchmarks.md", metavar="FILE",
                        help="the file the run's row is appended to (default docs/benchmarks.md)")
    parser.add_argument("--no-record", action="store_true", help="record nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up etcd and children
    try:
        cluster_load.layout(args.agents, args.engines)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    figures = run(args)
    if not args.no_record:
        notes = (f"Each run on {machine_line()}; etcd 3 members on loopback, data on tmpfs. "
                 "Progress and the figures' definitions: `python -m bench.cluster --help`.")
        record(args.record, "cluster", cluster_figures.section(recorded(args.record, "cluster"),
                                                                figures, notes))
    bad = cluster_figures.nonzero(figures)
    if not args.json:
        for miss in cluster_figures.misses(figures) if (args.agents, args.units) == (1000, 100000) else ():
            print(f"bench: target missed: {miss}", file=sys.stderr)
        for counter in bad:
            print(f"bench: must be 0: {counter}", file=sys.stderr)
    print(json.dumps(figures))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
