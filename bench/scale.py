"""Fifty real hosts: `python -m bench.scale` (make scale), on the local cluster.

Boots `--hosts` hosts of vagrant/local-cluster (real systemd in nspawn, fleetd inside each,
the cluster's own 3-member etcd), starts `--units` instances of a template whose service is
`sleep infinity`, then hard-powers off `--lose` hosts at once (`local-cluster kill-host`:
fleetd cannot revoke its lease, as when a host loses power). Two distributions, in seconds:

  start_to_active   from the moment a unit's batch was submitted (POST /units, launched) to
                    the first time a fleetd reports it active on some host;
  loss_to_replaced  for every unit that was active on a lost host, from the power-off to
                    the first time it is reported active on a live one.

Both are read from one fleetd's API (`GET /state`, every POLL_SECONDS), through its unix
socket, so the figures are what an operator polling `fleetctl list-units` would see, to
within that period. p50, p99 and max go to stdout as JSON and to docs/benchmarks.md (section
"scale") unless --no-record. The cluster is torn down at the end unless --keep. Not part of
`make test`: it needs a few minutes and most of the machine.

    python -m bench.scale [--hosts 50] [--units 2000] [--lose 5] [--no-record] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from bench.agent_figures import percentile
from bench.cluster import entries
from bench.record import record
from bench.report import machine_line
from fleetctl.client import ApiError, Client, parse_endpoint

REPO = Path(__file__).resolve().parents[1]
LC = REPO / "vagrant" / "local-cluster"
STATE = Path("/run/fleet-local-cluster")
DOC = REPO / "docs" / "benchmarks.md"
TEMPLATE = "bench-scale@.service"
TEXT = ("[Unit]\nDescription=fleetd scale benchmark %i\n\n"
        "[Service]\nExecStart=/bin/sleep infinity\n")
BATCH = 500  # units per POST /units
POLL_SECONDS = 0.5
TIMEOUT = 900.0
# Fifty hosts' systemd and fleetd share this machine's cores with etcd, which real hosts do
# not: etcd gets its own default raft timings (not the tests' 200 ms election) and goes first.
ETCD_ENV = {"LOCAL_CLUSTER_ETCD_RAFT": "100 1000", "LOCAL_CLUSTER_ETCD_NICE": "-10"}


def say(text: str) -> None:
    print(f"bench.scale: {text}", file=sys.stderr, flush=True)


def local_cluster(*args: str) -> None:
    started = time.monotonic()
    say("+ vagrant/local-cluster " + " ".join(args))
    subprocess.run([str(LC), *args], check=True, stdout=sys.stderr, env=os.environ | ETCD_ENV)
    say(f"  done in {time.monotonic() - started:.1f} s")


def host_names(hosts: int) -> list[str]:
    return [f"h{i}" for i in range(1, hosts + 1)]


def machine_of(host: str) -> str:
    return (STATE / host / "machine-id").read_text().strip()


class Watch:
    """Where each unit is active, as one fleetd's API reports it, polled; first-seen times."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.active: dict[str, set[str]] = {}

    async def poll(self) -> float:
        try:
            states = await self.client.list_states()
        except ApiError as exc:  # a busy etcd answers 503 now and then: poll again
            say(f"GET /state: {exc.code} {exc.message}")
            return time.monotonic()
        now = time.monotonic()
        active: dict[str, set[str]] = {}
        for s in states:
            if s.systemd_active_state == "active":
                active.setdefault(s.name, set()).add(s.machine_id)
        self.active = active
        return now

    async def until(self, what: str, pending: Collection[str],
                    where: set[str] | None = None) -> dict[str, float]:
        """Poll until each unit of `pending` is active (on a machine outside `where`, if
        given); returns unit -> the poll time it was first seen so."""
        seen: dict[str, float] = {}
        deadline, shown = time.monotonic() + TIMEOUT, 0.0
        while len(seen) < len(pending):
            now = await self.poll()
            for unit in set(pending) - seen.keys():
                if self.active.get(unit, set()) - (where or set()):
                    seen[unit] = now
            if now - shown > 5:
                say(f"{what}: {len(seen)}/{len(pending)}")
                shown = now
            if now > deadline:
                raise SystemExit(f"bench.scale: {what}: {len(seen)}/{len(pending)} after {TIMEOUT:.0f} s")
            await asyncio.sleep(POLL_SECONDS)
        return seen


def summary(name: str, seconds: list[float]) -> dict[str, float]:
    return {f"{name}_p50_s": round(percentile(seconds, 50), 2),
            f"{name}_p99_s": round(percentile(seconds, 99), 2),
            f"{name}_max_s": round(max(seconds), 2)}


async def settled(client: Client, hosts: int) -> None:
    """Until the API lists every host: fifty fleetds that just booted elect a leader and
    register while etcd is at its busiest; the benchmark starts from a settled cluster."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        with contextlib.suppress(ApiError):
            if len(await client.list_machines()) >= hosts:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"bench.scale: fewer than {hosts} machines after {TIMEOUT:.0f} s")
        await asyncio.sleep(1.0)


async def submit(client: Client, batch: list[Any]) -> None:
    """POST one batch (the client sends it again after a 503, as fleetctl does); a refused
    entry ends the benchmark."""
    failed = [r for r in await client.submit_units(batch) if r.status >= 400]
    if failed:
        raise SystemExit(f"bench.scale: {failed[0].name}: {failed[0].status} {failed[0].message}")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    hosts = host_names(args.hosts)
    socket = STATE / hosts[0] / "fleet.sock"
    names = [f"bench-scale@{i}.service" for i in range(1, args.units + 1)]
    async with Client(parse_endpoint(f"unix://{socket}"), timeout=120) as client:
        await settled(client, args.hosts)
        watch = Watch(client)
        submitted: dict[str, float] = {}
        for start in range(0, len(names), BATCH):
            chunk = names[start:start + BATCH]
            await submit(client, entries((n, TEXT) for n in chunk))
            submitted |= dict.fromkeys(chunk, time.monotonic())
        say(f"submitted {len(names)} units through {socket}")
        active = await watch.until("active", submitted)
        started = [active[n] - submitted[n] for n in names]
        lost = hosts[-args.lose:]
        gone = {machine_of(h) for h in lost}
        moving = [n for n, on in watch.active.items() if n in submitted and on & gone]
        say(f"killing {' '.join(lost)}: {len(moving)} units on them")
        killed_at = time.monotonic()
        local_cluster("kill-host", *lost)
        replaced = await watch.until("replaced", moving, where=gone)
        return {**summary("start_to_active", started),
                **summary("loss_to_replaced", [t - killed_at for t in replaced.values()]),
                "moved_units": len(moving)}


def markdown(result: dict[str, Any], command: str) -> str:
    return (f"## Fifty real hosts (`{command}`)\n\n"
            f"Recorded {result['date']} on {machine_line()}: {result['hosts']} local-cluster hosts "
            f"(systemd-nspawn, fleetd in each, the cluster's 3-member etcd), {result['units']} "
            f"units (`sleep infinity`), then {result['lose']} hosts hard-powered off at once. "
            "Times in seconds, read by polling one fleetd's `GET /state` every "
            f"{POLL_SECONDS} s.\n\n"
            "| figure | p50 | p99 | max |\n|---|---:|---:|---:|\n"
            f"| start to active | {result['start_to_active_p50_s']} | "
            f"{result['start_to_active_p99_s']} | {result['start_to_active_max_s']} |\n"
            f"| host loss to replacement ({result['moved_units']} units) | "
            f"{result['loss_to_replaced_p50_s']} | {result['loss_to_replaced_p99_s']} | "
            f"{result['loss_to_replaced_max_s']} |\n\n"
            f"```json\n{json.dumps(result, sort_keys=True)}\n```")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    p.add_argument("--hosts", type=int, default=50, help="local-cluster hosts (default 50)")
    p.add_argument("--units", type=int, default=2000, help="units started (default 2000)")
    p.add_argument("--lose", type=int, default=5, help="hosts powered off at once (default 5)")
    p.add_argument("--no-record", action="store_true", help="do not write docs/benchmarks.md")
    p.add_argument("--keep", action="store_true", help="leave the cluster up afterwards")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not 0 < args.lose < args.hosts // 2:
        raise SystemExit("bench.scale: --lose must be between 1 and under half of --hosts "
                         "(more trips the mass-failure brake by design)")
    local_cluster("up", str(args.hosts))
    try:
        figures = asyncio.run(measure(args))
    finally:
        if not args.keep:
            local_cluster("down")
    result = {"date": datetime.date.today().isoformat(), "hosts": args.hosts, "units": args.units,
              "lose": args.lose, **figures}
    print(json.dumps(result, sort_keys=True))
    if not args.no_record:
        command = f"python -m bench.scale --hosts {args.hosts} --units {args.units} --lose {args.lose}"
        record(DOC, "scale", markdown(result, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
