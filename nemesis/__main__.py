"""`python -m nemesis [--runs N] [--json-only] [--list] [--record FILE] [SCENARIO ...]`.

Brings the 5-host local cluster up (or reuses it), runs every named scenario (default: all)
N times (--runs, else $NEMESIS_RUNS, else 5), prints the table, the evidence and, last, one
JSON line of totals. --record writes table + JSON + command + date into FILE's nemesis
section. A cluster started here is taken down at the end unless --keep-up.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import time
from pathlib import Path

from bench.record import record
from nemesis import report
from nemesis.cluster import LocalCluster
from nemesis.runner import HOSTS, Result, restore, run_once
from nemesis.scenarios import SCENARIOS

HEADER = ("# Reliability\n\nFault injection on the local cluster (`make nemesis`); "
          "see README's Fault injection.\n")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m nemesis", description=__doc__.splitlines()[0])
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="default: all (see --list)")
    p.add_argument("--runs", type=int, default=int(os.environ.get("NEMESIS_RUNS", "5")))
    p.add_argument("--json-only", action="store_true", help="print only the final JSON line")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--record", type=Path, metavar="FILE", help="also write the results into FILE")
    p.add_argument("--converge-timeout", type=float, default=60.0)
    p.add_argument("--keep-up", action="store_true", help="leave a cluster started here running")
    args = p.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def say(args: argparse.Namespace, text: str) -> None:
    if not args.json_only:
        print(text, file=sys.stderr, flush=True)


def run_all(lc: LocalCluster, args: argparse.Namespace) -> list[Result]:
    results = []
    for scenario in args.scenarios or list(SCENARIOS):
        for n in range(1, args.runs + 1):
            t0 = time.monotonic()
            r = run_once(lc, scenario, n, args.converge_timeout)
            results.append(r)
            say(args, f"nemesis: {scenario} #{n}: converge_s={r.converge_s} dup={len(r.duplicates)} "
                      f"fenced_dup={len(r.fenced_duplicates)} violations={len(r.violations)} "
                      f"lost={len(r.lost)} figures={r.figures} ({time.monotonic() - t0:.0f}s)")
    return results


def write_record(path: Path, results: list[Result], argv: list[str], scenarios: list[str]) -> None:
    """Write FILE's section for this selection of scenarios (all: `nemesis`)."""
    if not path.exists():
        path.write_text(HEADER)
    cmd = shlex.join(["python", "-m", "nemesis", *argv])
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = " ".join(["nemesis", *scenarios])
    runs = max(r.run for r in results) if results else 0
    text = (f"## {title}\n\nCommand: `{cmd}` ({date}, {runs} runs per scenario, {HOSTS} hosts, "
            f"3-member etcd)\n\n"
            f"```\n{report.table(results)}\n```\n\nEvidence (every finding):\n\n```\n"
            f"{report.evidence(results) or '(none)'}\n```\n\nTotals:\n\n```\n"
            f"{report.json_line(results)}\n```\n")
    record(path, "-".join(["nemesis", *scenarios]), text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.list:
        for name, fn in SCENARIOS.items():
            print(f"{name:22} {(fn.__doc__ or '').strip()}")
        return 0
    lc = LocalCluster()
    started_here = not lc.running_hosts()
    say(args, f"nemesis: bringing up the local cluster ({HOSTS} hosts)")
    lc.up(HOSTS)
    try:
        restore(lc)
        results = run_all(lc, args)
    finally:
        if started_here and not args.keep_up:
            lc.down(check=False)
    if not args.json_only:
        print(report.table(results))
        print(report.evidence(results))
    print(report.json_line(results))
    if args.record:
        write_record(args.record, results, argv, args.scenarios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
