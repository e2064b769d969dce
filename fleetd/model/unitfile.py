"""systemd unit files: parsing, normalized serialization and the content hash.

Owns the INI dialect fleet accepts (sections, Key=Value, comments, backslash continuation) and
the normalized form whose sha256 identifies a unit file: formatting and comments do not change it.

Input rules (each broken rule is InvalidUnitFile): line breaks are `\n`, `\r\n` or a lone `\r`
(as systemd reads them); no NUL or other control character except TAB; no lone surrogate (text
that was not valid UTF-8); section and option names at most MAX_NAME_BYTES, a value at most
MAX_VALUE_BYTES, the whole file at most MAX_UNIT_FILE_BYTES. Any well-formed section name is
accepted, as systemd does (it ignores sections it does not know, warning unless `X-`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fleetd.errors import InvalidUnitFile

MAX_UNIT_FILE_BYTES = 1024 * 1024
MAX_VALUE_BYTES = 64 * 1024  # one option's value; go-systemd (fleet) allowed 2048-byte lines
MAX_NAME_BYTES = 256  # a section or option name
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


def bad_character(text: str) -> str | None:
    """Why `text` may not appear in a unit file (a NUL, a control character, not UTF-8), or None."""
    for char in text:
        if char == "\0":
            return "a NUL byte"
        if (char < " " and char != "\t") or char == "\x7f":
            return f"control character {char!r}"
        if "\ud800" <= char <= "\udfff":
            return "text that is not valid UTF-8"
    return None


def _split_lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (first line number, text) with backslash continuations joined by a space."""
    start, pending = 0, None
    for number, raw in enumerate(_split_lines(text), start=1):
        bad = bad_character(raw)
        if bad:
            raise InvalidUnitFile(f"line {number}: unit file contains {bad}")
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
            raise InvalidUnitFile(f"line {number}: option outside of a [Section]: {_clip(line)!r}")
        else:
            yield _option(number, section, line)


def _section_header(number: int, line: str) -> str:
    inner = line[1:-1].strip()
    if not line.endswith("]") or not inner or any(c in inner for c in "[]"):
        raise InvalidUnitFile(f"line {number}: malformed section header: {_clip(line)!r}")
    _check_length(f"line {number}: section name", inner, MAX_NAME_BYTES)
    return inner


def _option(number: int, section: str, line: str) -> UnitOption:
    name, sep, value = line.partition("=")
    if not sep:
        raise InvalidUnitFile(f"line {number}: expected Name=Value, got {_clip(line)!r}")
    if not name.strip():
        raise InvalidUnitFile(f"line {number}: option has no name: {_clip(line)!r}")
    option = UnitOption(section, name.strip(), value.strip())
    _check_lengths(option, f"line {number}: ")
    return option


def _check_length(what: str, text: str, limit: int) -> None:
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > limit:
        raise InvalidUnitFile(f"{what} is {size} bytes; the limit is {limit}")


def _check_lengths(option: UnitOption, where: str = "") -> None:
    _check_length(f"{where}section name", option.section, MAX_NAME_BYTES)
    _check_length(f"{where}option name {_clip(option.name)!r}", option.name, MAX_NAME_BYTES)
    _check_length(f"{where}value of {option.name!r}", option.value, MAX_VALUE_BYTES)


def _clip(text: str, limit: int = 60) -> str:
    """`text` shortened for an error message."""
    return text if len(text) <= limit else text[:limit] + "..."


def _checked_option(option: UnitOption) -> UnitOption:
    """Trim the option; refuse it if its serialized form would not parse back to it."""
    trimmed = UnitOption(option.section.strip(), option.name.strip(), option.value.strip())
    section, name, value = trimmed.section, trimmed.name, trimmed.value
    _check_lengths(trimmed)
    for part in (section, name, value):
        bad = bad_character(part)
        if bad:
            raise InvalidUnitFile(f"option {_clip(name)!r} in [{_clip(section)}] contains {bad}")
    if not section or any(c in section for c in "[]"):
        raise InvalidUnitFile(f"invalid section name {section!r}")
    if not name or "=" in name or name.startswith(("[", *_COMMENT)):
        raise InvalidUnitFile(f"invalid option name {name!r} in [{section}]")
    if value.endswith("\\"):
        raise InvalidUnitFile(f"value of {name!r} in [{section}] ends in a backslash")
    return trimmed
