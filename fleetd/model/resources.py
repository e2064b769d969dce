"""Resources: what a unit asks for and what a machine offers, in CPU millicores and memory bytes.

Owns the quantity syntax (fleet-style `[X-Fleet] CPU=` / `Memory=` and systemd's `CPUQuota=`,
`MemoryMax=`, `MemoryLimit=`, `MemoryHigh=`), its readable form, and a unit's demand: explicit
`[X-Fleet]` values win over the unit's own systemd limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from fleetd.errors import InvalidRequirements
from fleetd.model.unitfile import UnitFile

SERVICE = "Service"
MEMORY_DIRECTIVES = ("MemoryMax", "MemoryLimit", "MemoryHigh")  # first one present decides
_SIZE_UNITS = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5, "E": 1024**6}
_FORMAT_UNITS = ("K", "M", "G", "T", "P", "E")
_DECIMAL = r"(?:\d+(?:\.\d*)?|\.\d+)"
_CPU = re.compile(rf"(?P<number>{_DECIMAL})(?P<unit>m|%)?")
_SIZE = re.compile(rf"(?P<number>{_DECIMAL})(?P<unit>[BKMGTPE])?")
_RELATIVE = ("%", "‰", "‱")  # a share of the host's memory: no fixed demand


@dataclass(frozen=True, slots=True)
class Resources:
    """CPU in millicores (1000 = one core) and memory in bytes."""

    cpu: int = 0
    memory: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.memory + other.memory)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu - other.cpu, self.memory - other.memory)

    def fits(self, free: Resources) -> bool:
        """True if this demand fits in `free` in every dimension."""
        return self.cpu <= free.cpu and self.memory <= free.memory

    @property
    def is_zero(self) -> bool:
        return self.cpu == 0 and self.memory == 0


def parse_cpu(text: str, what: str = "CPU") -> int:
    """Millicores from `2` (cores), `1.5`, `500m` (millicores) or `150%`; fractions round up."""
    value = text.strip()
    _check_sign(what, text, value)
    found = _CPU.fullmatch(value)
    if found is None:
        raise _invalid(what, text, 'expected cores ("1.5"), millicores ("500m") or a percentage ("150%")')
    scale = {"m": 1, "%": 10, None: 1000}[found["unit"]]
    return int((Decimal(found["number"]) * scale).to_integral_value(rounding=ROUND_CEILING))


def parse_size(text: str, what: str = "Memory") -> int:
    """Bytes from systemd's size syntax: `512M`, `1.5G` (base 1024); `infinity` or `50%` -> 0."""
    value = text.strip()
    if value == "infinity" or (value.endswith(_RELATIVE) and _is_decimal(value[:-1])):
        return 0
    _check_sign(what, text, value)
    found = _SIZE.fullmatch(value)
    if found is None:
        raise _invalid(what, text, 'expected a size such as "512M" or "1.5G" (K, M, G, T, P, E; base 1024)')
    factor = _SIZE_UNITS[found["unit"] or "B"]
    return int((Decimal(found["number"]) * factor).to_integral_value(rounding=ROUND_FLOOR))


def format_size(n: int) -> str:
    """`2G`, `1.5G`, `512M`, `100B`: the largest fitting base-1024 unit, at most one decimal."""
    if n < 0:
        return "-" + format_size(-n)
    fitting = [s for s in _FORMAT_UNITS if _SIZE_UNITS[s] <= n]
    if not fitting:
        return f"{n}B"
    index = _FORMAT_UNITS.index(fitting[-1])
    if _rounded(n, _FORMAT_UNITS[index]) >= 1024 and index + 1 < len(_FORMAT_UNITS):
        index += 1  # 1023.97K rounds to 1024K: say 1M
    suffix = _FORMAT_UNITS[index]
    return f"{_rounded(n, suffix):f}".removesuffix(".0") + suffix


def format_cpu(millis: int) -> str:
    """`1.5 CPU`, `2 CPU`, `0.25 CPU`: cores, exactly."""
    return f"{Decimal(millis) / 1000:f} CPU"


def describe(r: Resources) -> str:
    """`1.5 CPU, 2G memory`; zero dimensions left out; `nothing` if both are zero."""
    parts = ([format_cpu(r.cpu)] if r.cpu else []) + ([f"{format_size(r.memory)} memory"] if r.memory else [])
    return ", ".join(parts) or "nothing"


def unit_demand(unit: UnitFile, cpu: str | None, memory: str | None) -> Resources:
    """A unit's demand: `[X-Fleet] CPU=`/`Memory=` when given (empty = none), else its `[Service]` limits."""
    return Resources(cpu=_cpu_demand(unit, cpu), memory=_memory_demand(unit, memory))


def _cpu_demand(unit: UnitFile, override: str | None) -> int:
    if override is not None:
        return parse_cpu(override) if override.strip() else 0
    quota = (unit.setting(SERVICE, "CPUQuota") or "").strip()
    if quota in ("", "infinity"):
        return 0
    if not quota.endswith("%"):
        raise _invalid("CPUQuota", quota, 'expected a percentage such as "150%"')
    return parse_cpu(quota, "CPUQuota")


def _memory_demand(unit: UnitFile, override: str | None) -> int:
    if override is not None:
        return parse_size(override) if override.strip() else 0
    for directive in MEMORY_DIRECTIVES:
        value = unit.setting(SERVICE, directive)
        if value is not None:
            return parse_size(value, directive) if value.strip() else 0
    return 0


def _rounded(n: int, suffix: str) -> Decimal:
    return (Decimal(n) / _SIZE_UNITS[suffix]).quantize(Decimal("0.1"))


def _is_decimal(text: str) -> bool:
    return re.fullmatch(_DECIMAL, text) is not None


def _check_sign(what: str, text: str, value: str) -> None:
    if value.startswith("-"):
        raise _invalid(what, text, "must not be negative")


def _invalid(what: str, text: str, problem: str) -> InvalidRequirements:
    return InvalidRequirements(f'invalid {what} "{text}": {problem}')
