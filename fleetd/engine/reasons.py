"""Why a unit cannot be placed, in words (pure): per-machine refusals summed up into one reason.

The furthest check machines got to comes first (capacity, then conflicts and Replaces, then
peers, then machines that failed the unit, are ruled out by a move or cordoned, then
metadata, then MachineID), e.g.
`insufficient memory: needs 2G, largest free 1.5G`, followed by the other kinds of refusal
with how many machines gave them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetd.engine.board import UNLIMITED
from fleetd.model.requirements import Requirements, describe_metadata
from fleetd.model.resources import Resources, format_cpu, format_size

ORDER = ("resources", "conflicts", "replaced", "peer", "failed", "move", "closed", "metadata",
         "machine_id")


@dataclass(frozen=True, slots=True)
class Refusal:
    """One machine's answer: the kind of check it failed and the detail (rival units, free room)."""

    kind: str
    detail: str
    machine: str = ""
    free: Resources = Resources()


def known(r: Resources, capacity: Resources) -> Resources:
    """Zero the dimensions whose capacity is unknown (unlimited), for display."""
    return Resources(cpu=r.cpu if capacity.cpu < UNLIMITED else 0,
                     memory=r.memory if capacity.memory < UNLIMITED else 0)


def summarize(req: Requirements, refusals: Sequence[Refusal], have_machines: bool) -> str:
    """One line: the furthest kind of refusal first, then the others with machine counts."""
    if not have_machines:
        return "no machines in the cluster"
    by_kind: dict[str, list[Refusal]] = {}
    for refusal in refusals:
        by_kind.setdefault(refusal.kind, []).append(refusal)
    # When the MachineID machine is there and refuses, the other machines' "not it" says nothing.
    kinds = [k for k in ORDER if k in by_kind and (k != "machine_id" or len(by_kind) == 1)]
    every = len(kinds) == 1
    return "; ".join(_phrase(req, kind, by_kind[kind], every) for kind in kinds)


def _phrase(req: Requirements, kind: str, refusals: list[Refusal], every: bool) -> str:
    count = f"{len(refusals)} machine{'s' if len(refusals) != 1 else ''}"
    if kind == "resources":
        return _insufficient(req.resources, refusals) + ("" if every else f" ({count})")
    if kind == "conflicts":
        rivals = sorted({u for r in refusals for u in r.detail.split(", ")})
        where = "every candidate" if every else count
        return f"conflicts with {', '.join(rivals)} on {where}"
    if kind == "replaced":
        replacers = sorted({u for r in refusals for u in r.detail.split(", ")})
        return f"replaced by {', '.join(replacers)} on {'every candidate' if every else count}"
    if kind == "peer":
        return refusals[0].detail
    if kind == "closed":
        return refusals[0].detail if len(refusals) == 1 else f"{count} are cordoned or draining"
    if kind == "move":
        return refusals[0].detail if len(refusals) == 1 else f"{count} are ruled out by the move"
    if kind == "failed":
        return (refusals[0].detail if len(refusals) == 1
                else f"{count} failed it already (RescheduleOnFailure)")
    if kind == "metadata":
        if every:
            return f"no machine matches metadata {describe_metadata(req)}"
        return f"{count} {'does' if len(refusals) == 1 else 'do'} not match metadata {describe_metadata(req)}"
    return f"machine {req.machine_id} (MachineID) is not in the cluster"


def _insufficient(demand: Resources, refusals: list[Refusal]) -> str:
    """`insufficient memory: needs 2G, largest free 1.5G` (cpu, memory, or both)."""
    parts = []
    # "largest free" among the machines short of that dimension (not those short of the other one)
    short_cpu = [max(r.free.cpu, 0) for r in refusals if 0 < demand.cpu > r.free.cpu]
    if short_cpu:
        parts.append(("cpu", format_cpu(demand.cpu), format_cpu(max(short_cpu))))
    short_memory = [max(r.free.memory, 0) for r in refusals if 0 < demand.memory > r.free.memory]
    if short_memory:
        parts.append(("memory", format_size(demand.memory), format_size(max(short_memory))))
    if not parts:
        return "insufficient resources"
    names = " and ".join(p[0] for p in parts)
    needs = ", ".join(p[1] for p in parts)
    free = ", ".join(p[2] for p in parts)
    return f"insufficient {names}: needs {needs}, largest free {free}"
