"""systemd unit files: parsing, normalized serialization and the content hash.

Owns the one reader of unit file text. It yields the option list fleet v1.0.0 read (its unit
file lexer was go-systemd's `unit.Deserialize`), so `[X-Fleet]` means what it meant to fleet,
and the normalized text written to a machine reads to that machine's systemd as the original
file did. The rules, each with its source, are the table in tests/unit/test_unit_syntax.py and
are summed up in docs/units.md ("How fleetd reads a unit file"):

- a UTF-8 byte-order mark, and anything before the first `[Section]`, is skipped;
- a line whose first non-blank character is `#` or `;` is a comment; one ending in `\\`
  continues the comment onto the next line;
- `Name = Value` is trimmed around the name and the value; a line without `=` is refused;
- a value line ending in `\\` continues onto the next line unless that line is blank. The value
  keeps the backslash, the line break and the next line as they are (fleet did; systemd joins
  them when it reads the file written to the machine);
- a section name is the text between `[` and `]`, whitespace included; repeated sections and
  keys are all kept, in file order;
- lines end in `\\n` or `\\r\\n`; a line ending in `\\r\\n` never continues.

Limits fleetd adds (each broken one is InvalidUnitFile): no NUL or other control character
except TAB (a CR only before LF); no lone surrogate (text that was not valid UTF-8); section and
option names at most MAX_NAME_BYTES, a value at most MAX_VALUE_BYTES, the whole file at most
MAX_UNIT_FILE_BYTES.
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
_OPENERS = "[#;"  # before the first section, fleet's reader skipped every other character


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
        return cls(tuple(_read(_physical_lines(text))))

    @classmethod
    def from_options(cls, options: Iterable[UnitOption]) -> UnitFile:
        """Build from options (name and value trimmed, as parsing would; the section kept).

        Raise InvalidUnitFile for an option whose text form would not parse back to itself.
        """
        return cls(tuple(_checked_option(option) for option in options))

    def serialize(self) -> str:
        """Normalized text: sections in first-appearance order, one blank line between them."""
        return "\n".join(
            f"[{section}]\n" + "".join(_option_line(o) for o in opts)
            for section, opts in self._sections()
        )

    @property
    def hash(self) -> str:
        """sha256 hex of the normalized text: the unit file's identity in the registry."""
        return hashlib.sha256(self.serialize().encode("utf-8")).hexdigest()

    def values(self, section: str, name: str) -> tuple[str, ...]:
        """Every value of `name` in `section`, in file order, as stored."""
        return tuple(o.value for o in self.options if o.section == section and o.name == name)

    def value(self, section: str, name: str) -> str | None:
        """The last value of `name` in `section` (systemd's rule for single-valued keys)."""
        found = self.values(section, name)
        return found[-1] if found else None

    def setting(self, section: str, name: str) -> str | None:
        """The last value as systemd reads it: continuation lines joined (systemd_text)."""
        found = self.value(section, name)
        return None if found is None else systemd_text(found)

    @property
    def description(self) -> str:
        """The first `[Unit] Description=`, as fleet showed it (fleet read the first value)."""
        found = self.values("Unit", "Description")
        return systemd_text(found[0]) if found else ""

    def _sections(self) -> list[tuple[str, list[UnitOption]]]:
        grouped: dict[str, list[UnitOption]] = {}
        for option in self.options:
            grouped.setdefault(option.section, []).append(option)
        return list(grouped.items())


def systemd_text(value: str) -> str:
    """A stored value as systemd reads it: each `\\` and line break becomes a space, and
    continued lines that are comments are left out (systemd.syntax(7))."""
    if "\n" not in value:
        return value
    first, *rest = value.split("\n")
    joined = first
    for piece in rest:
        if not piece.lstrip().startswith(_COMMENT):
            joined = joined.removesuffix("\\") + " " + piece
    return joined.removesuffix("\\").strip()


def _option_line(option: UnitOption) -> str:
    # A value ending in a backslash gets a space after it, so that it does not continue.
    pad = " " if option.value.endswith("\\") else ""
    return f"{option.name}={option.value}{pad}\n"


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


@dataclass(frozen=True, slots=True)
class _Line:
    """One physical line: its text without the line break."""

    number: int
    text: str
    crlf: bool  # ended in CR LF: fleet's reader kept the CR, so the line never continues
    last: bool  # no line break follows it

    @property
    def continues(self) -> bool:
        return not self.crlf and self.text.endswith("\\")


def _physical_lines(text: str) -> list[_Line]:
    pieces = text.split("\n")
    lines = []
    for number, piece in enumerate(pieces, start=1):
        last = number == len(pieces)
        body = piece.removesuffix("\r")
        bad = bad_character(body)
        if bad:
            raise InvalidUnitFile(f"line {number}: unit file contains {bad}")
        lines.append(_Line(number, body, body != piece and not last, last))
    return lines


def _read(lines: list[_Line]) -> Iterator[UnitOption]:
    """Options in file order; `i` walks the lines, each step consumes one or more of them."""
    section: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        text = _start_of_content(line.text, section is not None)
        if not text:
            i += 1
        elif text.startswith("["):
            section, i = _section_header(line, text), i + 1
        elif text.startswith(_COMMENT):
            i = _after_comment(lines, i, text)
        else:
            assert section is not None  # before the first section only openers are found
            option, i = _option(lines, i, section, text)
            yield option


def _start_of_content(text: str, in_section: bool) -> str:
    """Where the line's content starts: after leading blanks in a section; before the first
    section, at the first `[`, `#` or `;` (fleet skipped every other character there)."""
    if in_section:
        return text.lstrip()
    found = [i for i in (text.find(c) for c in _OPENERS) if i >= 0]
    return text[min(found):] if found else ""


def _section_header(line: _Line, text: str) -> str:
    close = text.find("]")
    if close < 0:
        raise InvalidUnitFile(f"line {line.number}: unable to find end of section: {_clip(text)!r}")
    name, garbage = text[1:close], text[close + 1:].strip()
    if not name:  # fleet took `[]` as a section systemd then ignored; fleetd refuses it
        raise InvalidUnitFile(f"line {line.number}: empty section name")
    if garbage:
        raise InvalidUnitFile(
            f"line {line.number}: found garbage after section name [{_clip(name)}]: {_clip(garbage)!r}"
        )
    _check_length(f"line {line.number}: section name", name, MAX_NAME_BYTES)
    return name


def _after_comment(lines: list[_Line], i: int, text: str) -> int:
    """The index after a comment: one trailing space dropped, a final `\\` continues it."""
    line = lines[i]
    while not line.crlf and not line.last and text.removesuffix(" ").endswith("\\"):
        i += 1
        line = lines[i]
        text = line.text
    return i + 1


def _option(lines: list[_Line], i: int, section: str, text: str) -> tuple[UnitOption, int]:
    line = lines[i]
    name, sep, rest = text.partition("=")
    if not sep:
        problem = "EOF: the file ends" if line.last else "unexpected newline encountered"
        raise InvalidUnitFile(f"line {line.number}: {problem} while parsing option name {_clip(text)!r}")
    if not name.strip():  # fleet kept a nameless option that systemd ignores; fleetd refuses it
        raise InvalidUnitFile(f"line {line.number}: option has no name: {_clip(text)!r}")
    value, i = _value(lines, i, rest)
    option = UnitOption(section, name.strip(), value)
    _check_lengths(option, f"line {line.number}: ")
    return option, i


def _value(lines: list[_Line], i: int, piece: str) -> tuple[str, int]:
    """The value starting with `piece` (the text after `=`) and the index after its last line."""
    partial, line = "", lines[i]
    while piece.strip():
        partial += piece
        if not line.continues:
            break
        partial += "\n"  # at the end of the file too, so the written file ends the value
        if line.last:
            break
        i += 1
        line = lines[i]
        piece = line.text
    trimmed = partial.strip()
    return (trimmed + "\n" if partial.endswith("\n") else trimmed), i + 1


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
    trimmed = UnitOption(option.section, option.name.strip(), option.value.strip())
    if option.value.endswith("\n") and option.value.rstrip().endswith("\\"):
        trimmed = UnitOption(trimmed.section, trimmed.name, trimmed.value + "\n")
    section, name, value = trimmed.section, trimmed.name, trimmed.value
    _check_lengths(trimmed)
    for part in (section, name, value.replace("\n", "")):
        bad = bad_character(part)
        if bad:
            raise InvalidUnitFile(f"option {_clip(name)!r} in [{_clip(section)}] contains {bad}")
    if not section or "]" in section:
        raise InvalidUnitFile(f"invalid section name {section!r}")
    if not name or "=" in name or name.startswith(("[", *_COMMENT)):
        raise InvalidUnitFile(f"invalid option name {name!r} in [{section}]")
    if "\n" in value and _reread(trimmed) != trimmed:
        raise InvalidUnitFile(f"value of {name!r} in [{section}] has a line break not after a backslash")
    return trimmed


def _reread(option: UnitOption) -> UnitOption | None:
    try:
        found = UnitFile.parse(f"[{option.section}]\n{_option_line(option)}").options
    except InvalidUnitFile:
        return None
    return found[0] if len(found) == 1 else None
