"""The runner's output: one table row per scenario, totals, and the final JSON line.

Per scenario: runs, converged runs, duplicates, fenced duplicates, violations, lost, the
longest convergence, and the scenario's own figures (reschedule p50/p99 for power-off,
scheduling time under a dead/stopped leader, longest fleetctl stall under etcd faults,
the brake's alarm and mass rescheduling).
"""

from __future__ import annotations

import json
import math

from nemesis.runner import Result

COUNTS = ("duplicates", "fenced_duplicates", "violations", "lost")
SUMMARY = ("runs", "converged", *COUNTS, "max_converge_s")  # the table's own columns


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(results: list[Result]) -> dict[str, object]:
    """Figures of one scenario's runs."""
    conv = [r.converge_s for r in results if r.converge_s is not None]
    out: dict[str, object] = {"runs": len(results), "converged": len(conv)}
    out.update({k: sum(len(getattr(r, k)) for r in results) for k in COUNTS})
    out["max_converge_s"] = max(conv, default=None)
    out.update(extras(results))
    return out


def extras(results: list[Result]) -> dict[str, object]:
    figs = [r.figures for r in results]
    out: dict[str, object] = {}
    resched = [s for f in figs for s in f.get("reschedule_s", [])]  # type: ignore[attr-defined]
    if resched:
        out.update(power_offs=len(figs), reschedule_samples=len(resched),
                   reschedule_p50_s=percentile(resched, 50), reschedule_p99_s=percentile(resched, 99))
    if any("target_s" in f for f in figs):
        out["target_s"] = max(f.get("target_s", 0) for f in figs)  # type: ignore[type-var]
    for key in ("schedule_s", "max_stall_s"):
        vals = [f[key] for f in figs if key in f]
        if vals:
            out[f"max_{key}" if key == "schedule_s" else key] = (
                None if None in vals else max(vals))  # type: ignore[type-var]
    if any("failed_submits" in f for f in figs):
        out["failed_submits"] = sum(f.get("failed_submits", 0) for f in figs)  # type: ignore[misc]
    if any("alarm_seen" in f for f in figs):
        out["alarm_seen"] = all(f.get("alarm_seen") for f in figs)
        out["mass_rescheduled"] = sum(f.get("mass_rescheduled", 0) for f in figs)  # type: ignore[misc]
    return out


def by_scenario(results: list[Result]) -> dict[str, dict[str, object]]:
    names = list(dict.fromkeys(r.scenario for r in results))
    return {n: summary([r for r in results if r.scenario == n]) for n in names}


def totals(results: list[Result]) -> dict[str, object]:
    """The final JSON line's content: totals, then per-scenario figures."""
    conv = [r.converge_s for r in results if r.converge_s is not None]
    out: dict[str, object] = {"runs": len(results), "unconverged": len(results) - len(conv)}
    out.update({k: sum(len(getattr(r, k)) for r in results) for k in COUNTS})
    out["max_converge_s"] = max(conv, default=None)
    resched = [s for r in results for s in r.figures.get("reschedule_s", [])]  # type: ignore[attr-defined]
    out["reschedule_p50_s"], out["reschedule_p99_s"] = percentile(resched, 50), percentile(resched, 99)
    out["scenarios"] = by_scenario(results)
    return out


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def table(results: list[Result]) -> str:
    """A fixed-width table, one row per scenario, with its notable figures last."""
    head = ["scenario", "runs", "conv", "dup", "fenced_dup", "violations", "lost", "max_conv_s", "figures"]
    rows = [head]
    for name, s in by_scenario(results).items():
        core = [name, s["runs"], f"{s['converged']}/{s['runs']}", s["duplicates"], s["fenced_duplicates"],
                s["violations"], s["lost"], s["max_converge_s"]]
        extra = " ".join(f"{k}={_cell(v)}" for k, v in s.items() if k not in SUMMARY)
        rows.append([_cell(c) for c in core] + [extra])
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head) - 1)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + str(r[-1])
                     for r in rows)


def evidence(results: list[Result]) -> str:
    """Every non-empty finding of every run, one line each (what the checker saw)."""
    lines = []
    for r in results:
        for key in COUNTS:
            for item in getattr(r, key):
                lines.append(f"{r.scenario}#{r.run} {key}: {item}")
        if not r.converged:
            lines.append(f"{r.scenario}#{r.run}: did not converge")
    return "\n".join(lines)


def json_line(results: list[Result]) -> str:
    return json.dumps(totals(results), sort_keys=False)
