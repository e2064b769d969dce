"""Unit-file cleanup against a real etcd: 1,000 versions of one unit, then files/ back to one key.

The bench starts its own etcd (bench.etcd_server: one member, data on tmpfs unless --data-dir),
stores N versions of bench.service one after the other exactly as the API stores a replaced
unit (`Registry.replace_unit`: the new file and the unit record in one txn), counts the keys
under files/, then runs the real engine as leader (one machine lease, `unit_file_gc_grace`
from --grace) and times how long until files/ holds only the current version. The deletions
are counted the way the metric counts them (the engine's recorder).

    python -m bench.file_gc --versions 1000 [--grace 1] [--record docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

from bench.etcd_server import EtcdCluster
from bench.record import record
from bench.report import machine_line
from fleetd.engine.reconciler import Engine
from fleetd.model.machine import Machine
from fleetd.model.states import TargetState
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.observe import NoRecorder
from fleetd.registry.etcd import EtcdKV
from fleetd.registry.keys import Keys
from fleetd.registry.store import Registry

PREFIX = "/bench-file-gc/"
MACHINE = "b" * 32


class Deletions(NoRecorder):
    """Counts what `fleet_engine_unit_files_deleted_total` would."""

    def __init__(self) -> None:
        self.deleted = 0

    def unit_files_deleted(self, count: int) -> None:
        self.deleted += count


class Lease:
    lease = 0


def version(n: int) -> UnitFile:
    return UnitFile.parse(f"[Unit]\nDescription=version {n}\n[Service]\nExecStart=/bin/sleep {n}\n")


async def _submit(registry: Registry, versions: int) -> float:
    started = time.monotonic()
    first = version(0)
    await registry.create_unit(Unit("bench.service", first.hash, TargetState.INACTIVE),
                               first.serialize())
    for n in range(1, versions):
        text = version(n)
        await registry.replace_unit(Unit("bench.service", text.hash, TargetState.INACTIVE),
                                    text.serialize())
    return time.monotonic() - started


async def _clean(registry: Registry, grace: float) -> tuple[float, int]:
    """Run the engine as leader until files/ holds one key; seconds taken, deletions counted."""
    kv = registry.kv
    lease = Lease()
    lease.lease = await kv.grant(60)
    await registry.register_machine(Machine(MACHINE), lease.lease)
    deletions = Deletions()
    engine = Engine(registry, MACHINE, lease, interval=1.0, recorder=deletions, file_gc_grace=grace)
    started = time.monotonic()
    task = asyncio.create_task(engine.run())
    try:
        while await kv.count(registry.keys.files) > 1:
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return time.monotonic() - started, deletions.deleted


async def _measure(endpoints: list[str], versions: int, grace: float) -> dict[str, object]:
    kv = EtcdKV(endpoints, request_timeout=60.0)
    registry = Registry(kv, Keys(PREFIX))
    try:
        submit_s = await _submit(registry, versions)
        before = await kv.count(registry.keys.files)
        cleaned_s, deleted = await _clean(registry, grace)
        left = [found.key for found in (await kv.get_keys(registry.keys.files)).items]
    finally:
        await kv.close()
    if left != [registry.keys.file(version(versions - 1).hash)]:
        raise SystemExit(f"bench: files/ should hold only the current version, holds {left}")
    return {"versions": versions, "files_before": before, "files_after": len(left),
            "deleted": deleted, "grace_s": grace, "submit_s": round(submit_s, 2),
            "cleaned_after_s": round(cleaned_s, 2)}


def markdown(figures: dict[str, object], command: str, machine: str) -> str:
    """The bench's section of docs/benchmarks.md (pure)."""
    return "\n".join([
        f"## Unit-file cleanup (`{command}`)",
        "",
        f"Recorded {time.strftime('%Y-%m-%d')} on {machine}; etcd 3.4, one member, data on tmpfs; "
        f"{figures['versions']} versions of bench.service stored one after the other as the API "
        "stores a replaced unit, then the real engine as leader with unit_file_gc_grace="
        f"{figures['grace_s']:g}s, timed from its start until files/ holds one key.",
        "",
        f"files/ held **{figures['files_before']}** keys, then **{figures['files_after']}** "
        f"after {figures['cleaned_after_s']} s ({figures['deleted']} deletions counted; the "
        f"submissions took {figures['submit_s']} s).",
        "",
        "```json",
        json.dumps(figures, sort_keys=True),
        "```",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.file_gc",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--grace", type=float, default=1.0, help="unit_file_gc_grace in seconds")
    parser.add_argument("--data-dir", help="etcd data directory root (default: tmpfs)")
    parser.add_argument("--record", type=Path, metavar="FILE", help="write the result into FILE")
    args = parser.parse_args(argv)
    with EtcdCluster(1, data_root=args.data_dir) as etcd:
        figures = asyncio.run(_measure(etcd.endpoints, args.versions, args.grace))
    print(f"files/: {figures['files_before']} keys -> {figures['files_after']} in "
          f"{figures['cleaned_after_s']} s", file=sys.stderr)
    if args.record:
        command = " ".join(["python -m bench.file_gc", *(argv if argv is not None else sys.argv[1:])])
        record(args.record, "file_gc", markdown(figures, command, machine_line()))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
