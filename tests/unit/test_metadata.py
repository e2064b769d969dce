"""MachineMetadata operators: fleet-compatible plain rules, the extensions, errors and messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetd.errors import InvalidRequirements
from fleetd.model.metadata import (
    MetadataRequirement,
    Rule,
    describe_metadata,
    describe_rule,
    failed_rules,
    metadata_matches,
    parse_metadata,
)


def rules(*values: str) -> tuple[Rule, ...]:
    return parse_metadata(values).rules


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["region=east"], (Rule("region", "=", ("east",)),)),
        ([" region = east "], (Rule("region", "=", ("east",)),)),
        (["region=east", "region=west"], (Rule("region", "=", ("east", "west")),)),
        (["region=east", "region=east"], (Rule("region", "=", ("east",)),)),
        (
            ["region=east", "disk=ssd", "region=west"],
            (Rule("region", "=", ("east", "west")), Rule("disk", "=", ("ssd",))),
        ),
        (["Region=east", "region=east"], (Rule("Region", "=", ("east",)), Rule("region", "=", ("east",)))),
        (["a!b=c"], (Rule("a!b", "=", ("c",)),)),
        (["a=b<c"], (Rule("a", "=", ("b<c",)),)),
        (["k=>v"], (Rule("k", "=", (">v",)),)),
        (["in=x"], (Rule("in", "=", ("x",)),)),
        (["x in=y"], (Rule("x in", "=", ("y",)),)),
        (["zone in a=b"], (Rule("zone in a", "=", ("b",)),)),
        (["note=runs in (docker)"], (Rule("note", "=", ("runs in (docker)",)),)),
    ],
)
def test_plain_rules_keep_fleet_grouping(values: list[str], expected: tuple[Rule, ...]) -> None:
    assert rules(*values) == expected


@pytest.mark.parametrize("value", ["a=b=c", "k=", "=v", "=", "novalue", "", "   ", "k==v", " = v"])
def test_malformed_plain_values_are_silently_ignored(value: str) -> None:
    assert rules(value, "ok=1") == (Rule("ok", "=", ("1",)),)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("zone!=a", Rule("zone", "!=", ("a",))),
        ("zone != a", Rule("zone", "!=", ("a",))),
        ("a!=b", Rule("a", "!=", ("b",))),
        ("zone in (a, b)", Rule("zone", "in", ("a", "b"))),
        ("zone in(a,b)", Rule("zone", "in", ("a", "b"))),
        ("  zone   in  ( a ,b )  ", Rule("zone", "in", ("a", "b"))),
        ("zone in (a, b, a)", Rule("zone", "in", ("a", "b"))),
        ("zone in (b, a)", Rule("zone", "in", ("b", "a"))),
        ("zone not in (a, b)", Rule("zone", "not in", ("a", "b"))),
        ("zone  not\tin(a)", Rule("zone", "not in", ("a",))),
        ("cores<4", Rule("cores", "<", ("4",))),
        ("cores<=4", Rule("cores", "<=", ("4",))),
        ("cores>4", Rule("cores", ">", ("4",))),
        ("cores>=4", Rule("cores", ">=", ("4",))),
        ("cores >= 4", Rule("cores", ">=", ("4",))),
        ("temp>-3.5", Rule("temp", ">", ("-3.5",))),
        ("load<=.5", Rule("load", "<=", (".5",))),
        ("a<=b0", None),
    ],
)
def test_operator_rules(value: str, expected: Rule | None) -> None:
    if expected is None:
        with pytest.raises(InvalidRequirements):
            parse_metadata([value])
    else:
        assert rules(value) == (expected,)


def test_rules_keep_first_appearance_order_and_drop_exact_repeats() -> None:
    parsed = rules("cores>=4", "region=east", "zone in (a)", "region=west", "cores>=4", "cores>=8")
    assert parsed == (
        Rule("cores", ">=", ("4",)),
        Rule("region", "=", ("east", "west")),
        Rule("zone", "in", ("a",)),
        Rule("cores", ">=", ("8",)),
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("cores>=abc", 'invalid MachineMetadata "cores>=abc": "abc" is not a number'),
        ("cores<inf", 'invalid MachineMetadata "cores<inf": "inf" is not a number'),
        ("cores>1e3", 'invalid MachineMetadata "cores>1e3": "1e3" is not a number'),
        ("cores<>4", 'invalid MachineMetadata "cores<>4": ">4" is not a number'),
        ("cores>=", 'invalid MachineMetadata "cores>=": missing value'),
        (">=4", 'invalid MachineMetadata ">=4": missing key'),
        ("!=x", 'invalid MachineMetadata "!=x": missing key'),
        ("zone!=", 'invalid MachineMetadata "zone!=": missing value'),
        ("a!=b=c", 'invalid MachineMetadata "a!=b=c": "b=c" contains "="'),
        ("zone in (a", 'invalid MachineMetadata "zone in (a": missing ")"'),
        ("zone in ()", 'invalid MachineMetadata "zone in ()": the list is empty'),
        ("key in ( )", 'invalid MachineMetadata "key in ( )": the list is empty'),
        ("zone in (a,,b)", 'invalid MachineMetadata "zone in (a,,b)": empty value in the list'),
        ("zone in (a,)", 'invalid MachineMetadata "zone in (a,)": empty value in the list'),
        ("zone in ((a))", 'invalid MachineMetadata "zone in ((a))": unexpected parenthesis inside the list'),
        ("in (a)", 'invalid MachineMetadata "in (a)": missing key'),
        ("zone in a", 'invalid MachineMetadata "zone in a": expected "(" after "in"'),
        ("zone not in a", 'invalid MachineMetadata "zone not in a": expected "(" after "not in"'),
        ("zone in (a) = b", 'invalid MachineMetadata "zone in (a) = b": missing ")"'),
    ],
)
def test_malformed_operator_expressions_raise(value: str, message: str) -> None:
    with pytest.raises(InvalidRequirements) as info:
        parse_metadata(["ok=1", value])
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("values", "machine", "matches"),
    [
        ([], {}, True),
        (["region=east"], {"region": "east"}, True),
        (["region=east"], {"region": "East"}, False),
        (["region=east"], {}, False),
        (["region=east", "region=west"], {"region": "west"}, True),
        (["region=east", "disk=ssd"], {"region": "east"}, False),
        (["region=east", "disk=ssd"], {"region": "east", "disk": "ssd"}, True),
        (["zone!=a"], {"zone": "b"}, True),
        (["zone!=a"], {"zone": "a"}, False),
        (["zone!=a"], {}, True),
        (["zone in (a, b)"], {"zone": "b"}, True),
        (["zone in (a, b)"], {"zone": "c"}, False),
        (["zone in (a, b)"], {}, False),
        (["zone not in (a, b)"], {"zone": "c"}, True),
        (["zone not in (a, b)"], {"zone": "a"}, False),
        (["zone not in (a, b)"], {}, True),
        (["cores<4"], {"cores": "3"}, True),
        (["cores<4"], {"cores": "4"}, False),
        (["cores<=4"], {"cores": "4"}, True),
        (["cores<=4"], {"cores": "4.5"}, False),
        (["cores>4"], {"cores": "4"}, False),
        (["cores>4"], {"cores": "4.01"}, True),
        (["cores>=4"], {"cores": "4"}, True),
        (["cores>=4"], {"cores": "3.99"}, False),
        (["cores>=4"], {"cores": "16"}, True),
        (["cores>=4"], {"cores": " 8 "}, True),
        (["cores>=4"], {}, False),
        (["cores>=4"], {"cores": "many"}, False),
        (["cores<4"], {"cores": "nan"}, False),
        (["cores>=4"], {"cores": "inf"}, False),
        (["cores<4"], {"cores": ""}, False),
        (["temp>-3.5"], {"temp": "-3"}, True),
        (["temp>-3.5"], {"temp": "-4"}, False),
        (["cores>=4", "cores<8"], {"cores": "6"}, True),
        (["cores>=4", "cores<8"], {"cores": "8"}, False),
        (["region=east", "cores>=4", "zone not in (x)"], {"region": "east", "cores": "4", "zone": "y"}, True),
        (
            ["region=east", "cores>=4", "zone not in (x)"],
            {"region": "east", "cores": "4", "zone": "x"},
            False,
        ),
        (["a=b=c"], {}, True),
    ],
)
def test_metadata_matches(values: list[str], machine: dict[str, str], matches: bool) -> None:
    assert metadata_matches(parse_metadata(values), machine) is matches


def test_failed_rules_lists_only_the_failing_rules_in_order() -> None:
    req = parse_metadata(["region=east", "cores>=4", "zone!=a", "disk in (ssd)"])
    assert failed_rules(req, {"region": "west", "cores": "8", "zone": "a"}) == (
        Rule("region", "=", ("east",)),
        Rule("zone", "!=", ("a",)),
        Rule("disk", "in", ("ssd",)),
    )
    assert failed_rules(req, {"region": "east", "cores": "8", "disk": "ssd"}) == ()


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (Rule("region", "=", ("east",)), "region=east"),
        (Rule("region", "=", ("east", "west")), "region=east|west"),
        (Rule("zone", "!=", ("a",)), "zone!=a"),
        (Rule("zone", "in", ("a", "b")), "zone in (a, b)"),
        (Rule("zone", "not in", ("a",)), "zone not in (a)"),
        (Rule("cores", "<", ("4",)), "cores<4"),
        (Rule("cores", "<=", ("4",)), "cores<=4"),
        (Rule("cores", ">", ("-1.5",)), "cores>-1.5"),
        (Rule("cores", ">=", ("4",)), "cores>=4"),
    ],
)
def test_describe_rule(rule: Rule, text: str) -> None:
    assert describe_rule(rule) == text


def test_describe_metadata_in_rule_order() -> None:
    req = parse_metadata(["disk=ssd", "region=east", "cores >= 4", "region=west", "zone in (a,b)"])
    assert describe_metadata(req) == "disk=ssd, region=east|west, cores>=4, zone in (a, b)"
    assert describe_metadata(MetadataRequirement()) == ""


def test_requirement_truthiness() -> None:
    assert not MetadataRequirement()
    assert not parse_metadata(["a=b=c", "novalue"])
    assert parse_metadata(["zone!=a"])


@pytest.mark.parametrize("value", ["region=east", "zone!=a", "zone in (a)", "zone not in (a)", "cores>=4"])
def test_described_rules_parse_back_to_themselves(value: str) -> None:
    parsed = rules(value)
    assert rules(describe_rule(parsed[0])) == parsed


_word = st.text(st.sampled_from("abcxyz019-_."), min_size=1, max_size=6)


@given(st.lists(_word, min_size=1, max_size=5), st.dictionaries(st.sampled_from(["zone", "other"]), _word))
def test_in_is_the_grouped_plain_rule(values: list[str], machine: dict[str, str]) -> None:
    listed = parse_metadata([f"zone in ({', '.join(values)})"])
    grouped = parse_metadata([f"zone={v}" for v in values])
    assert listed.rules[0].values == grouped.rules[0].values
    assert metadata_matches(listed, machine) is metadata_matches(grouped, machine)


@given(st.lists(_word, min_size=1, max_size=5), st.dictionaries(st.sampled_from(["zone", "other"]), _word))
def test_not_in_is_the_negation_of_in(values: list[str], machine: dict[str, str]) -> None:
    listed = ", ".join(values)
    inside = metadata_matches(parse_metadata([f"zone in ({listed})"]), machine)
    assert metadata_matches(parse_metadata([f"zone not in ({listed})"]), machine) is not inside


@given(st.integers(-1000, 1000), st.integers(-1000, 1000))
def test_numeric_operators_agree_with_python(wanted: int, actual: int) -> None:
    machine = {"n": str(actual)}
    for op, expected in (
        ("<", actual < wanted),
        ("<=", actual <= wanted),
        (">", actual > wanted),
        (">=", actual >= wanted),
    ):
        assert metadata_matches(parse_metadata([f"n{op}{wanted}"]), machine) is expected
