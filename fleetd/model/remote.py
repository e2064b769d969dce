"""Remote unit commands (status, journal, restart) relayed through the registry (pure).

Owns the request record a fleetd writes under `exec/<machine>/<id>` for the owning host, its
strict validation (allow-listed kinds, a valid unit name, bounded line counts, journalctl's
output modes), the argv each kind runs (never through a shell), the output records the owning
host writes under `exec-out/<id>/<seq>` and the NDJSON lines the API streams to clients, and
how output is cut into bounded chunks. No I/O.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from fleetd.errors import InvalidInput
from fleetd.model.names import validate_name

KINDS = ("status", "journal", "restart")
OUTPUT_MODES = ("short", "short-iso", "short-iso-precise", "short-precise", "short-monotonic",
                "short-unix", "short-full", "verbose", "export", "json", "json-pretty", "json-sse",
                "json-seq", "cat", "with-unit")
MAX_LINES = 10000
DEFAULT_LINES = 10
CHUNK_BYTES = 64 * 1024
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """What the owning host is asked to run; built only through `make_request` / `decode_request`."""

    kind: str
    unit: str
    lines: int = DEFAULT_LINES
    follow: bool = False
    output: str = "short"

    def encode(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    def argv(self) -> tuple[str, ...]:
        """The command line, one argument per element; `--` ends options before the unit."""
        if self.kind == "status":
            return ("systemctl", "status", "-l", "--no-pager", "--", self.unit)
        if self.kind == "restart":
            return ("systemctl", "restart", "--", self.unit)
        follow = ("-f",) if self.follow else ()
        return ("journalctl", f"--unit={self.unit}", "--no-pager", "-n", str(self.lines),
                "-o", self.output, *follow)


def make_request(kind: str, unit: str, lines: object = DEFAULT_LINES, follow: object = False,
                 output: object = "short") -> ExecRequest:
    """A validated request; InvalidInput with a message naming the bad field otherwise."""
    if kind not in KINDS:
        raise InvalidInput(f'invalid kind "{kind}": expected one of {", ".join(KINDS)}')
    if not isinstance(unit, str):
        raise InvalidInput("unit: expected a unit name")
    validate_name(unit)
    if isinstance(lines, bool) or not isinstance(lines, int) or not 0 <= lines <= MAX_LINES:
        raise InvalidInput(f"lines: expected a whole number from 0 to {MAX_LINES}")
    if not isinstance(follow, bool):
        raise InvalidInput("follow: expected true or false")
    if output not in OUTPUT_MODES:
        raise InvalidInput(f'output: invalid mode "{output}": expected one of '
                           f'{", ".join(OUTPUT_MODES)}')
    if follow and kind != "journal":
        raise InvalidInput("follow: only the journal can be followed")
    return ExecRequest(kind, unit, lines, follow, str(output))


def decode_request(text: str) -> ExecRequest:
    """A request record read from the registry, validated as strictly as a new one."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"undecodable request: {exc}") from exc
    if not isinstance(raw, dict) or set(raw) != {"kind", "unit", "lines", "follow", "output"}:
        raise InvalidInput("undecodable request: expected kind, unit, lines, follow, output")
    return make_request(raw["kind"], raw["unit"], raw["lines"], raw["follow"], raw["output"])


def journal_query(lines: str | None, follow: str | None, output: str | None) -> tuple[int, bool, str]:
    """GET .../journal's query parameters (`?lines=&follow=&output=`) as typed values."""
    count = DEFAULT_LINES
    if lines is not None:
        if not lines.isdigit() or int(lines) > MAX_LINES:
            raise InvalidInput(f"lines: expected a whole number from 0 to {MAX_LINES}")
        count = int(lines)
    word = (follow or "").lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise InvalidInput("follow: expected true or false")
    return count, word in TRUE_WORDS, output if output is not None else "short"


# output records (owning host -> requester) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Output:
    """One record under exec-out/<id>/: `started`, a chunk of `data`, or the final `exit`."""

    data: str = ""
    exit: int | None = None
    started: bool = False

    def encode(self) -> str:
        if self.started:
            return '{"started":true}'
        return json.dumps({"exit": self.exit} if self.exit is not None else {"data": self.data})


def decode_output(text: str) -> Output:
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"undecodable output record: {exc}") from exc
    if raw == {"started": True}:
        return Output(started=True)
    if isinstance(raw, dict) and isinstance(raw.get("exit"), int) and len(raw) == 1:
        return Output(exit=raw["exit"])
    if isinstance(raw, dict) and isinstance(raw.get("data"), str) and len(raw) == 1:
        return Output(data=raw["data"])
    raise InvalidInput("undecodable output record")


def seq_name(seq: int) -> str:
    """Zero-padded, so the keys of one request sort in the order they were written."""
    return f"{seq:010d}"


def cut(data: bytes, limit: int = CHUNK_BYTES) -> list[str]:
    """`data` as text chunks of at most `limit` bytes, never splitting a UTF-8 character.

    Undecodable bytes become U+FFFD (a replacement character takes 3 bytes, so a chunk may
    exceed `limit` only when `data` is not UTF-8).
    """
    chunks, start = [], 0
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and end > start + 1 and (data[end] & 0xC0) == 0x80:
            end -= 1
        chunks.append(data[start:end].decode("utf-8", errors="replace"))
        start = end
    return chunks


# NDJSON lines (API -> client) ------------------------------------------------------------------


def data_line(machine: str, data: str) -> str:
    return json.dumps({"machine": machine, "data": data}) + "\n"


def exit_line(machine: str, code: int) -> str:
    return json.dumps({"machine": machine, "exit": code}) + "\n"


def error_line(machine: str, message: str) -> str:
    return json.dumps({"machine": machine, "error": message}) + "\n"
