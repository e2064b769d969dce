"""Read paths at scale: `fleetctl list-units`, `fleetctl list-unit-files` and the dashboard's
GET /summary against a registry of N placed, active units.

The bench starts its own etcd (one member, tmpfs), writes M machines and N units as the
cluster would have them (bench.seed's records and files, plus an assignment and an active
state per unit, spread over the machines), starts an API server (a child process,
bench.procs), and times the real fleetctl commands (a new process each, as a user runs them;
output discarded) and one GET /summary. Each figure is the median of --repeat runs.

    python -m bench.reads [--machines 1000] [--units 10000 100000] [--repeat 3] [--record FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import procs, seed
from bench.etcd_server import EtcdCluster
from bench.record import record
from bench.report import machine_line
from fleetd.model.states import SystemdState, TargetState, UnitState
from fleetd.model.unit import Assignment
from fleetd.model.unitfile import UnitFile
from fleetd.registry import codec
from fleetd.registry.etcd import EtcdKV
from fleetd.registry.keys import Keys
from fleetd.registry.kv import Op, Put

REPO = Path(__file__).resolve().parents[1]
PREFIX = "/bench-reads/"
COMMANDS = {"list_units_s": ["list-units"], "list_unit_files_s": ["list-unit-files"]}
ACTIVE = SystemdState("loaded", "active", "running")


def placed_ops(keys: Keys, machine_ids: list[str], units: int) -> list[Op]:
    """An assignment and an active state for bench@1..N, round-robin over the machines."""
    digest = UnitFile.parse(seed.unit_text("plain", 0)).hash
    ops: list[Op] = []
    for i in range(1, units + 1):
        name, machine = seed.instance(i), machine_ids[i % len(machine_ids)]
        ops.append(Put(keys.assignment(machine, name),
                       codec.encode_assignment(Assignment(name, machine, digest, TargetState.LAUNCHED))))
        ops.append(Put(keys.state(name, machine),
                       codec.encode_state(UnitState(name, machine, digest, TargetState.LAUNCHED, ACTIVE))))
    return ops


async def populate(endpoints: list[str], machines: int, units: int) -> None:
    kv = EtcdKV(endpoints, request_timeout=60.0)
    try:
        keys = Keys(PREFIX)
        machine_ids = await seed.register_machines(kv, keys, machines, ttl=3600)
        await seed.create_units(kv, keys, "plain", units)
        await seed.commit(kv, placed_ops(keys, machine_ids, units))
    finally:
        await kv.close()


def fleetctl_seconds(socket: str, args: list[str], rows: int) -> float:
    command = [sys.executable, "-m", "fleetctl", "--endpoint", f"unix://{socket}", *args]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO)
    seconds = time.monotonic() - started
    got = len(done.stdout.splitlines()) - 1
    if done.returncode != 0 or got < rows:
        raise SystemExit(f"bench: fleetctl {' '.join(args)} exited {done.returncode} with {got} rows: "
                         f"{done.stderr[-500:]}")
    return seconds


async def summary_seconds(socket: str) -> tuple[float, int]:
    """One GET /summary: seconds, and the size of the answer in bytes."""
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket)) as session:
        started = time.monotonic()
        async with session.get("http://fleetd/fleet/v1/summary") as resp:
            body = await resp.read()
            if resp.status != 200:
                raise SystemExit(f"bench: GET /summary answered {resp.status}: {body[:300]!r}")
        return time.monotonic() - started, len(body)


def measure(machines: int, units: int, repeat: int) -> dict[str, float | int]:
    with EtcdCluster(1) as etcd, tempfile.TemporaryDirectory(prefix="fleetd-bench-reads-") as tmp:
        asyncio.run(populate(etcd.endpoints, machines, units))
        ctx = multiprocessing.get_context("spawn")
        socket, ready = os.path.join(tmp, "fleet.sock"), ctx.Event()
        api = ctx.Process(target=procs.api_main, args=(etcd.endpoints, PREFIX, socket, ready), daemon=True)
        api.start()
        try:
            ready.wait(60)
            figures: dict[str, float | int] = {"machines": machines, "units": units}
            for key, args in COMMANDS.items():
                figures[key] = round(statistics.median(
                    fleetctl_seconds(socket, args, units) for _ in range(repeat)), 2)
            runs = [asyncio.run(summary_seconds(socket)) for _ in range(repeat)]
            figures["summary_s"] = round(statistics.median(s for s, _ in runs), 2)
            figures["summary_mb"] = round(runs[0][1] / 2**20, 2)
            return figures
        finally:
            api.kill()
            api.join(5)


def markdown(results: list[dict[str, float | int]], command: str) -> str:
    columns = ["machines", "units", "list_units_s", "list_unit_files_s", "summary_s", "summary_mb"]
    lines = [f"## Reads at scale (`{command}`)", "",
             f"Recorded {time.strftime('%Y-%m-%d')} on {machine_line()}; etcd one member on tmpfs, "
             "the API in its own process, every unit placed and active. fleetctl runs as a new "
             "process each time (Python start-up included); median of the runs.", "",
             "| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in results]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reads", description=__doc__.split("\n")[0])
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--units", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--record", type=Path, metavar="FILE", help="write the results into FILE")
    args = parser.parse_args(argv)
    results = []
    for units in args.units:
        results.append(measure(args.machines, units, args.repeat))
        print(json.dumps(results[-1]))
    if args.record:
        command = " ".join(["python -m bench.reads", *(argv if argv is not None else sys.argv[1:])])
        record(args.record, "reads", markdown(results, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
