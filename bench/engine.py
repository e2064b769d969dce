"""Engine throughput against a real etcd: how fast the leader places N units on M machines.

The bench starts its own etcd (bench.etcd_server: one member, data on tmpfs unless
--data-dir), registers M machines as presence keys on leases (bench.seed: no systemd, only the
engine is measured), then:

- cold: creates N units first, then starts the engine (a child process, bench.procs) and times
  leader start -> every unit has an assignment in etcd;
- live: starts the engine first and waits until it leads, then submits N instances of
  bench@.service with ONE fleetctl command (`fleetctl start --no-block --instances N`) through
  an API server (another child process), and times fleetctl's launch -> every unit assigned.

Then, on the same etcd with the engine stopped, the same keys and values are written again
under another prefix as bare 128-op txns (`limit_s`, the physical floor): `limit_ratio` is how
far above it the engine's time lies.

With --incremental (cold only), before the engine stops, one change at a time on the placed
cluster (bench.incremental): `one_unit_ms`, one unit added until its placement is committed, and
`one_machine_ms`, one machine lost until all its units are re-placed and committed.

"All placed" is read back from etcd (a count of assign/ keys, polled every few ms); then every
assignment is listed and checked: each unit exactly once, on a registered machine. The engine
child counts its own etcd requests; its CPU time is read from /proc.

    python -m bench.engine --machines M --units N [--cold|--live] [--mix plain|resources] [--json]
    python -m bench.engine --machines M --units N --incremental [--json] [--record FILE]
    python -m bench.engine --suite [--record docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import incremental, procs, seed
from bench.agent_figures import cpu_seconds, status_kib
from bench.etcd_server import EtcdCluster
from bench.record import record
from bench.report import engine_markdown, incremental_markdown
from fleetd.registry.etcd import EtcdKV
from fleetd.registry.keys import Keys
from fleetd.registry.kv import KV, Listing, Op, Put
from fleetd.registry.store import txn_batches

PREFIX = "/bench/"
LIMIT_PREFIX = "/bench-limit"  # + the assignment's own key
LIMIT_IN_FLIGHT = 4  # as many txns at once as the engine's commit sends (Registry.commit)
TIMEOUT = 900.0


@dataclass(frozen=True)
class Case:
    machines: int
    units: int
    mode: str = "cold"
    mix: str = "plain"
    incremental: bool = False


@dataclass(frozen=True)
class Result:
    machines: int
    units: int
    mode: str
    mix: str
    seconds: float
    placements_per_s: float
    etcd_txns: int
    etcd_txn_ops: int
    etcd_requests: int
    etcd_reads: int
    engine_cpu_s: float
    engine_rss_mb: float
    txns_per_placement: float
    submit_seconds: float | None = None  # live: fleetctl's own run time
    load_s: float | None = None  # from the engine's log: reading the registry at leadership
    decide_s: float | None = None  # ... scheduling (model -> plan), summed over logged passes
    commit_s: float | None = None  # ... writing the plans to etcd
    limit_s: float | None = None  # the same keys written as bare 128-op txns (`commit_limit`)
    limit_ratio: float | None = None  # seconds / limit_s
    one_unit_ms: float | None = None  # --incremental: one unit added -> its placement committed
    one_machine_ms: float | None = None  # ... one machine lost -> its units re-placed (less settle)


SUITE = [Case(100, 1000), Case(100, 3000), Case(100, 10000), Case(1000, 1000), Case(1000, 10000),
         Case(100, 1000, mix="resources"), Case(1000, 10000, mix="resources"),
         Case(100, 1000, "live"), Case(1000, 1000, "live"), Case(5000, 100000)]


def _rss_mb(pid: int) -> float:
    """Resident memory of a live process in MiB, from /proc."""
    return round(status_kib(Path(f"/proc/{pid}/status").read_text(), "VmRSS") / 1024, 1)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc."""
    return cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), os.sysconf("SC_CLK_TCK"))


async def _wait_placed(kv: KV, keys: Keys, units: int) -> float:
    """Poll the number of assignments until it reaches `units`; the monotonic time it did."""
    interval = min(0.1, max(0.002, units / 1_000_000))  # counting costs etcd CPU: poll big runs less
    deadline = time.monotonic() + TIMEOUT
    while await kv.count(keys.assign) < units:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: not every unit was placed within {TIMEOUT:.0f} s")
        await asyncio.sleep(interval)
    return time.monotonic()


async def _verify(kv: KV, keys: Keys, machine_ids: list[str], units: int) -> Listing:
    """Every unit placed exactly once, on a registered machine; returns the assignments."""
    listing = await kv.get_prefix(keys.assign)
    pairs = [keys.split_pair(item.key, keys.assign) for item in listing.items]
    placed = [unit for _, unit in pairs]
    known = set(machine_ids)
    if len(placed) != units or len(set(placed)) != units:
        raise SystemExit(f"bench: {len(placed)} assignments for {len(set(placed))} of {units} units")
    if any(machine not in known for machine, _ in pairs):
        raise SystemExit("bench: a unit was placed on a machine that is not registered")
    return listing


async def commit_limit(kv: KV, placements: Listing, in_flight: int = LIMIT_IN_FLIGHT) -> float:
    """Seconds to write the same keys and values as `placements` (under LIMIT_PREFIX) in
    transactions cut as the engine cuts them (<= 128 ops), `in_flight` at a time, with
    nothing else to do: no model, no decisions, no fence. The floor the engine is held to."""
    ops = [Put(LIMIT_PREFIX + item.key, item.value) for item in placements.items]
    batches = txn_batches(ops)
    gate = asyncio.Semaphore(in_flight)

    async def send(batch: Sequence[Op]) -> None:
        async with gate:
            await kv.txn((), batch)

    started = time.monotonic()
    async with asyncio.TaskGroup() as group:
        for batch in batches:
            group.create_task(send(batch))
    return time.monotonic() - started


class Run:
    """One case: etcd, seeded registry, engine child (and API child for live)."""

    def __init__(self, case: Case, endpoints: list[str]) -> None:
        self.case = case
        self.endpoints = endpoints
        self.keys = Keys(PREFIX)
        self.ctx = multiprocessing.get_context("spawn")
        self.shared = procs.new_shared(self.ctx)
        self.go = self.ctx.Event()
        self.children: list[multiprocessing.process.BaseProcess] = []
        self.log_path = os.path.join(tempfile.gettempdir(), f"fleetd-bench-engine-{os.getpid()}.log")
        Path(self.log_path).unlink(missing_ok=True)

    def _spawn(self, target: Callable[..., object], *args: object) -> multiprocessing.process.BaseProcess:
        child = self.ctx.Process(target=target, args=args, daemon=True)
        child.start()
        self.children.append(child)
        return child

    def stop(self) -> None:
        for child in self.children:
            child.kill()
            child.join(5)

    async def measure(self) -> Result:
        kv = EtcdKV(self.endpoints, request_timeout=60.0)
        try:
            machine_ids = await seed.register_machines(kv, self.keys, self.case.machines)
            if self.case.mode == "cold":
                await seed.create_units(kv, self.keys, self.case.mix, self.case.units)
            engine = self._spawn(procs.engine_main, self.endpoints, PREFIX, "binpack", self.shared,
                                 self.go, self.log_path)
            await asyncio.sleep(1.0)  # the child has imported fleetd and waits for go
            cpu_before = _cpu_seconds(engine.pid or 0)
            if self.case.mode == "cold":
                self.go.set()
                done = await _wait_placed(kv, self.keys, self.case.units)
                started, submit = self.shared.started.value, None
            else:
                started, done, submit = await self._live(kv)
            cpu = _cpu_seconds(engine.pid or 0) - cpu_before
            rss = _rss_mb(engine.pid or 0)
            counters = self.shared.read()
            placements = await _verify(kv, self.keys, machine_ids, self.case.units)
            changes = await self._changes(kv, engine.pid or 0, machine_ids)
            self.stop()  # the limit is measured on an idle etcd
            limit = await commit_limit(kv, placements)
        finally:
            await kv.close()
        phases = engine_phases(Path(self.log_path).read_text())
        result = _result(self.case, done - started, counters, cpu, submit, phases, rss, limit)
        return replace(result, **changes)

    async def _changes(self, kv: KV, pid: int, machine_ids: list[str]) -> dict[str, Any]:
        """--incremental: one unit added, one machine lost, on the cluster just placed."""
        if not self.case.incremental:
            return {}
        return await incremental.measure(kv, self.keys, lambda: _cpu_seconds(pid), self.case.units + 1,
                                         machine_ids)

    async def _live(self, kv: KV) -> tuple[float, float, float]:
        self.go.set()
        while await kv.get(self.keys.leader) is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # the first (empty) pass is over
        with tempfile.TemporaryDirectory(prefix="fleetd-bench-") as tmp:
            socket_path = os.path.join(tmp, "fleet.sock")
            ready = self.ctx.Event()
            self._spawn(procs.api_main, self.endpoints, PREFIX, socket_path, ready)
            await asyncio.to_thread(ready.wait, 30)
            template = Path(tmp, seed.TEMPLATE)
            template.write_text(seed.unit_text(self.case.mix, 0))
            command = [sys.executable, "-m", "fleetctl", "--endpoint", f"unix://{socket_path}",
                       "start", "--no-block", "--instances", str(self.case.units), str(template)]
            started = time.monotonic()
            fleetctl = await asyncio.create_subprocess_exec(
                *command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            done = await _wait_placed(kv, self.keys, self.case.units)
            _, err = await fleetctl.communicate()
            submitted = time.monotonic()
            if fleetctl.returncode != 0:
                raise SystemExit(f"bench: fleetctl failed: {err.decode()[-500:]}")
        return started, done, submitted - started


def engine_phases(log: str) -> dict[str, float]:
    """Seconds the engine spent loading, deciding and committing, from its info log lines
    (`registry loaded ... seconds=`, `plan committed ... decide_s= commit_s=`)."""
    phases: dict[str, float] = {}
    for line in log.splitlines():
        fields = dict(re.findall(r"(\w+)='?([\d.]+)'?", line))
        if "event='registry loaded'" in line:
            phases["load_s"] = float(fields.get("seconds", 0))
        elif "event='plan committed'" in line:
            for name in ("decide_s", "commit_s"):
                phases[name] = round(phases.get(name, 0.0) + float(fields.get(name, 0)), 3)
    return phases


def _result(case: Case, seconds: float, counters: dict[str, int], cpu: float,
            submit: float | None, phases: dict[str, float], rss: float, limit: float) -> Result:
    return Result(
        machines=case.machines, units=case.units, mode=case.mode, mix=case.mix,
        seconds=round(seconds, 4), placements_per_s=round(case.units / seconds, 1),
        etcd_txns=counters["txns"], etcd_txn_ops=counters["txn_ops"],
        etcd_requests=counters["requests"], etcd_reads=counters["reads"],
        engine_cpu_s=round(cpu, 2), engine_rss_mb=rss,
        txns_per_placement=round(counters["txns"] / case.units, 4),
        submit_seconds=round(submit, 3) if submit is not None else None,
        load_s=phases.get("load_s"), decide_s=phases.get("decide_s"), commit_s=phases.get("commit_s"),
        limit_s=round(limit, 4), limit_ratio=round(seconds / limit, 2))


def run_case(case: Case, data_dir: str | None = None) -> Result:
    with EtcdCluster(1, data_root=data_dir) as etcd:
        run = Run(case, etcd.endpoints)
        try:
            return asyncio.run(run.measure())
        finally:
            run.stop()


def best_of(case: Case, repeat: int, data_dir: str | None) -> Result:
    """The median run of `repeat` (by seconds)."""
    results = sorted((run_case(case, data_dir) for _ in range(repeat)), key=lambda r: r.seconds)
    return results[len(results) // 2] if repeat > 1 else results[0]


def _describe(r: Result) -> str:
    text = (f"{r.machines:>5} machines x {r.units:>6} units {r.mode:4} {r.mix:9}: {r.seconds:8.3f} s"
            f"  {r.placements_per_s:>9.0f}/s  txns {r.etcd_txns} ({r.txns_per_placement}/placement)"
            f"  requests {r.etcd_requests}  reads {r.etcd_reads}  engine cpu {r.engine_cpu_s} s"
            f"  limit {r.limit_s} s ({r.limit_ratio}x)")
    if r.one_unit_ms is not None:
        text += f"  one unit {r.one_unit_ms} ms  one machine {r.one_machine_ms} ms"
    return text + (f"  (fleetctl ran {r.submit_seconds} s)" if r.submit_seconds is not None else "")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.split("\n")[0])
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--units", type=int, default=1000)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--cold", dest="mode", action="store_const", const="cold",
                      help="units exist before the leader starts (default)")
    mode.add_argument("--live", dest="mode", action="store_const", const="live",
                      help="units arrive through one fleetctl command after the leader started")
    parser.add_argument("--mix", choices=seed.MIXES, default="plain")
    parser.add_argument("--incremental", action="store_true",
                        help="after a cold run, time one unit added and one machine lost")
    parser.add_argument("--repeat", type=int, default=0,
                        help="runs per case up to 10,000 units; the median is kept (default 1, suite 3)")
    parser.add_argument("--data-dir", help="etcd data directory root (default: tmpfs)")
    parser.add_argument("--suite", action="store_true", help="run the standard grid of cases")
    parser.add_argument("--json", action="store_true", help="print only the JSON line(s)")
    parser.add_argument("--record", type=Path, metavar="FILE", help="write the results into FILE")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.incremental and (args.suite or args.mode == "live"):
        parser.error("--incremental goes with one cold case (not --suite or --live)")
    cases = SUITE if args.suite else [Case(args.machines, args.units, args.mode or "cold", args.mix,
                                           args.incremental)]
    repeat = args.repeat or (3 if args.suite else 1)
    results = []
    for case in cases:
        result = best_of(case, repeat if case.units <= 10000 else 1, args.data_dir)
        results.append(result)
        if not args.json:
            print(_describe(result), file=sys.stderr)
    if args.record:
        command = " ".join(["python -m bench.engine", *(argv if argv is not None else sys.argv[1:])])
        if args.incremental:
            record(args.record, "engine-incremental", incremental_markdown(results[0], command,
                                                                           incremental.SAMPLES))
        else:
            record(args.record, "engine", engine_markdown(results, command, repeat))
    for result in results:
        print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
