"""Unit names: turning a user's argument into a name, validating names, splitting templates.

Owns fleet's name rules (the "Bad input" table of docs/api.md): which suffixes a bare argument may carry,
which unit types the API accepts, and how `web@1.service` relates to its template `web@.service`.

The rules are systemd's (systemd.unit(5), `unit_name_is_valid`), made a little stricter:
- systemd: a prefix of at least one character, then `.` and a unit type; at most 255 bytes in
  all; the prefix is ASCII letters, digits and `:-_.\\`, plus `@` anywhere but first; the
  prefix before the first `@` is the template's, the rest up to the type its instance
  (`web@.service` is a template, `web@1.service` an instance of it), and only the types in
  TEMPLATE_SUFFIXES can be templates;
- stricter: no `\\` (systemd's escapes), no leading `-` (it would read as an option to
  fleetctl, systemctl and journalctl) or `.` (a hidden file), no `/` or `..` (the name is a
  file name in the units directory).
"""

from __future__ import annotations

import json
import posixpath
import string
from dataclasses import dataclass

from fleetd.errors import InvalidUnitName

#: Suffixes fleetctl leaves alone when normalizing an argument; anything else gets ".service".
SUFFIXES: tuple[str, ...] = (
    ".service",
    ".socket",
    ".timer",
    ".path",
    ".device",
    ".mount",
    ".automount",
)

#: Every unit type the API accepts: systemd's (fleet also took .busname and .snapshot, which
#: systemd dropped in v230 and v228 and refuses since).
VALID_SUFFIXES: frozenset[str] = frozenset(
    (
        ".automount",
        ".device",
        ".mount",
        ".path",
        ".scope",
        ".service",
        ".slice",
        ".socket",
        ".swap",
        ".target",
        ".timer",
    )
)

#: Unit types that may be templates or template instances (names containing "@").
TEMPLATE_SUFFIXES: frozenset[str] = frozenset((".path", ".service", ".socket", ".target", ".timer"))

MAX_NAME_LENGTH = 255  # bytes: systemd refuses UNIT_NAME_MAX (256) and more; fleet allowed 256
_NO_LEADING = "-.@"  # a name cannot start with these
_VALID_CHARS = frozenset(string.ascii_letters + string.digits + ":_.@-")


def normalize_name(arg: str) -> str:
    """`path/to/hello` -> `hello.service`; names with a known suffix are kept as they are."""
    name = posixpath.basename(arg)
    return name if name.endswith(SUFFIXES) else name + ".service"


def validate_name(name: str) -> None:
    """Raise InvalidUnitName with fleet's message if systemd or fleet would refuse `name`."""
    for check in (_check_shape, _check_suffix, _check_chars, _check_start):
        message = check(name)
        if message:
            raise InvalidUnitName(message)


def _check_shape(name: str) -> str | None:
    if not name:
        return "unit name cannot be empty"
    if len(name.encode("utf-8", errors="surrogatepass")) > MAX_NAME_LENGTH:
        return f"unit name exceeds maximum length ({MAX_NAME_LENGTH} bytes)"
    if "/" in name:
        return 'unit name cannot contain "/"'
    if ".." in name:
        return 'unit name cannot contain ".."'
    if "." not in name:
        return 'unit name must contain "."'
    if name.endswith("."):
        return 'unit name cannot end in "."'
    return None


def _check_suffix(name: str) -> str | None:
    suffix = name[name.rindex(".") :]
    if suffix not in VALID_SUFFIXES:
        return f"invalid unit type: {_go_quote(suffix[1:])}"
    if "@" in name and suffix not in TEMPLATE_SUFFIXES:
        return f"invalid unit type for template: {_go_quote(suffix[1:])}"
    return None


def _check_chars(name: str) -> str | None:
    for char in name[: name.rindex(".")]:
        if char not in _VALID_CHARS:
            return f"invalid character {_go_quote_char(char)} in unit name"
    return None


def _check_start(name: str) -> str | None:
    dot = name.rindex(".")
    if dot == 0:
        return f'unit name has no prefix before "{name}"'
    if name[0] in _NO_LEADING:
        return f'unit name cannot start in "{name[0]}"'
    return None


def state_label(name: str) -> str:
    """`name` as one registry key segment: `/` and `%` percent-encoded (identity for every
    valid name, which has neither); how an agent reports a unit whose name it refused."""
    return name.replace("%", "%25").replace("/", "%2F")


def refusal(name: str) -> str | None:
    """Why fleetd refuses `name` (validate_name's message), or None if it is valid."""
    try:
        validate_name(name)
    except InvalidUnitName as exc:
        return str(exc)
    return None


def _go_quote(text: str) -> str:
    """Roughly Go's %q for a string: double-quoted with escapes."""
    return json.dumps(text, ensure_ascii=False)


def _go_quote_char(char: str) -> str:
    """Roughly Go's %q for a rune: single-quoted, escaped when not printable."""
    if char in "'\\":
        return f"'\\{char}'"
    return f"'{char}'" if char.isprintable() else f"'\\u{ord(char):04x}'"


@dataclass(frozen=True, slots=True)
class UnitNameInfo:
    """A unit name split into parts: `web@1.service` -> prefix `web`, instance `1`, `.service`.

    For names without "@", prefix is the name without its suffix and instance is "".
    """

    full: str
    prefix: str
    instance: str
    suffix: str

    @property
    def stem(self) -> str:
        """The name without its suffix (`web@1`); systemd's %N."""
        return self.full[: len(self.full) - len(self.suffix)]

    @property
    def has_at(self) -> bool:
        return "@" in self.stem

    @property
    def is_template(self) -> bool:
        return self.has_at and not self.instance

    @property
    def is_instance(self) -> bool:
        return self.has_at and bool(self.instance)

    @property
    def template(self) -> str:
        """`web@.service` for both `web@.service` and `web@1.service`; "" otherwise."""
        return f"{self.prefix}@{self.suffix}" if self.has_at else ""


def parse_name(name: str) -> UnitNameInfo:
    """Split at the last "." for the suffix, then at the first "@" for prefix and instance."""
    dot = name.rfind(".")
    stem, suffix = (name[:dot], name[dot:]) if dot >= 0 else (name, "")
    prefix, _, instance = stem.partition("@")
    return UnitNameInfo(full=name, prefix=prefix, instance=instance, suffix=suffix)
