"""`--output json` of the list-* verbs (pure): every field of a row, full values, stable keys.

Owns the JSON records of list-units (unit, machine, ip, load, active, sub, hash), list-unit-files
(unit, hash, dstate, state, target, ip, global, desc, reason) and list-machines (machine, ip,
metadata, cpu, memory). Unlike the tables nothing is shortened: machine ids and hashes are whole,
`global` is a boolean, `metadata` an object, cpu/memory numbers, and a missing value is null.
`--fields` keeps only the named keys (in the order given).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from fleetctl import render
from fleetd.api import schema

OUTPUTS = ("table", "json")
Record = dict[str, object]


def dump(records: Sequence[Mapping[str, object]], fields: Sequence[str] | None = None) -> str:
    """A JSON list, indented for people and jq; only `fields` (if given) in each object."""
    if fields is not None:
        records = [{f: r.get(_alias(f)) for f in fields} for r in records]
    return json.dumps(list(records), indent=2) + "\n"


def _alias(field: str) -> str:
    return "target" if field == "tmachine" else field


def _or_none(value: str | None) -> str | None:
    return value or None


def state_records(
    states: Iterable[schema.UnitState], machines: Iterable[schema.Machine]
) -> list[Record]:
    """list-units: one object per unit per machine, sorted by unit then machine."""
    ip = render.ips(machines)
    return [
        {
            "unit": s.name,
            "machine": _or_none(s.machine_id),
            "ip": _or_none(ip.get(s.machine_id, "")),
            "load": _or_none(s.systemd_load_state),
            "active": _or_none(s.systemd_active_state),
            "sub": _or_none(s.systemd_sub_state),
            "hash": _or_none(s.hash),
        }
        for s in sorted(states, key=lambda s: (s.name, s.machine_id))
    ]


def unit_file_records(
    units: Iterable[schema.Unit], machines: Iterable[schema.Machine]
) -> list[Record]:
    """list-unit-files: one object per unit in the registry, sorted by name."""
    ip = render.ips(machines)
    return [_unit_file_record(u, ip) for u in sorted(units, key=lambda u: u.name or "")]


def _unit_file_record(unit: schema.Unit, ip: Mapping[str, str]) -> Record:
    uf, glob = render.unit_file(unit), render.is_global(unit)
    target = None if glob else _or_none(unit.machine_id)
    return {
        "unit": unit.name or "",
        "hash": _or_none(uf.hash),
        "dstate": _or_none(_value(unit.desired_state)),
        "state": None if glob else _or_none(_value(unit.current_state)),
        "target": target,
        "ip": _or_none(ip.get(target or "", "")),
        "global": glob,
        "desc": _or_none(uf.description),
        "reason": _or_none(render.reason_legend(unit.pending_reason)),
    }


def _value(state: object) -> str:
    return str(getattr(state, "value", state or ""))


def machine_records(machines: Iterable[schema.Machine]) -> list[Record]:
    """list-machines: sorted by id; cpu in millicores and memory in bytes (null if unknown)."""
    return [
        {
            "machine": m.id,
            "ip": _or_none(m.primary_ip),
            "metadata": dict(sorted(m.metadata.items())),
            "state": m.state or "ready",
            "cpu": (m.capacity.cpu or None) if m.capacity else None,
            "memory": (m.capacity.memory or None) if m.capacity else None,
        }
        for m in sorted(machines, key=lambda m: m.id)
    ]


UNIT_KEYS = ("unit", "machine", "ip", "load", "active", "sub", "hash")
UNIT_FILE_KEYS = ("unit", "hash", "dstate", "state", "target", "ip", "global", "desc", "reason",
                  "tmachine")
MACHINE_KEYS = ("machine", "ip", "metadata", "state", "cpu", "memory")
