"""Resources: quantity parsing and formatting, arithmetic, and a unit's demand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetd.errors import InvalidRequirements
from fleetd.model.resources import (
    Resources,
    describe,
    format_cpu,
    format_size,
    parse_cpu,
    parse_size,
    unit_demand,
)
from fleetd.model.unitfile import UnitFile

K, M, G, T = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("2", 2000),
        ("1.5", 1500),
        ("0.25", 250),
        (".5", 500),
        ("1.", 1000),
        ("0", 0),
        ("500m", 500),
        ("1500m", 1500),
        ("150%", 1500),
        ("50%", 500),
        ("12.5%", 125),
        (" 2 ", 2000),
        ("0.0005", 1),
        ("0.0015", 2),
    ],
)
def test_parse_cpu(text: str, millis: int) -> None:
    assert parse_cpu(text) == millis


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-1", "must not be negative"),
        ("-50%", "must not be negative"),
        ("abc", "expected cores"),
        ("", "expected cores"),
        ("500M", "expected cores"),
        ("1e3", "expected cores"),
        ("inf", "expected cores"),
        ("nan", "expected cores"),
        ("2 cores", "expected cores"),
        ("%", "expected cores"),
    ],
)
def test_parse_cpu_rejects(text: str, problem: str) -> None:
    with pytest.raises(InvalidRequirements) as info:
        parse_cpu(text)
    assert str(info.value).startswith(f'invalid CPU "{text}": {problem}')


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("100", 100),
        ("100B", 100),
        ("1K", K),
        ("512M", 512 * M),
        ("2G", 2 * G),
        ("1.5G", 3 * G // 2),
        ("1.5", 1),
        ("1T", T),
        ("1P", 1024 * T),
        ("1E", 1024**2 * T),
        (".5K", 512),
        (" 2G ", 2 * G),
        ("1.0000001K", K),
        ("infinity", 0),
        ("50%", 0),
        ("12.5%", 0),
        ("500‰", 0),
        ("5000‱", 0),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["lots", "", "1GB", "1g", "1Gi", "1 G", "-1G", "-50%", "%", "1e9", "Infinity", "G"]
)
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InvalidRequirements, match=f'^invalid Memory "{text}": '):
        parse_size(text)


def test_parse_errors_name_what_was_parsed() -> None:
    with pytest.raises(InvalidRequirements, match='^invalid MemoryMax "-1": must not be negative$'):
        parse_size("-1", "MemoryMax")
    with pytest.raises(InvalidRequirements, match='^invalid CPUQuota "x%": '):
        parse_cpu("x%", "CPUQuota")


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (100, "100B"),
        (1023, "1023B"),
        (K, "1K"),
        (1536, "1.5K"),
        (512 * M, "512M"),
        (2 * G, "2G"),
        (1610612736, "1.5G"),
        (G + G // 10, "1.1G"),
        (M - 1, "1M"),
        (M - 60, "1023.9K"),
        (3 * T, "3T"),
        (1024**6, "1E"),
        (1024**7, "1024E"),
        (-2 * K, "-2K"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize(
    ("millis", "text"),
    [
        (1500, "1.5 CPU"),
        (2000, "2 CPU"),
        (250, "0.25 CPU"),
        (1, "0.001 CPU"),
        (0, "0 CPU"),
        (10000, "10 CPU"),
    ],
)
def test_format_cpu(millis: int, text: str) -> None:
    assert format_cpu(millis) == text


@pytest.mark.parametrize(
    ("resources", "text"),
    [
        (Resources(1500, 2 * G), "1.5 CPU, 2G memory"),
        (Resources(cpu=250), "0.25 CPU"),
        (Resources(memory=512 * M), "512M memory"),
        (Resources(), "nothing"),
    ],
)
def test_describe(resources: Resources, text: str) -> None:
    assert describe(resources) == text


def test_arithmetic_is_component_wise() -> None:
    assert Resources(1000, 5) + Resources(500, 7) == Resources(1500, 12)
    assert Resources(1000, 5) - Resources(1500, 2) == Resources(-500, 3)
    assert Resources().is_zero
    assert not Resources(cpu=1).is_zero
    assert not Resources(memory=1).is_zero


@pytest.mark.parametrize(
    ("demand", "free", "fits"),
    [
        (Resources(), Resources(), True),
        (Resources(1000, G), Resources(1000, G), True),
        (Resources(1001, G), Resources(1000, G), False),
        (Resources(1000, G + 1), Resources(1000, G), False),
        (Resources(500, 0), Resources(1000, 0), True),
        (Resources(0, 0), Resources(-1, 0), False),
    ],
)
def test_fits_in_every_dimension(demand: Resources, free: Resources, fits: bool) -> None:
    assert demand.fits(free) is fits


def unit(service: str) -> UnitFile:
    return UnitFile.parse("[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n" + service)


@pytest.mark.parametrize(
    ("service", "cpu", "memory", "expected"),
    [
        ("", None, None, Resources()),
        ("CPUQuota=150%\nMemoryMax=2G\n", None, None, Resources(1500, 2 * G)),
        ("CPUQuota=150%\nMemoryMax=2G\n", "500m", "1G", Resources(500, G)),
        ("CPUQuota=150%\nMemoryMax=2G\n", "2", None, Resources(2000, 2 * G)),
        ("CPUQuota=150%\nMemoryMax=2G\n", None, "512M", Resources(1500, 512 * M)),
        ("CPUQuota=150%\nMemoryMax=2G\n", "", "", Resources()),
        ("CPUQuota=bad\nMemoryMax=bad\n", "1", "1G", Resources(1000, G)),
        ("CPUQuota=50%\nCPUQuota=200%\n", None, None, Resources(cpu=2000)),
        ("CPUQuota=50%\nCPUQuota=\n", None, None, Resources()),
        ("CPUQuota=infinity\n", None, None, Resources()),
        ("MemoryMax=1G\nMemoryMax=3G\n", None, None, Resources(memory=3 * G)),
        ("MemoryLimit=1G\n", None, None, Resources(memory=G)),
        ("MemoryHigh=1G\n", None, None, Resources(memory=G)),
        ("MemoryHigh=1G\nMemoryLimit=2G\nMemoryMax=3G\n", None, None, Resources(memory=3 * G)),
        ("MemoryHigh=1G\nMemoryLimit=2G\n", None, None, Resources(memory=2 * G)),
        ("MemoryMax=infinity\nMemoryHigh=1G\n", None, None, Resources()),
        ("MemoryMax=\nMemoryHigh=1G\n", None, None, Resources()),
        ("MemoryMax=50%\n", None, None, Resources()),
    ],
)
def test_unit_demand(service: str, cpu: str | None, memory: str | None, expected: Resources) -> None:
    assert unit_demand(unit(service), cpu, memory) == expected


def test_unit_demand_reads_only_the_service_section() -> None:
    text = "[Unit]\nDescription=x\n[X-Fleet]\nCPUQuota=100%\nMemoryMax=1G\n[Service]\nExecStart=/bin/true\n"
    assert unit_demand(UnitFile.parse(text), None, None) == Resources()


@pytest.mark.parametrize(
    ("service", "cpu", "memory", "message"),
    [
        ("MemoryMax=lots\n", None, None, 'invalid MemoryMax "lots": '),
        ("MemoryLimit=-1\n", None, None, 'invalid MemoryLimit "-1": must not be negative'),
        ("MemoryHigh=1g\n", None, None, 'invalid MemoryHigh "1g": '),
        ("CPUQuota=2\n", None, None, 'invalid CPUQuota "2": expected a percentage such as "150%"'),
        ("CPUQuota=x%\n", None, None, 'invalid CPUQuota "x%": '),
        ("", "lots", None, 'invalid CPU "lots": '),
        ("", None, "lots", 'invalid Memory "lots": '),
    ],
)
def test_unit_demand_errors_name_the_directive(
    service: str, cpu: str | None, memory: str | None, message: str
) -> None:
    with pytest.raises(InvalidRequirements) as info:
        unit_demand(unit(service), cpu, memory)
    assert str(info.value).startswith(message)


@given(st.integers(0, 2**70))
def test_format_size_parses_back_within_five_percent(size: int) -> None:
    assert abs(parse_size(format_size(size)) - size) <= size * 0.05 + 1


@given(st.integers(1, 1023), st.sampled_from([1, K, M, G, T]), st.booleans())
def test_format_size_is_exact_for_whole_and_half_units(n: int, factor: int, half: bool) -> None:
    size = n * factor + (factor // 2 if half else 0)
    assert parse_size(format_size(size)) == size


@given(st.integers(0, 10**9))
def test_format_cpu_parses_back_exactly(millis: int) -> None:
    assert parse_cpu(format_cpu(millis).removesuffix(" CPU")) == millis


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 2**40), st.integers(0, 2**40))
def test_sum_minus_part_is_the_other_part(c1: int, c2: int, m1: int, m2: int) -> None:
    a, b = Resources(c1, m1), Resources(c2, m2)
    assert (a + b) - b == a
    assert a.fits(a + b)
