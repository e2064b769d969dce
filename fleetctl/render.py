"""fleetctl's tables (pure): fleet's columns, legends and Go-tabwriter layout.

Owns the field lists of list-units / list-unit-files / list-machines, `--fields` validation,
short/full machine and hash legends, `-` for missing values and the tab-padded layout fleet's
tabwriter(minwidth 0, tabwidth 8, padding 1, padchar '\t') produces. list-unit-files' `reason`
(why the engine cannot place a unit) is fleetd's own field, added to the default columns only
when some unit has one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from fleetd.api import schema
from fleetd.errors import InvalidInput
from fleetd.model.requirements import TRUTHY, parse_requirements
from fleetd.model.resources import format_cpu, format_size
from fleetd.model.unitfile import UnitFile, UnitOption

TAB_WIDTH = 8
PADDING = 1
MISSING = "-"

UNIT_FIELDS = ("unit", "load", "active", "sub", "machine", "hash")
UNIT_DEFAULT = "unit,machine,active,sub"
UNIT_FILE_FIELDS = ("unit", "hash", "dstate", "state", "target", "tmachine", "global", "desc", "reason")
UNIT_FILE_DEFAULT = "unit,hash,dstate,state,target"
MACHINE_FIELDS = ("machine", "ip", "metadata", "state", "cpu", "memory")
MACHINE_DEFAULT = "machine,ip,metadata,state"
TMACHINE_WARNING = 'WARNING: The "tmachine" field is deprecated. Use "target" instead.'

Row = Mapping[str, str]


class FieldError(ValueError):
    """--fields names something the table does not have."""


def parse_fields(spec: str, valid: Sequence[str]) -> list[str]:
    """Split `a,b,c`; fleet's messages for an empty spec or an unknown key."""
    if not spec:
        raise FieldError("Must define output format")
    fields = spec.split(",")
    for field in fields:
        if field not in valid:
            raise FieldError(f'Invalid key in output format: "{field}"')
    return fields


def tabulate(lines: Sequence[Sequence[str]]) -> str:
    """Lay out cells like Go's tabwriter with tab padding: every column but the last is
    padded with tabs to a common multiple of the tab width."""
    if not lines:
        return ""
    columns = max(len(line) for line in lines)
    widths = [_column_width(lines, i) for i in range(columns - 1)]
    return "".join(_layout(line, widths) + "\n" for line in lines)


def _column_width(lines: Sequence[Sequence[str]], index: int) -> int:
    width = max((len(line[index]) for line in lines if index < len(line) - 1), default=0)
    width += PADDING
    return -(-width // TAB_WIDTH) * TAB_WIDTH


def _layout(line: Sequence[str], widths: Sequence[int]) -> str:
    parts = []
    for i, cell in enumerate(line):
        if i == len(line) - 1:
            parts.append(cell)
        else:
            parts.append(cell + "\t" * -(-(widths[i] - len(cell)) // TAB_WIDTH))
    return "".join(parts)


def table(fields: Sequence[str], rows: Iterable[Row], no_legend: bool = False) -> str:
    """Header (upper-cased field names) unless no_legend, then one line per row."""
    lines = [] if no_legend else [[f.upper() for f in fields]]
    lines += [[row.get(f) or MISSING for f in fields] for row in rows]
    return tabulate(lines)


# legends ----------------------------------------------------------------------------------------


def machine_id_legend(machine_id: str, full: bool) -> str:
    if not machine_id:
        return MISSING
    return machine_id if full else machine_id[:8] + "..."


def machine_legend(machine_id: str, ip: str, full: bool) -> str:
    """`113f16a7.../10.0.0.1`; the whole id with --full; no `/ip` when the ip is unknown."""
    legend = machine_id_legend(machine_id, full)
    return f"{legend}/{ip}" if machine_id and ip else legend


def hash_legend(digest: str, full: bool) -> str:
    if not digest:
        return MISSING
    return digest if full else digest[:7]


def metadata_legend(metadata: Mapping[str, str]) -> str:
    return ",".join(f"{k}={metadata[k]}" for k in sorted(metadata)) or MISSING


def ips(machines: Iterable[schema.Machine]) -> dict[str, str]:
    return {m.id: m.primary_ip for m in machines}


# rows ---------------------------------------------------------------------------------------------


def unit_file(unit: schema.Unit) -> UnitFile:
    return UnitFile.from_options(UnitOption(o.section, o.name, o.value) for o in unit.options or ())


def is_global(unit: schema.Unit) -> bool:
    """Global= of a unit from the registry; a record stored before today's validation still shows."""
    return file_is_global(unit.name or "", unit_file(unit))


def file_is_global(name: str, unitfile: UnitFile) -> bool:
    """Global= of unit `name` with this content, even when its [X-Fleet] would not validate."""
    try:
        return parse_requirements(name, unitfile).is_global
    except InvalidInput:
        return any(v.strip().lower() in TRUTHY for v in unitfile.values("X-Fleet", "Global"))


def state_rows(
    states: Iterable[schema.UnitState], machines: Iterable[schema.Machine], full: bool
) -> list[Row]:
    """list-units: one row per unit per machine, sorted by unit then machine."""
    ip = ips(machines)
    ordered = sorted(states, key=lambda s: (s.name, s.machine_id))
    return [
        {
            "unit": s.name,
            "load": s.systemd_load_state,
            "active": s.systemd_active_state,
            "sub": s.systemd_sub_state,
            "machine": machine_legend(s.machine_id, ip.get(s.machine_id, ""), full),
            "hash": hash_legend(s.hash, full),
        }
        for s in ordered
    ]


def unit_file_rows(
    units: Iterable[schema.Unit], machines: Iterable[schema.Machine], full: bool
) -> list[Row]:
    """list-unit-files: one row per unit in the registry, sorted by name. Each distinct unit
    file is parsed once (instances of a template share theirs)."""
    ip, files = ips(machines), _Files()
    return [_unit_file_row(u, ip, full, files) for u in sorted(units, key=lambda u: u.name or "")]


class _Files:
    """Unit files by their options, parsed once; whether a unit of that file is Global=."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[tuple[str, str, str], ...], UnitFile] = {}

    def of(self, unit: schema.Unit) -> tuple[UnitFile, bool]:
        key = tuple((o.section, o.name, o.value) for o in unit.options or ())
        if key not in self._parsed:
            self._parsed[key] = unit_file(unit)
        uf = self._parsed[key]
        has_global = any(s == "X-Fleet" and n == "Global" for s, n, _ in key)
        return uf, has_global and file_is_global(unit.name or "", uf)


def _unit_file_row(unit: schema.Unit, ip: Mapping[str, str], full: bool, files: _Files) -> Row:
    uf, glob = files.of(unit)
    target = "global" if glob else _target(unit, ip, full)
    return {
        "unit": unit.name or "",
        "hash": hash_legend(uf.hash, full),
        "dstate": _value(unit.desired_state),
        "state": MISSING if glob else _value(unit.current_state),
        "target": target,
        "tmachine": target,
        "global": "true" if glob else "false",
        "desc": uf.description,
        "reason": reason_legend(unit.pending_reason),
    }


def default_unit_file_fields(units: Iterable[schema.Unit]) -> list[str]:
    """fleet's five columns, plus REASON when at least one unit has a pending reason."""
    fields = UNIT_FILE_DEFAULT.split(",")
    return fields + ["reason"] if any(u.pending_reason for u in units) else fields


def reason_legend(reason: str | None) -> str:
    """The pending reason on one line (a table cell must hold no tab or newline)."""
    return " ".join((reason or "").split())


def _target(unit: schema.Unit, ip: Mapping[str, str], full: bool) -> str:
    mid = unit.machine_id or ""
    return machine_legend(mid, ip.get(mid, ""), full)


def _value(state: object) -> str:
    return str(getattr(state, "value", state or ""))


def machine_rows(machines: Iterable[schema.Machine], full: bool) -> list[Row]:
    """list-machines: sorted by id."""
    return [
        {
            "machine": machine_id_legend(m.id, full),
            "ip": m.primary_ip,
            "metadata": metadata_legend(m.metadata),
            "state": m.state or "ready",
            "cpu": format_cpu(m.capacity.cpu).split()[0] if m.capacity and m.capacity.cpu else MISSING,
            "memory": format_size(m.capacity.memory) if m.capacity and m.capacity.memory else MISSING,
        }
        for m in sorted(machines, key=lambda m: m.id)
    ]


def alarm_line(alarm: schema.Alarm) -> str:
    """One stderr line per raised alarm, under the machines table."""
    machines = ", ".join(m[:8] for m in alarm.machines)
    return f"ALARM {alarm.kind} since {alarm.since}: {alarm.message}" + (
        f" (machines: {machines})" if machines else "")
