"""[X-Fleet] requirements: fleet's parsing, validation messages and matching predicates."""

from __future__ import annotations

import pytest

from fleetd.errors import InvalidRequirements
from fleetd.model.metadata import parse_metadata
from fleetd.model.requirements import (
    Requirements,
    conflicts,
    glob_match,
    machine_id_matches,
    metadata_matches,
    parse_requirements,
    replaces,
    unknown_options,
    validate_requirements,
)
from fleetd.model.unitfile import UnitFile


def req_of(xfleet: str, name: str = "web@1.service") -> Requirements:
    return parse_requirements(name, UnitFile.parse("[Unit]\nDescription=x\n[X-Fleet]\n" + xfleet))


def test_no_xfleet_section_means_no_requirements() -> None:
    assert parse_requirements("a.service", UnitFile.parse("[Unit]\nDescription=x\n")) == (Requirements())


@pytest.mark.parametrize(
    ("xfleet", "machine_id"),
    [
        ("MachineID=abc\n", "abc"),
        ("X-ConditionMachineID=abc\n", "abc"),
        ("X-ConditionMachineBootID=abc\n", "abc"),
        ("MachineID=first\nMachineID=second\n", "first"),
        ("X-ConditionMachineID=old\nMachineID=new\n", "new"),  # the modern key wins wherever it is
    ],
)
def test_machine_id_and_aliases_first_wins(xfleet: str, machine_id: str) -> None:
    assert req_of(xfleet).machine_id == machine_id


@pytest.mark.parametrize(
    ("xfleet", "peers"),
    [
        ("MachineOf=db.service\n", ("db.service",)),
        ("X-ConditionMachineOf=db.service\n", ("db.service",)),
        ("MachineOf=a.service\nMachineOf=b.service\n", ("a.service", "b.service")),
        ('MachineOf="a.service" "b.service"\n', ("a.service", "b.service")),
        ("MachineOf=%p-db@%i.service\n", ("web-db@1.service",)),
    ],
)
def test_machine_of(xfleet: str, peers: tuple[str, ...]) -> None:
    assert req_of(xfleet).machine_of == peers


@pytest.mark.parametrize(
    ("xfleet", "metadata"),
    [
        ("MachineMetadata=region=east\n", {"region": ("east",)}),
        ("X-ConditionMachineMetadata=region=east\n", {"region": ("east",)}),
        (
            'MachineMetadata="region=us-east-1" "diskType=SSD"\nMachineMetadata=region=us-west-1\n',
            {"region": ("us-east-1", "us-west-1"), "diskType": ("SSD",)},
        ),
        ("MachineMetadata=a=b=c\n", {}),
        ("MachineMetadata=k=\n", {}),
        ("MachineMetadata==v\n", {}),
        ("MachineMetadata=novalue\n", {}),
        ('MachineMetadata="ok=1" "bad" "k="\n', {"ok": ("1",)}),
        ("MachineMetadata=unit=%n\n", {"unit": ("web@1.service",)}),
    ],
)
def test_machine_metadata(xfleet: str, metadata: dict[str, tuple[str, ...]]) -> None:
    rules = req_of(xfleet).metadata.rules
    assert {r.key: r.values for r in rules} == metadata and all(r.op == "=" for r in rules)


@pytest.mark.parametrize(
    ("xfleet", "globs"),
    [
        ("Conflicts=web@*.service\n", ("web@*.service",)),
        ("X-Conflicts=web@*.service\n", ("web@*.service",)),
        ("Conflicts=a.service b.service\n", ("a.service", "b.service")),
        ('Conflicts="a.service" "b.service"\nConflicts=c.service\n', ("a.service", "b.service", "c.service")),
        ("Conflicts=%p@*.service\n", ("web@*.service",)),
    ],
)
def test_conflicts(xfleet: str, globs: tuple[str, ...]) -> None:
    assert req_of(xfleet).conflicts == globs


@pytest.mark.parametrize(
    ("xfleet", "is_global"),
    [
        ("Global=true\n", True),
        ("Global=TRUE\n", True),
        ("Global=yes\n", True),
        ("Global=1\n", True),
        ("Global=on\n", True),
        ("Global=t\n", True),
        ("Global=false\n", False),
        ("Global=truthy\n", False),
        ("Global=\n", False),
        ("Global=true\nGlobal=false\n", False),
        ("Global=false\nGlobal=true\n", True),
        ("", False),
    ],
)
def test_global_last_value_wins(xfleet: str, is_global: bool) -> None:
    assert req_of(xfleet).is_global is is_global


def test_replaces_and_specifiers() -> None:
    req = req_of('Replaces="old-%i.service" "%N.legacy.service"\n', name="web@7.service")
    assert req.replaces == ("old-7.service", "web@7.legacy.service")


def test_specifiers_only_apply_inside_xfleet_and_keep_unknown_ones() -> None:
    req = req_of("MachineOf=%n-%x-%%\n", name="db.service")
    assert req.machine_of == ("db.service-%x-%%",)


def test_unknown_options_are_reported_once() -> None:
    unit = UnitFile.parse("[X-Fleet]\nMachineId=x\nConflicts=a\nMachineId=y\nFoo=1\n[Unit]\nBar=1\n")
    assert unknown_options(unit) == ("MachineId", "Foo")


@pytest.mark.parametrize(
    ("xfleet", "message"),
    [
        ("MachineID=a\nMachineOf=b.service\n", "MachineID cannot be used with Peers"),
        ("MachineID=a\nConflicts=b.service\n", "MachineID cannot be used with Conflicts"),
        ("MachineID=a\nGlobal=true\n", "MachineID cannot be used with Global"),
        ("MachineID=a\nReplaces=b.service\n", "MachineID cannot be used with Replaces"),
        ("Global=true\nMachineOf=b.service\n", "Global cannot be used with Peers"),
        ("Global=true\nReplaces=b.service\n", "Global cannot be used with Replaces"),
        ("Conflicts=a.service\nReplaces=b.service\n", "Conflicts cannot be used with Replaces"),
        (
            "MachineOf=db.service\nConflicts=d*.service\n",
            'unresolvable requirements: peer "db.service" matches conflict "d*.service"',
        ),
        (
            "MachineOf=db.service\nReplaces=db.service\n",
            'unresolvable requirements: peer "db.service" matches replace "db.service"',
        ),
    ],
)
def test_validation_uses_fleets_messages(xfleet: str, message: str) -> None:
    with pytest.raises(InvalidRequirements) as info:
        validate_requirements(req_of(xfleet))
    assert str(info.value) == message


@pytest.mark.parametrize(
    "xfleet",
    [
        "",
        "MachineID=a\nMachineMetadata=r=e\n",
        "Global=true\nMachineMetadata=r=e\nConflicts=x.service\n",
        "MachineOf=db.service\nConflicts=web@*.service\n",
        "Replaces=old.service\nMachineMetadata=r=e\n",
        "Global=false\nMachineID=a\n",
    ],
)
def test_valid_combinations_pass(xfleet: str) -> None:
    validate_requirements(req_of(xfleet))


@pytest.mark.parametrize(
    ("metadata", "machine", "ok"),
    [
        ({}, {}, True),
        ({"region": ("east",)}, {"region": "east"}, True),
        ({"region": ("east",)}, {"region": "west"}, False),
        ({"region": ("east",)}, {}, False),
        ({"region": ("east", "west")}, {"region": "west"}, True),
        ({"region": ("east",), "disk": ("ssd",)}, {"region": "east", "disk": "ssd"}, True),
        ({"region": ("east",), "disk": ("ssd",)}, {"region": "east", "disk": "hdd"}, False),
        ({"region": ("east",)}, {"region": "East"}, False),
    ],
)
def test_metadata_matches_or_within_and_across(
    metadata: dict[str, tuple[str, ...]], machine: dict[str, str], ok: bool
) -> None:
    rules = parse_metadata(f"{k}={v}" for k, vs in metadata.items() for v in vs)
    assert metadata_matches(Requirements(metadata=rules), machine) is ok


FULL = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"


@pytest.mark.parametrize(
    ("wanted", "ok"),
    [(None, True), (FULL, True), (FULL[:8], True), (FULL[:7], False), ("ffffffff", False)],
)
def test_machine_id_matches_full_or_short(wanted: str | None, ok: bool) -> None:
    assert machine_id_matches(Requirements(machine_id=wanted), FULL) is ok


@pytest.mark.parametrize(
    ("name_a", "globs_a", "name_b", "globs_b", "expected"),
    [
        ("web@1.service", ("web@*.service",), "web@2.service", (), True),
        ("web@1.service", (), "web@2.service", ("web@*.service",), True),  # symmetric
        ("web@1.service", ("web@*.service",), "web@1.service", ("web@*.service",), False),  # self
        ("web@1.service", ("db.service",), "cache.service", (), False),
        ("a.service", ("?.service",), "b.service", (), True),
        ("a.service", ("[ab].service",), "b.service", (), True),
        ("a.service", ("[^ab].service",), "b.service", (), False),
        ("a.service", ("[a-c].service",), "c.service", (), True),
        ("a.service", ("[", "[]x]"), "b.service", (), False),  # bad patterns never match
    ],
)
def test_conflicts_both_directions_never_self(
    name_a: str, globs_a: tuple[str, ...], name_b: str, globs_b: tuple[str, ...], expected: bool
) -> None:
    req_a, req_b = Requirements(conflicts=globs_a), Requirements(conflicts=globs_b)
    assert conflicts(name_a, req_a, name_b, req_b) is expected
    assert conflicts(name_b, req_b, name_a, req_a) is expected


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", "anything.service", True),
        ("*.service", "a.socket", False),
        ("web@*", "web@1.service", True),
        ("web\\*", "web*", True),
        ("web\\*", "webx", False),
        ("a.service", "a.service", True),
        ("a.service", "aXservice", False),  # "." is literal
        ("web@?.service", "web@10.service", False),
        ("[!a].service", "!.service", True),  # Go has no "!" negation
        ("[a-]", "a", False),
        ("x\\", "x", False),
    ],
)
def test_glob_match_like_go_path_match(pattern: str, name: str, expected: bool) -> None:
    assert glob_match(pattern, name) is expected


@pytest.mark.parametrize(
    ("xfleet", "name", "field", "value"),
    [
        ("Instances=3\n", "web@.service", "instances", 3),
        ("Instances=3\n", "web@1.service", "instances", 3),  # instances carry the template's copy
        ("Policy=Spread\n", "a.service", "policy", "spread"),
        ("Policy=binpack\nPolicy=spread\n", "a.service", "policy", "spread"),
        ("SpreadBy=zone\n", "web@1.service", "spread_by", "zone"),
        ("", "a.service", "instances", None),
    ],
)
def test_extension_options(xfleet: str, name: str, field: str, value: object) -> None:
    assert getattr(req_of(xfleet, name), field) == value


def test_resources_from_xfleet_override_and_systemd_limits() -> None:
    text = "[Service]\nCPUQuota=150%\nMemoryMax=1G\n[X-Fleet]\nMemory=2G\n"
    req = parse_requirements("a.service", UnitFile.parse(text))
    assert (req.resources.cpu, req.resources.memory) == (1500, 2 << 30)


@pytest.mark.parametrize(
    ("xfleet", "name", "message"),
    [
        ("Instances=three\n", "web@.service", 'Instances must be a whole number from 1 to 1000, not "three"'),
        ("Instances=1001\n", "web@.service", "Instances must be a whole number from 1 to 1000"),
        ("Instances=\u00b3\n", "web@.service", "Instances must be a whole number from 1 to 1000"),
        ("Instances=2\n", "a.service", "Instances can only be used in a template unit"),
        ("Policy=fast\n", "a.service", 'Policy must be one of binpack, spread, not "fast"'),
        ("CPU=lots\n", "a.service", 'invalid CPU "lots"'),
        ("MachineMetadata=zone in (a\n", "a.service", "invalid MachineMetadata"),
    ],
)
def test_bad_extension_values_are_refused(xfleet: str, name: str, message: str) -> None:
    with pytest.raises(InvalidRequirements, match=message.replace("(", r"\(")):
        req_of(xfleet, name)


def test_global_cannot_have_instances() -> None:
    with pytest.raises(InvalidRequirements, match="Global cannot be used with Instances"):
        validate_requirements(req_of("Global=true\nInstances=2\n", "web@.service"))


@pytest.mark.parametrize(
    ("a_globs", "b_globs", "expected"),
    [
        (("b.service",), (), True),
        (("b.*",), (), True),
        (("c.service",), (), False),
        (("b.service",), ("a.service",), False),  # circular: ignored
        ((), (), False),
    ],
)
def test_replaces_is_one_way_and_circular_is_ignored(a_globs, b_globs, expected) -> None:
    a, b = Requirements(replaces=a_globs), Requirements(replaces=b_globs)
    assert replaces("a.service", a, "b.service", b) is expected
    assert replaces("a.service", a, "a.service", a) is False


@pytest.mark.parametrize(("value", "expected"), [
    ("true", True), ("yes", True), ("1", True), ("On", True), ("false", False), ("no", False), ("0", False),
])
def test_at_most_once_is_a_boolean(value: str, expected: bool) -> None:
    assert req_of(f"AtMostOnce={value}").at_most_once is expected


def test_at_most_once_rejects_other_values_and_global() -> None:
    with pytest.raises(InvalidRequirements, match='AtMostOnce must be true or false, not "maybe"'):
        req_of("AtMostOnce=maybe")
    with pytest.raises(InvalidRequirements, match="Global cannot be used with AtMostOnce"):
        validate_requirements(req_of("Global=true\nAtMostOnce=true", name="g.service"))
