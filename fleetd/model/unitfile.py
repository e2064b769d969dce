"""systemd unit files: parsing, normalized serialization and the content hash.

Owns the INI dialect fleet accepts (sections, Key=Value, comments, backslash continuation) and
the normalized form whose sha256 identifies a unit file: formatting and comments do not change it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fleetd.errors import InvalidUnitFile

MAX_UNIT_FILE_BYTES = 1024 * 1024
_COMMENT = ("#", ";")


@dataclass(frozen=True, slots=True)
class UnitOption:
    """One `Name=Value` line inside `[Section]`."""

    section: str
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class UnitFile:
    """A parsed unit file: its options in file order (repeated keys kept)."""

    options: tuple[UnitOption, ...] = ()

    @classmethod
    def parse(cls, text: str) -> UnitFile:
        """Parse unit file text; raise InvalidUnitFile naming the offending line."""
        _check_size(text)
        return cls(tuple(_parse_lines(_logical_lines(text))))

    @classmethod
    def from_options(cls, options: Iterable[UnitOption]) -> UnitFile:
        """Build from options (whitespace around each part trimmed, as parsing would).

        Raise InvalidUnitFile for an option whose text form would not parse back to itself.
        """
        return cls(tuple(_checked_option(option) for option in options))

    def serialize(self) -> str:
        """Normalized text: sections in first-appearance order, one blank line between them."""
        return "\n".join(
            f"[{section}]\n" + "".join(f"{o.name}={o.value}\n" for o in opts)
            for section, opts in self._sections()
        )

    @property
    def hash(self) -> str:
        """sha256 hex of the normalized text: the unit file's identity in the registry."""
        return hashlib.sha256(self.serialize().encode("utf-8")).hexdigest()

    def values(self, section: str, name: str) -> tuple[str, ...]:
        """Every value of `name` in `section`, in file order."""
        return tuple(o.value for o in self.options if o.section == section and o.name == name)

    def value(self, section: str, name: str) -> str | None:
        """The last value of `name` in `section` (systemd's rule for single-valued keys)."""
        found = self.values(section, name)
        return found[-1] if found else None

    @property
    def description(self) -> str:
        return self.value("Unit", "Description") or ""

    def _sections(self) -> list[tuple[str, list[UnitOption]]]:
        grouped: dict[str, list[UnitOption]] = {}
        for option in self.options:
            grouped.setdefault(option.section, []).append(option)
        return list(grouped.items())


def _check_size(text: str) -> None:
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_UNIT_FILE_BYTES:
        raise InvalidUnitFile(f"unit file is {size} bytes; the limit is {MAX_UNIT_FILE_BYTES}")


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (first line number, text) with backslash continuations joined by a space."""
    start, pending = 0, None
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if "\0" in raw:
            raise InvalidUnitFile(f"line {number}: unit file contains a NUL byte")
        line = raw.rstrip()
        if line.lstrip().startswith(_COMMENT):
            continue  # systemd drops comments first: they never continue nor break a value
        if pending is None:
            start, pending = number, ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        pending = None
    if pending is not None:
        yield start, pending


def _parse_lines(lines: Iterable[tuple[int, str]]) -> Iterator[UnitOption]:
    section: str | None = None
    for number, line in lines:
        line = line.strip()
        if not line or line.startswith(_COMMENT):
            continue
        if line.startswith("["):
            section = _section_header(number, line)
        elif section is None:
            raise InvalidUnitFile(f"line {number}: option outside of a [Section]: {line!r}")
        else:
            yield _option(number, section, line)


def _section_header(number: int, line: str) -> str:
    inner = line[1:-1].strip()
    if not line.endswith("]") or not inner or any(c in inner for c in "[]"):
        raise InvalidUnitFile(f"line {number}: malformed section header: {line!r}")
    return inner


def _option(number: int, section: str, line: str) -> UnitOption:
    name, sep, value = line.partition("=")
    if not sep:
        raise InvalidUnitFile(f"line {number}: expected Name=Value, got {line!r}")
    if not name.strip():
        raise InvalidUnitFile(f"line {number}: option has no name: {line!r}")
    return UnitOption(section, name.strip(), value.strip())


def _checked_option(option: UnitOption) -> UnitOption:
    """Trim the option; refuse it if its serialized form would not parse back to it."""
    trimmed = UnitOption(option.section.strip(), option.name.strip(), option.value.strip())
    section, name, value = trimmed.section, trimmed.name, trimmed.value
    if any(c in part for part in (section, name, value) for c in "\n\r\0"):
        raise InvalidUnitFile(f"option {name!r} contains a line break or NUL byte")
    if not section or any(c in section for c in "[]"):
        raise InvalidUnitFile(f"invalid section name {section!r}")
    if not name or "=" in name or name.startswith(("[", *_COMMENT)):
        raise InvalidUnitFile(f"invalid option name {name!r} in [{section}]")
    if value.endswith("\\"):
        raise InvalidUnitFile(f"value of {name!r} in [{section}] ends in a backslash")
    return trimmed
