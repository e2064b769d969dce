"""Bulk destroy against a real etcd and a real fleetd API: how long `fleetctl destroy` of N units takes.

The bench starts its own etcd (bench.etcd_server: one member, data on tmpfs unless
--data-dir) and the API in a child process (bench.procs.api_main, the real app on a unix
socket; no engine, no agent, no systemd), creates N instances of bench@.service as the API
stores them (bench.seed), then times one `fleetctl destroy bench@.service` (a child process:
its listing, its DELETE /units requests of 1000 names and its wait for states, of which there
are none) from
launch to exit. Afterwards it checks that no unit record is left.

    python -m bench.destroy --units 5000 [--data-dir DIR] [--record docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import procs, seed
from bench.etcd_server import EtcdCluster
from bench.record import record
from bench.report import machine_line
from fleetd.registry.etcd import EtcdKV
from fleetd.registry.keys import Keys

PREFIX = "/bench-destroy/"
TARGET_SECONDS = 30.0  # issue 17: 5,000 units in under 30 s


async def _seed(endpoints: list[str], units: int) -> None:
    kv = EtcdKV(endpoints, request_timeout=60.0)
    try:
        await seed.create_units(kv, Keys(PREFIX), "plain", units)
    finally:
        await kv.close()


async def _left(endpoints: list[str]) -> int:
    kv = EtcdKV(endpoints, request_timeout=60.0)
    try:
        return len((await kv.get_prefix(Keys(PREFIX).units)).items)
    finally:
        await kv.close()


def _destroy(socket_path: str) -> tuple[float, str]:
    """Run `fleetctl destroy bench@.service`; its wall-clock seconds and its stdout."""
    command = [sys.executable, "-m", "fleetctl", "--endpoint", f"unix://{socket_path}",
               "destroy", seed.TEMPLATE]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"bench: fleetctl destroy failed: {done.stderr[-500:]}")
    return seconds, done.stdout


def measure(units: int, data_dir: str | None) -> dict[str, object]:
    """Seed `units` units, destroy them with fleetctl; the figures."""
    ctx = multiprocessing.get_context("spawn")
    with EtcdCluster(1, data_root=data_dir) as etcd, \
            tempfile.TemporaryDirectory(prefix="fleetd-bench-") as tmp:
        asyncio.run(_seed(etcd.endpoints, units))
        socket_path, ready = os.path.join(tmp, "fleet.sock"), ctx.Event()
        api = ctx.Process(target=procs.api_main, args=(etcd.endpoints, PREFIX, socket_path, ready),
                          daemon=True)
        api.start()
        try:
            if not ready.wait(60):
                raise SystemExit("bench: the API child did not start")
            seconds, out = _destroy(socket_path)
        finally:
            api.kill()
            api.join(5)
        left = asyncio.run(_left(etcd.endpoints))
    destroyed = out.count("Destroyed ")
    if destroyed != units or left:
        raise SystemExit(f"bench: {destroyed} of {units} reported destroyed, {left} left in etcd")
    return {"units": units, "seconds": round(seconds, 2), "units_per_s": round(units / seconds),
            "target_seconds": TARGET_SECONDS, "met": seconds < TARGET_SECONDS,
            "etcd_data": data_dir or "tmpfs"}


def markdown(figures: dict[str, object], command: str, machine: str) -> str:
    """The bench's section of docs/benchmarks.md (pure)."""
    return "\n".join([
        f"## Bulk destroy (`{command}`)",
        "",
        f"Recorded {time.strftime('%Y-%m-%d')} on {machine}; etcd 3.4, one member, data on "
        f"{figures['etcd_data']}; "
        "the fleetd API (the real app, no engine or agent) in a child process on a unix socket; "
        f"{figures['units']} instances of bench@.service created as the API stores them, then one "
        "`fleetctl destroy bench@.service` timed from launch to exit: its listing, its "
        "DELETE /units requests of 1000 names (fleetd removes 42 units per txn) and its wait "
        "for states (there are none: no hosts).",
        "",
        f"**{figures['seconds']} s** for {figures['units']} units ({figures['units_per_s']} "
        f"units/s); target < {figures['target_seconds']:g} s: "
        f"{'met' if figures['met'] else 'NOT met'}.",
        "",
        "```json",
        json.dumps(figures, sort_keys=True),
        "```",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.destroy",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=5000)
    parser.add_argument("--data-dir", help="etcd data directory root (default: tmpfs)")
    parser.add_argument("--record", type=Path, metavar="FILE", help="write the result into FILE")
    args = parser.parse_args(argv)
    figures = measure(args.units, args.data_dir)
    print(f"destroyed {args.units} units in {figures['seconds']} s", file=sys.stderr)
    if args.record:
        command = " ".join(["python -m bench.destroy", *(argv if argv is not None else sys.argv[1:])])
        record(args.record, "destroy", markdown(figures, command, machine_line()))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
