"""Fuzzing the input parsers: unit files, options, unit names, [X-Fleet] requirements, page tokens.

Whatever text or bytes arrive, the only error is fleetd's InvalidInput; whatever parses comes back
unchanged through the normalized serialization; every valid name round-trips through parse_name.
"""

from __future__ import annotations

import contextlib
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetd.api.handlers import decode_token, encode_token
from fleetd.errors import InvalidInput, InvalidUnitFile, InvalidUnitName
from fleetd.model.names import SUFFIXES, TEMPLATE_SUFFIXES, normalize_name, parse_name, validate_name
from fleetd.model.requirements import parse_requirements, validate_requirements
from fleetd.model.unitfile import UnitFile, UnitOption

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

# unit-file-looking text: mostly INI tokens, sometimes anything at all
TOKENS = st.sampled_from(
    ["[", "]", "=", "\\", "\n", "\r", "\r\n", "#", ";", " ", "\t", "\0", "\x1b", "é",
     "Service", "X-Fleet", "Unit", "ExecStart", "MachineID", "Global", "Conflicts", "true", "a", "%n"]
)
INI_TEXT = st.one_of(st.text(), st.lists(TOKENS, max_size=60).map("".join))
PART = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)


def parse_or_refuse(text: str) -> UnitFile | None:
    try:
        return UnitFile.parse(text)
    except InvalidInput:
        return None


@FUZZ
@given(INI_TEXT)
def test_any_text_parses_or_is_refused_with_invalid_input(text: str) -> None:
    unit = parse_or_refuse(text)
    if unit is not None:
        again = UnitFile.parse(unit.serialize())
        assert again == unit and again.hash == unit.hash


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused(data: bytes) -> None:
    text = data.decode("utf-8", errors="surrogateescape")  # invalid bytes become lone surrogates
    unit = parse_or_refuse(text)
    if not _is_utf8(data):
        assert unit is None


@FUZZ
@given(st.binary(min_size=1, max_size=50).filter(lambda b: not _is_utf8(b)))
def test_bytes_that_are_not_utf8_are_always_refused(data: bytes) -> None:
    text = "[Service]\nExecStart=" + data.decode("utf-8", errors="surrogateescape")
    with pytest.raises(InvalidUnitFile, match="not valid UTF-8|NUL|control character"):
        UnitFile.parse(text)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@FUZZ
@given(st.lists(st.tuples(PART, PART, st.text(max_size=40)), max_size=8))
def test_options_build_a_file_that_parses_back_to_them_or_are_refused(parts) -> None:
    try:
        unit = UnitFile.from_options(UnitOption(*p) for p in parts)
    except InvalidInput:
        return
    assert UnitFile.parse(unit.serialize()) == unit


@FUZZ
@given(INI_TEXT.map(lambda t: "[X-Fleet]\n" + t))
def test_requirements_of_any_file_are_parsed_or_refused(text: str) -> None:
    unit = parse_or_refuse(text)
    if unit is None:
        return
    with contextlib.suppress(InvalidInput):
        validate_requirements(parse_requirements("web@1.service", unit))


# names --------------------------------------------------------------------------------------------

NAME_CHARS = string.ascii_letters + string.digits + ":_-"
STEM = st.text(alphabet=NAME_CHARS, min_size=1, max_size=40).filter(lambda s: s[0] != "-")


@st.composite
def valid_names(draw) -> str:
    prefix = draw(STEM)
    if draw(st.booleans()):
        instance = draw(st.text(alphabet=NAME_CHARS + "@", max_size=20))
        suffix = draw(st.sampled_from(sorted(TEMPLATE_SUFFIXES)))
        return f"{prefix}@{instance}{suffix}"
    return prefix + draw(st.sampled_from(sorted(SUFFIXES)))


@FUZZ
@given(st.one_of(st.text(), st.text(alphabet=NAME_CHARS + "./@%\0", max_size=300)))
def test_any_name_is_valid_or_refused_with_invalid_unit_name(name: str) -> None:
    try:
        validate_name(name)
    except InvalidUnitName as exc:
        assert str(exc)
        return
    assert "/" not in name and ".." not in name and 0 < len(name.encode()) <= 255
    assert name[0] not in "-.@" and "\\" not in name


@FUZZ
@given(valid_names())
def test_valid_names_round_trip(name: str) -> None:
    validate_name(name)
    info = parse_name(name)
    assert info.full == name and info.stem + info.suffix == name
    rebuilt = info.prefix + ("@" + info.instance if info.has_at else "") + info.suffix
    assert rebuilt == name
    if info.is_instance:
        validate_name(info.template)
        assert parse_name(info.template).is_template
    if info.suffix in SUFFIXES:
        assert normalize_name(name) == name == normalize_name("some/dir/" + name)


# page tokens --------------------------------------------------------------------------------------


@FUZZ
@given(st.text(max_size=20))
def test_any_page_token_is_a_page_or_invalid_input(token: str) -> None:
    try:
        page = decode_token(token, 100)
    except InvalidInput:
        return
    assert page >= 1


@FUZZ
@given(st.integers(1, 65535), st.integers(1, 65535))
def test_page_tokens_round_trip(limit: int, page: int) -> None:
    assert decode_token(encode_token(limit, page), limit) == page
