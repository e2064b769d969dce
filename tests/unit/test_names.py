"""Unit names: fleetctl's argument normalization, the API's validation, template parsing."""

from __future__ import annotations

import pytest

from fleetd.errors import InvalidUnitName
from fleetd.model.names import normalize_name, parse_name, validate_name


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("hello", "hello.service"),
        ("hello.service", "hello.service"),
        ("units/hello.service", "hello.service"),
        ("/abs/path/web@1.service", "web@1.service"),
        ("db.socket", "db.socket"),
        ("backup.timer", "backup.timer"),
        ("watch.path", "watch.path"),
        ("dev-sda.device", "dev-sda.device"),
        ("data.mount", "data.mount"),
        ("data.automount", "data.automount"),
        ("app.target", "app.target.service"),  # .target is not in fleetctl's list
        ("my.app", "my.app.service"),
        ("web@", "web@.service"),
    ],
)
def test_normalize_name(arg: str, expected: str) -> None:
    assert normalize_name(arg) == expected


@pytest.mark.parametrize(
    "name",
    [
        "hello.service",
        "web@.service",
        "web@1.service",
        "a.b.c.service",
        "x:y_z-1.socket",
        "app.target",
        "app.slice",
        "sys-foo.swap",
        "a" * 247 + ".service",  # exactly 255 bytes, systemd's limit
        "a-.service",
        "web@-1.service",  # "-" only refused first: an instance may start with it
        "web@a@b.service",  # systemd allows "@" inside an instance
        "web@.b.service",
        "x.y.mount",
        "run-user.automount",
        "dev-sda.device",
        "init.scope",
        "backup.timer",
        "watch.path",
        "web@.socket",
        "web@.target",
        "web@.timer",
        "web@.path",
    ],
)
def test_valid_names_pass(name: str) -> None:
    validate_name(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "unit name cannot be empty"),
        ("a" * 248 + ".service", "unit name exceeds maximum length (255 bytes)"),
        ("é" * 124 + ".service", "unit name exceeds maximum length (255 bytes)"),  # bytes count
        (".service", 'unit name has no prefix before ".service"'),
        (".timer", 'unit name has no prefix before ".timer"'),
        (".hidden.service", 'unit name cannot start in "."'),
        ("-foo.service", 'unit name cannot start in "-"'),
        ("--help.service", 'unit name cannot start in "-"'),
        ("-.slice", 'unit name cannot start in "-"'),  # systemd's root slice: not fleet's to run
        ("@.service", 'unit name cannot start in "@"'),
        ("a.busname", 'invalid unit type: "busname"'),  # fleet took it; systemd >= 230 does not
        ("a.snapshot", 'invalid unit type: "snapshot"'),
        ("a.Service", 'invalid unit type: "Service"'),
        ("a.service ", 'invalid unit type: "service "'),
        ("web@1.slice", 'invalid unit type for template: "slice"'),
        ("web@.scope", 'invalid unit type for template: "scope"'),
        ("web@1.swap", 'invalid unit type for template: "swap"'),
        ("web@.automount", 'invalid unit type for template: "automount"'),
        ("dev-disk-by\\x2dlabel.device", "invalid character '\\\\' in unit name"),
        ("a\tb.service", "invalid character '\\u0009' in unit name"),
        ("a\x00b.service", "invalid character '\\u0000' in unit name"),
        ("a;rm.service", "invalid character ';' in unit name"),
        ("a$(x).service", "invalid character '$' in unit name"),
        ("a*.service", "invalid character '*' in unit name"),
        ("hello", 'unit name must contain "."'),
        ("hello.", 'unit name cannot end in "."'),
        ("hello.foo", 'invalid unit type: "foo"'),
        ("web@1.mount", 'invalid unit type for template: "mount"'),
        ("web@.device", 'invalid unit type for template: "device"'),
        ("he llo.service", "invalid character ' ' in unit name"),
        ("hello%.service", "invalid character '%' in unit name"),
        ("héllo.service", "invalid character 'é' in unit name"),
        ("@foo.service", 'unit name cannot start in "@"'),
        ("a/b.service", 'unit name cannot contain "/"'),
        ("../etc.service", 'unit name cannot contain "/"'),
        ("a..service", 'unit name cannot contain ".."'),
    ],
)
def test_invalid_names_are_refused_with_fleets_message(name: str, message: str) -> None:
    with pytest.raises(InvalidUnitName) as info:
        validate_name(name)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("name", "prefix", "instance", "suffix", "template", "is_template", "is_instance"),
    [
        ("web@.service", "web", "", ".service", "web@.service", True, False),
        ("web@1.service", "web", "1", ".service", "web@.service", False, True),
        ("web@a.b.socket", "web", "a.b", ".socket", "web@.socket", False, True),
        ("web@a@b.service", "web", "a@b", ".service", "web@.service", False, True),
        ("hello.service", "hello", "", ".service", "", False, False),
        ("a.b.timer", "a.b", "", ".timer", "", False, False),
    ],
)
def test_parse_name(
    name: str,
    prefix: str,
    instance: str,
    suffix: str,
    template: str,
    is_template: bool,
    is_instance: bool,
) -> None:
    info = parse_name(name)
    assert (info.full, info.prefix, info.instance, info.suffix) == (name, prefix, instance, suffix)
    assert info.template == template
    assert (info.is_template, info.is_instance) == (is_template, is_instance)


def test_stem_is_name_without_suffix() -> None:
    assert parse_name("web@1.service").stem == "web@1"
