"""Dynamic machine metadata: fleet's PATCH /machines operations and the config overlay (pure).

Owns the validation of a decoded PATCH body (fleet's messages, every op checked before any is
applied), applying the ops in order to per-machine maps, and the overlay rule: a machine
publishes its config metadata overlaid by its dynamic map (dynamic wins; removing a dynamic key
falls back to the config value, if any).

A value may be given as fleet's code expects it, `{"value": "x"}`, or as fleet's docs show it,
`"x"`; both mean the string "x".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleetd.errors import InvalidInput

OPS = ("add", "replace", "remove")
MAX_OPS = 1000
PATH = re.compile(r"/([A-Za-z0-9_.-]+)/metadata/([A-Za-z0-9_.-]+)")
BAD_OP = "invalid op: expect add, remove, or replace"
BAD_PATH = "machine metadata path invalid"
BAD_VALUE = "invalid value: add and replace require a value"


@dataclass(frozen=True, slots=True)
class MetadataOp:
    """Set (`value` is a str) or remove (`value` is None) one dynamic key of one machine."""

    machine: str
    key: str
    value: str | None


def parse_ops(body: object) -> tuple[MetadataOp, ...]:
    """Validate a decoded JSON body (a list of {op, path, value}); InvalidInput on the first fault."""
    if not isinstance(body, list):
        raise InvalidInput("unable to decode body: expected a JSON array of operations")
    if len(body) > MAX_OPS:
        raise InvalidInput(f"too many operations: at most {MAX_OPS} per request")
    return tuple(_parse_one(item) for item in body)


def _parse_one(item: object) -> MetadataOp:
    if not isinstance(item, dict):
        raise InvalidInput("unable to decode body: each operation must be a JSON object")
    unknown = sorted(set(item) - {"op", "path", "value"})
    if unknown:
        raise InvalidInput(f'unable to decode body: unknown field "{unknown[0]}"')
    op = item.get("op")
    if op not in OPS:
        raise InvalidInput(BAD_OP)
    path = item.get("path")
    match = PATH.fullmatch(path) if isinstance(path, str) else None
    if match is None:
        raise InvalidInput(BAD_PATH)
    machine, key = match.groups()
    if op == "remove":
        return MetadataOp(machine, key, None)
    return MetadataOp(machine, key, _value(item.get("value")))


def _value(raw: object) -> str:
    if isinstance(raw, dict) and set(raw) == {"value"}:
        raw = raw["value"]
    if not isinstance(raw, str):
        raise InvalidInput(BAD_VALUE)
    return raw


def machines_of(ops: Sequence[MetadataOp]) -> list[str]:
    """The machines the ops touch, in first-appearance order."""
    return list(dict.fromkeys(op.machine for op in ops))


def apply_ops(current: Mapping[str, Mapping[str, str]],
              ops: Sequence[MetadataOp]) -> dict[str, dict[str, str]]:
    """The dynamic maps of every touched machine after applying `ops` in order."""
    after = {m: dict(current.get(m, {})) for m in machines_of(ops)}
    for op in ops:
        if op.value is None:
            after[op.machine].pop(op.key, None)
        else:
            after[op.machine][op.key] = op.value
    return after


def overlay(config: Mapping[str, str], dynamic: Mapping[str, str]) -> dict[str, str]:
    """What the machine publishes: config metadata overlaid by the dynamic map."""
    return {**config, **dynamic}
