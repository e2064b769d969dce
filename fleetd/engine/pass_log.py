"""How the leader logs a committed pass: each action with its reason (a summary at info instead
when there are more than DETAIL_LIMIT), and the pending units whose reason is new."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetd.engine.decision import Decision

DETAIL_LIMIT = 50  # passes with more actions log a summary at info and each action at debug


def log_plan(log: Any, plan: Decision, txns: int, decide_s: float, commit_s: float,
             last_pending: Mapping[str, str]) -> dict[str, str]:
    """Log the committed `plan`; return its pending reasons (the next pass's `last_pending`)."""
    actions = len(plan.evictions) + len(plan.updates) + len(plan.placements)
    detail = log.info if actions <= DETAIL_LIMIT else log.debug
    for e in plan.evictions:
        detail("unit unscheduled", unit=e.unit, machine=e.machine[:8], reason=e.reason)
    for u in plan.updates:
        detail("unit placement updated", unit=u.assignment.unit, machine=u.assignment.machine[:8],
               desired=u.assignment.desired.value, reason=u.reason)
    for p in plan.placements:
        detail("unit scheduled", unit=p.assignment.unit, machine=p.assignment.machine[:8],
               reason=p.reason)
    pending = _log_pending(log, plan, last_pending)
    if actions > DETAIL_LIMIT:
        log.info("plan committed", scheduled=len(plan.placements), updated=len(plan.updates),
                 unscheduled=len(plan.evictions), pending=len(plan.pending), txns=txns,
                 decide_s=round(decide_s, 3), commit_s=round(commit_s, 3))
    elif txns:
        log.debug("plan committed", txns=txns, decide_s=round(decide_s, 4), commit_s=round(commit_s, 4))
    return pending


def _log_pending(log: Any, plan: Decision, last: Mapping[str, str]) -> dict[str, str]:
    pending = {p.unit: p.reason for p in plan.pending}
    fresh = {u: r for u, r in pending.items() if last.get(u) != r}
    detail = log.warning if len(fresh) <= DETAIL_LIMIT else log.debug
    for unit, reason in fresh.items():
        detail("unit cannot be scheduled", unit=unit, reason=reason)
    if len(fresh) > DETAIL_LIMIT:
        log.warning("units cannot be scheduled", count=len(fresh), example=next(iter(fresh.items())))
    return pending
