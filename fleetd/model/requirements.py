"""A unit's placement requirements: the `[X-Fleet]` section, parsed, validated and matched.

Owns fleet's option semantics (docs/units.md, docs/scheduling.md): aliases, quoted multi-values,
specifiers, metadata grouping (OR within a key, AND across keys), the validation table with
fleet's messages, and the machine/conflict predicates the scheduler and agents share.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from fleetd.errors import InvalidRequirements
from fleetd.model import metadata as meta
from fleetd.model.endpoints import Endpoint, parse_publish
from fleetd.model.metadata import MetadataRequirement
from fleetd.model.names import parse_name
from fleetd.model.reschedule import KEYS as RESCHEDULE_KEYS
from fleetd.model.reschedule import Reschedule
from fleetd.model.reschedule import parse as parse_reschedule
from fleetd.model.resources import Resources, unit_demand
from fleetd.model.unitfile import UnitFile

SECTION = "X-Fleet"
# Each alias tuple is in fleet's order: MachineID wins over its deprecated names wherever they
# stand in the file; list options take the deprecated name's values first (fleet's job.go).
MACHINE_ID_KEYS = ("MachineID", "X-ConditionMachineID", "X-ConditionMachineBootID")
MACHINE_OF_KEYS = ("X-ConditionMachineOf", "MachineOf")
METADATA_KEYS = ("X-ConditionMachineMetadata", "MachineMetadata")
CONFLICTS_KEYS = ("X-Conflicts", "Conflicts")
EXTENSION_KEYS = ("Instances", "Policy", "SpreadBy", "CPU", "Memory", "AtMostOnce", "Publish")
KNOWN_KEYS = frozenset(
    (*MACHINE_ID_KEYS, *MACHINE_OF_KEYS, *METADATA_KEYS, *CONFLICTS_KEYS, "Global", "Replaces",
     *EXTENSION_KEYS, *RESCHEDULE_KEYS)
)
POLICIES = ("binpack", "spread")
MAX_INSTANCES = 1000
TRUTHY = frozenset(("true", "yes", "1", "on", "t"))
FALSY = frozenset(("false", "no", "0", "off", "f"))


@dataclass(frozen=True, slots=True)
class Requirements:
    """Where a unit may run, what it needs there, and how to choose among the machines left."""

    machine_id: str | None = None
    machine_of: tuple[str, ...] = ()
    metadata: MetadataRequirement = MetadataRequirement()
    conflicts: tuple[str, ...] = ()
    is_global: bool = False
    replaces: tuple[str, ...] = ()
    instances: int | None = None
    policy: str | None = None
    spread_by: str | None = None
    resources: Resources = Resources()
    at_most_once: bool = False  # never on two machines at once, even across a partition
    publish: tuple[Endpoint, ...] = ()  # ports announced under endpoints/ while active
    reschedule: Reschedule | None = None  # RescheduleOnFailure=true: placed elsewhere on failure


def parse_requirements(name: str, unit: UnitFile) -> Requirements:
    """Read `[X-Fleet]` of unit `name` (aliases honoured, specifiers substituted)."""
    values = _section_values(name, unit)
    global_values = _collect(values, ("Global",))
    return Requirements(
        machine_id=_machine_id(values),
        machine_of=_unique(_collect(values, MACHINE_OF_KEYS)),
        metadata=meta.parse_metadata(_collect(values, METADATA_KEYS)),
        conflicts=_unique(w for v in _collect(values, CONFLICTS_KEYS) for w in v.split()),
        is_global=bool(global_values) and global_values[-1].strip().lower() in TRUTHY,
        replaces=_unique(_collect(values, ("Replaces",))),
        instances=_instances(name, _last(values, "Instances")),
        policy=_policy(_last(values, "Policy")),
        spread_by=_last(values, "SpreadBy") or None,
        resources=unit_demand(unit, _last(values, "CPU"), _last(values, "Memory")),
        at_most_once=_flag("AtMostOnce", _last(values, "AtMostOnce")),
        publish=parse_publish(_collect(values, ("Publish",))),
        reschedule=parse_reschedule(_flag("RescheduleOnFailure", _last(values, "RescheduleOnFailure")),
                                    _last(values, "RescheduleAttempts"),
                                    _last(values, "RescheduleDelay")),
    )


def _machine_id(values: list[tuple[str, str]]) -> str | None:
    """The first value of the first key present: MachineID, then its deprecated names."""
    for key in MACHINE_ID_KEYS:
        found = _collect(values, (key,))
        if found:
            return found[0]
    return None


def _last(values: Iterable[tuple[str, str]], key: str) -> str | None:
    found = _collect(values, (key,))
    return found[-1].strip() if found else None


def _instances(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_INSTANCES:
        raise InvalidRequirements(
            f'Instances must be a whole number from 1 to {MAX_INSTANCES}, not "{value}"'
        )
    if "@" not in name:
        raise InvalidRequirements("Instances can only be used in a template unit (name@.service)")
    return int(value)


def _flag(key: str, value: str | None) -> bool:
    if value is None:
        return False
    if value.lower() not in TRUTHY | FALSY:
        raise InvalidRequirements(f'{key} must be true or false, not "{value}"')
    return value.lower() in TRUTHY


def _policy(value: str | None) -> str | None:
    if value is None:
        return None
    if value.lower() not in POLICIES:
        raise InvalidRequirements(f'Policy must be one of {", ".join(POLICIES)}, not "{value}"')
    return value.lower()


def unknown_options(unit: UnitFile) -> tuple[str, ...]:
    """`[X-Fleet]` keys fleetd does not know (likely typos), in file order, once each."""
    return _unique(o.name for o in unit.options if o.section == SECTION and o.name not in KNOWN_KEYS)


def validate_requirements(req: Requirements) -> None:
    """Raise InvalidRequirements with fleet's message for contradictory options."""
    message = _combination_error(req) or _peer_error(req)
    if message:
        raise InvalidRequirements(message)


def _combination_error(req: Requirements) -> str | None:
    has = {
        "MachineID": req.machine_id is not None,
        "Peers": bool(req.machine_of),
        "Conflicts": bool(req.conflicts),
        "Global": req.is_global,
        "Replaces": bool(req.replaces),
        "Instances": req.instances is not None,
        "AtMostOnce": req.at_most_once,
        "RescheduleOnFailure": req.reschedule is not None,
    }
    forbidden = (
        ("MachineID", "Peers"),
        ("MachineID", "Conflicts"),
        ("MachineID", "Global"),
        ("MachineID", "Replaces"),
        ("Global", "Peers"),
        ("Global", "Replaces"),
        ("Conflicts", "Replaces"),
        ("Global", "Instances"),
        ("Global", "AtMostOnce"),
        ("Global", "RescheduleOnFailure"),
        ("MachineID", "RescheduleOnFailure"),
    )
    for first, second in forbidden:
        if has[first] and has[second]:
            return f"{first} cannot be used with {second}"
    return None


def _peer_error(req: Requirements) -> str | None:
    for peer in req.machine_of:
        for kind, globs in (("conflict", req.conflicts), ("replace", req.replaces)):
            for glob in globs:
                if glob_match(glob, peer):
                    return f'unresolvable requirements: peer "{peer}" matches {kind} "{glob}"'
    return None


def metadata_matches(req: Requirements, metadata: Mapping[str, str]) -> bool:
    """True if the machine's metadata satisfies every MachineMetadata rule of the unit."""
    return meta.metadata_matches(req.metadata, metadata)


def machine_id_matches(req: Requirements, machine_id: str) -> bool:
    """True if the unit has no MachineID, or it equals the full or 8-character short id."""
    wanted = req.machine_id
    return wanted is None or wanted in (machine_id, machine_id[:8])


def conflicts(name_a: str, req_a: Requirements, name_b: str, req_b: Requirements) -> bool:
    """True if either unit's Conflicts globs match the other's name; never with itself."""
    if name_a == name_b:
        return False
    return any(glob_match(g, name_b) for g in req_a.conflicts) or any(
        glob_match(g, name_a) for g in req_b.conflicts
    )


def replaces(name_a: str, req_a: Requirements, name_b: str, req_b: Requirements) -> bool:
    """True if unit a's Replaces globs match b and b does not replace a back (circular: ignored)."""
    if name_a == name_b or not any(glob_match(g, name_b) for g in req_a.replaces):
        return False
    return not any(glob_match(g, name_a) for g in req_b.replaces)


def describe_metadata(req: Requirements) -> str:
    """`disk=ssd, region=east|west, cores>=4`: the metadata requirement in words."""
    return meta.describe_metadata(req.metadata)


def glob_match(pattern: str, name: str) -> bool:
    """Go `path.Match`: `*`, `?`, `[...]` (`^` negates), `\\` escapes; bad patterns never match."""
    compiled = _compile_glob(pattern)
    return compiled is not None and compiled.fullmatch(name) is not None


@lru_cache(maxsize=4096)
def _compile_glob(pattern: str) -> re.Pattern[str] | None:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        piece, i = _glob_piece(pattern, i)
        if piece is None:
            return None
        parts.append(piece)
    return re.compile("".join(parts), re.DOTALL)


def _glob_piece(pattern: str, i: int) -> tuple[str | None, int]:
    """Translate the glob element starting at `i`; return (regex or None if bad, next index)."""
    char = pattern[i]
    if char == "*":
        return "[^/]*", i + 1
    if char == "?":
        return "[^/]", i + 1
    if char == "\\":
        return (re.escape(pattern[i + 1]), i + 2) if i + 1 < len(pattern) else (None, i)
    if char == "[":
        return _glob_class(pattern, i + 1)
    return re.escape(char), i + 1


def _glob_class(pattern: str, i: int) -> tuple[str | None, int]:
    negate = i < len(pattern) and pattern[i] == "^"
    i += negate
    ranges: list[str] = []
    while i < len(pattern) and (pattern[i] != "]" or not ranges):
        low, i = _class_char(pattern, i)
        high = low
        if low is not None and i + 1 < len(pattern) and pattern[i] == "-" and pattern[i + 1] != "]":
            high, i = _class_char(pattern, i + 1)
        if low is None or high is None or low > high:
            return None, i
        ranges.append(re.escape(low) + ("-" + re.escape(high) if high != low else ""))
    if i >= len(pattern):
        return None, i
    body = "".join(ranges)
    return (f"[^{body}]" if negate else f"[{body}]"), i + 1


def _class_char(pattern: str, i: int) -> tuple[str | None, int]:
    if pattern[i] == "\\":
        return (pattern[i + 1], i + 2) if i + 1 < len(pattern) else (None, i)
    if pattern[i] in "-]":
        return None, i
    return pattern[i], i + 1


def _section_values(name: str, unit: UnitFile) -> list[tuple[str, str]]:
    """(key, value) pairs of [X-Fleet], quoted multi-values split, specifiers substituted."""
    specifiers = _specifiers(name)
    return [
        (o.name, _substitute(v, specifiers))
        for o in unit.options
        if o.section == SECTION
        for v in _split_quoted(o.value)
    ]


def _collect(values: Iterable[tuple[str, str]], keys: tuple[str, ...]) -> list[str]:
    """Values of `keys`, key by key in the order given, each key's in file order."""
    return [v for key in keys for k, v in values if k == key]


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _split_quoted(value: str) -> list[str]:
    """fleet's multi-value rule: a value both starting and ending in `"` is split at spaces
    outside quotes and loses its quotes; only a space separates (a tab is kept in the value),
    and two spaces make an empty value between them. Any other value is kept whole."""
    if not (value.startswith('"') and value.endswith('"')):
        return [value]
    words, word, quoted = [], "", False
    for char in value:
        if char == '"':
            quoted = not quoted
        elif char == " " and not quoted:
            words.append(word)
            word = ""
        else:
            word += char
    return [*words, word]


def _specifiers(name: str) -> dict[str, str]:
    info = parse_name(name)
    return {"%n": info.full, "%N": info.stem, "%p": info.prefix, "%i": info.instance}


def _substitute(value: str, specifiers: Mapping[str, str]) -> str:
    return re.sub("%[nNpi]", lambda m: specifiers[m.group(0)], value)
