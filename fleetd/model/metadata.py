"""MachineMetadata requirements with operators: parsing, matching and describing them.

Owns the expression language of one `MachineMetadata=` value. Plain `key=value` keeps fleet's
exact meaning (malformed plain values silently ignored; values of one key OR-ed, keys AND-ed);
the extensions `!=`, `in (...)`, `not in (...)` and the numeric `<`, `<=`, `>`, `>=` each add one
rule, AND-ed with the rest. A malformed expression that clearly uses an operator is an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fleetd.errors import InvalidRequirements

EQ, NE, IN, NOT_IN = "=", "!=", "in", "not in"
NUMERIC_OPS = ("<", "<=", ">", ">=")
OPS = (EQ, NE, IN, NOT_IN, *NUMERIC_OPS)

# `key in (...)` / `key not in (...)`: the key holds no operator character, the keyword stands alone.
_IN = re.compile(r"\s*(?P<key>[^=!<>]*?)\s*(?<!\S)(?P<op>not\s+in|in)(?![^\s(])(?P<rest>.*)", re.DOTALL)
# The first operator decides: `a=b<c` is fleet's plain `a` = `b<c`; `a<=b` is a comparison.
_OPERATOR = re.compile(r"!=|<=|>=|<|>|=")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


@dataclass(frozen=True, slots=True)
class Rule:
    """One condition on a machine's metadata value for `key`."""

    key: str
    op: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MetadataRequirement:
    """Rules a machine's metadata must all satisfy; no rules matches every machine."""

    rules: tuple[Rule, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.rules)


def parse_metadata(values: Iterable[str]) -> MetadataRequirement:
    """Parse MachineMetadata values (already split); raise InvalidRequirements on a bad operator."""
    rules: dict[Rule, Rule] = {}  # identity -> rule; insertion order is first appearance
    for value in values:
        rule = _parse_one(value)
        if rule is None:
            continue
        if rule.op != EQ:
            rules.setdefault(rule, rule)  # an exact repeat adds nothing
            continue
        group = Rule(rule.key, EQ, ())  # one "=" rule per key: its values are OR-ed
        earlier = rules.get(group, group).values
        rules[group] = Rule(rule.key, EQ, _unique((*earlier, *rule.values)))
    return MetadataRequirement(tuple(rules.values()))


def metadata_matches(req: MetadataRequirement, metadata: Mapping[str, str]) -> bool:
    """True if the machine's metadata satisfies every rule."""
    return all(rule_matches(rule, metadata) for rule in req.rules)


def failed_rules(req: MetadataRequirement, metadata: Mapping[str, str]) -> tuple[Rule, ...]:
    """The rules this machine's metadata does not satisfy, in rule order."""
    return tuple(rule for rule in req.rules if not rule_matches(rule, metadata))


def rule_matches(rule: Rule, metadata: Mapping[str, str]) -> bool:
    """Match one rule; a missing key satisfies only `!=` and `not in`."""
    actual = metadata.get(rule.key)
    if rule.op in (EQ, IN):
        return actual in rule.values
    if rule.op in (NE, NOT_IN):
        return actual not in rule.values
    number = _number(actual) if actual is not None else None
    return number is not None and _compare(rule.op, number, float(rule.values[0]))


def describe_metadata(req: MetadataRequirement) -> str:
    """`disk=ssd, region=east|west, cores>=4, zone in (a, b)`: the rules in words, in rule order."""
    return ", ".join(describe_rule(rule) for rule in req.rules)


def describe_rule(rule: Rule) -> str:
    """One rule in words: `region=east|west`, `zone!=a`, `cores>=4`, `zone not in (a, b)`."""
    if rule.op in (IN, NOT_IN):
        return f"{rule.key} {rule.op} ({', '.join(rule.values)})"
    return f"{rule.key}{rule.op}{'|'.join(rule.values)}"


def _parse_one(value: str) -> Rule | None:
    found = _IN.fullmatch(value)
    operator = _OPERATOR.search(value)
    if found and (found["rest"].lstrip().startswith("(") or operator is None):
        return _parse_in(value, found)  # without "(", only where fleet would have ignored the value
    if operator is None:
        return None  # fleet: no "=", silently ignored
    if operator.group() == EQ:
        return _parse_plain(value)
    key, rest = value[: operator.start()].strip(), value[operator.end() :].strip()
    return _parse_comparison(value, key, operator.group(), rest)


def _parse_plain(value: str) -> Rule | None:
    """fleet's rule: exactly two non-empty parts around "=", else silently ignored."""
    parts = [p.strip() for p in value.split("=")]
    if len(parts) != 2 or not all(parts):
        return None
    return Rule(parts[0], EQ, (parts[1],))


def _parse_in(value: str, found: re.Match[str]) -> Rule:
    key, op, rest = found["key"].strip(), " ".join(found["op"].split()), found["rest"].strip()
    _require(value, bool(key), "missing key")
    _require(value, rest.startswith("("), f'expected "(" after "{op}"')
    _require(value, rest.endswith(")"), 'missing ")"')
    inner = rest[1:-1]
    _require(value, not any(c in inner for c in "()"), "unexpected parenthesis inside the list")
    _require(value, bool(inner.strip()), "the list is empty")
    items = [item.strip() for item in inner.split(",")]
    _require(value, all(items), "empty value in the list")
    return Rule(key, op, _unique(items))


def _parse_comparison(value: str, key: str, op: str, rest: str) -> Rule:
    _require(value, bool(key), "missing key")
    _require(value, bool(rest), "missing value")
    if op == NE:
        _require(value, "=" not in rest, f'"{rest}" contains "="')
    else:
        _require(value, _number(rest) is not None, f'"{rest}" is not a number')
    return Rule(key, op, (rest,))


def _require(value: str, condition: bool, problem: str) -> None:
    if not condition:
        raise InvalidRequirements(f'invalid MachineMetadata "{value}": {problem}')


def _number(text: str) -> float | None:
    text = text.strip()
    return float(text) if _NUMBER.fullmatch(text) else None


def _compare(op: str, actual: float, wanted: float) -> bool:
    if op == "<":
        return actual < wanted
    if op == "<=":
        return actual <= wanted
    if op == ">":
        return actual > wanted
    return actual >= wanted


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
