"""Unit files: parsing systemd's INI dialect, normalized serialization, the content hash."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetd.errors import InvalidUnitFile
from fleetd.model.unitfile import UnitFile, UnitOption

HELLO = """\
# a comment
; another comment
[Unit]
Description=Hello World
After=docker.service

[Service]
ExecStart=/bin/bash -c "while true; do echo hi; sleep 1; done"
Environment=A=1
Environment=B=2

[X-Fleet]
Conflicts=hello@*.service
"""


def test_parse_keeps_options_in_order_with_repeats() -> None:
    unit = UnitFile.parse(HELLO)
    assert unit.options[:2] == (
        UnitOption("Unit", "Description", "Hello World"),
        UnitOption("Unit", "After", "docker.service"),
    )
    assert unit.values("Service", "Environment") == ("A=1", "B=2")
    assert unit.value("Service", "Environment") == "B=2"
    assert unit.value("Service", "ExecStart") == ('/bin/bash -c "while true; do echo hi; sleep 1; done"')
    assert unit.value("X-Fleet", "Conflicts") == "hello@*.service"
    assert unit.value("Service", "Missing") is None
    assert unit.description == "Hello World"


@pytest.mark.parametrize(
    ("text", "section", "name", "expected"),
    [
        ("[S]\n  Key  =  spaced value  \n", "S", "Key", "spaced value"),
        ("[S]\nKey=\n", "S", "Key", ""),
        ("[S]\nKey=a=b=c\n", "S", "Key", "a=b=c"),
        ("[S]\r\nK=v\r\n", "S", "K", "v"),
        ("[S]\nK=v # not a comment\n", "S", "K", "v # not a comment"),
    ],
)
def test_parse_values(text: str, section: str, name: str, expected: str) -> None:
    assert UnitFile.parse(text).value(section, name) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[]\n", "line 1: empty section name"),
        ("[Unit]\n=value\n", "line 2: option has no name"),
        ("[Unit]\nA=b\x00c\n", "line 2: unit file contains a NUL byte"),
        ("[Unit]\nA=\\\nb\nbroken\n", "line 4: unexpected newline encountered"),
        ("[Unit]\nA=b\rbroken\n", "line 2: unit file contains control character '\\r'"),  # a lone CR
        ("[Unit]\nA=b\x1bc\n", "line 2: unit file contains control character '\\x1b'"),
        ("[Unit]\n# \x01 in a comment\n", "line 2: unit file contains control character"),
        ("[Unit]\nA=\udcff\n", "line 2: unit file contains text that is not valid UTF-8"),
        ("[" + "S" * 257 + "]\n", "line 1: section name is 257 bytes; the limit is 256"),
        ("[S]\n" + "K" * 257 + "=v\n", "line 2: option name"),
        ("[S]\nK=" + "v" * 65537 + "\n", "line 2: value of 'K' is 65537 bytes; the limit is 65536"),
    ],
)
def test_parse_errors_name_the_line(text: str, fragment: str) -> None:
    with pytest.raises(InvalidUnitFile) as info:
        UnitFile.parse(text)
    assert fragment in str(info.value)


def test_tab_and_long_values_are_accepted() -> None:
    assert UnitFile.parse("[S]\nA=x\ty\n").options == (UnitOption("S", "A", "x\ty"),)
    assert UnitFile.parse("[S]\nK=" + "v" * 65536 + "\n").value("S", "K") == "v" * 65536


def test_size_limit() -> None:
    body = "[Unit]\nDescription=" + "x" * (1024 * 1024) + "\n"
    with pytest.raises(InvalidUnitFile, match="limit is 1048576"):
        UnitFile.parse(body)
    UnitFile.parse("[Unit]\nDescription=" + "x" * 1000 + "\n")


def test_serialize_is_normalized() -> None:
    text = "[B]\nb1=1\n[A]\na=2\n[B]\nb2=3\n[Empty]\n"
    assert UnitFile.parse(text).serialize() == "[B]\nb1=1\nb2=3\n\n[A]\na=2\n"


def test_empty_file_serializes_to_nothing() -> None:
    assert UnitFile.parse("# nothing\n\n[Empty]\n").serialize() == ""


def test_hash_is_sha256_of_normalized_text() -> None:
    unit = UnitFile.parse(HELLO)
    assert unit.hash == hashlib.sha256(unit.serialize().encode()).hexdigest()


def test_formatting_and_comments_do_not_change_the_hash() -> None:
    messy = "\n; header\n[Unit]\n  Description =  Hello World\n# x\nAfter=docker.service\n"
    clean = "[Unit]\nDescription=Hello World\nAfter=docker.service\n"
    assert UnitFile.parse(messy).hash == UnitFile.parse(clean).hash


@pytest.mark.parametrize(
    "other",
    [
        "[Unit]\nDescription=Hello world\n",  # value case
        "[Unit]\ndescription=Hello World\n",  # key case
        "[Service]\nDescription=Hello World\n",  # section
        "[Unit]\nDescription=Hello World\nDescription=Hello World\n",  # repeat
    ],
)
def test_content_changes_change_the_hash(other: str) -> None:
    assert UnitFile.parse(other).hash != UnitFile.parse("[Unit]\nDescription=Hello World\n").hash


def test_from_options_round_trips_and_trims() -> None:
    unit = UnitFile.from_options(
        [UnitOption(" Unit ", " Description ", " Hi "), UnitOption("X-Fleet", "Global", "true")]
    )
    assert unit.options[0] == UnitOption(" Unit ", "Description", "Hi")  # a section is kept as is
    assert UnitFile.parse(unit.serialize()) == unit


@pytest.mark.parametrize(
    "option",
    [
        UnitOption("Unit", "Description", "two\nlines"),
        UnitOption("Unit", "Desc=ription", "x"),
        UnitOption("Unit", "", "x"),
        UnitOption("", "Description", "x"),
        UnitOption("Un]it", "Description", "x"),
        UnitOption("Unit", "#Description", "x"),
        UnitOption("Unit", "Description", "a \\\n\n b"),  # a blank line would end the value
    ],
)
def test_from_options_refuses_unwritable_options(option: UnitOption) -> None:
    with pytest.raises(InvalidUnitFile):
        UnitFile.from_options([option])


_word = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=12)
_options = st.lists(
    st.builds(
        UnitOption,
        st.sampled_from(["Unit", "Service", "X-Fleet", "Install"]),
        st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True),
        _word,
    ),
    max_size=8,
)


@given(_options)
def test_parse_of_serialize_is_identity(options: list[UnitOption]) -> None:
    try:
        unit = UnitFile.from_options(options)
    except InvalidUnitFile:
        return
    reparsed = UnitFile.parse(unit.serialize())
    assert reparsed.serialize() == unit.serialize()
    assert reparsed.hash == unit.hash


@given(_options, st.sampled_from(["   ", "\t"]))
def test_hash_ignores_added_whitespace_and_comments(options: list[UnitOption], pad: str) -> None:
    try:
        unit = UnitFile.from_options(options)
    except InvalidUnitFile:
        return
    padded = "# comment\n\n" + "".join(
        f"[{o.section}]\n{pad}{o.name}{pad}={pad}{o.value}{pad}\n; c\n" for o in unit.options
    )
    assert UnitFile.parse(padded).hash == unit.hash
