"""fleetctl's tables: fleet's columns, legends, --fields validation and tabwriter layout."""

from __future__ import annotations

import pytest

from fleetctl import render
from fleetd.api import schema
from fleetd.model.states import TargetState

M1 = "113f16a7" + "a" * 24
M2 = "2222bbbb" + "b" * 24
HASH = "e55c0ae" + "1" * 57
OPTS = [
    schema.UnitOption(section="Unit", name="Description", value="Hello World"),
    schema.UnitOption(section="Service", name="ExecStart", value="/bin/true"),
]
GLOBAL_OPTS = OPTS + [schema.UnitOption(section="X-Fleet", name="Global", value="true")]
MACHINES = [
    schema.Machine(id=M1, primary_ip="172.17.8.103", metadata={"az": "us-west-1b"}),
    schema.Machine(id=M2, primary_ip="172.17.8.104", metadata={"z": "1", "a": "2"}),
]


def state(name: str, machine: str, active: str = "active") -> schema.UnitState:
    return schema.UnitState(
        name=name,
        hash=HASH,
        machine_id=machine,
        systemd_load_state="loaded",
        systemd_active_state=active,
        systemd_sub_state="running",
    )


def test_tabwriter_pads_with_tabs_to_multiples_of_eight() -> None:
    text = render.tabulate(
        [["UNIT", "MACHINE", "ACTIVE"], ["hello.service", "113f16a7.../ip", "x"]]
    )
    assert text == "UNIT\t\tMACHINE\t\tACTIVE\nhello.service\t113f16a7.../ip\tx\n"


def test_exactly_eight_wide_cell_gets_a_full_tab_of_padding() -> None:
    assert render.tabulate([["12345678", "b"], ["1", "c"]]) == "12345678\tb\n1\t\tc\n"


def test_list_units_default_table() -> None:
    rows = render.state_rows([state("hello.service", M1)], MACHINES, full=False)
    text = render.table(render.parse_fields(render.UNIT_DEFAULT, render.UNIT_FIELDS), rows)
    assert text == (
        "UNIT\t\tMACHINE\t\t\t\tACTIVE\tSUB\n"
        "hello.service\t113f16a7.../172.17.8.103\tactive\trunning\n"
    )


def test_list_units_rows_sorted_by_unit_then_machine_and_full_legends() -> None:
    states = [state("b.service", M1), state("a.service", M2), state("a.service", M1)]
    rows = render.state_rows(states, MACHINES, full=True)
    assert [(r["unit"], r["machine"]) for r in rows] == [
        ("a.service", f"{M1}/172.17.8.103"),
        ("a.service", f"{M2}/172.17.8.104"),
        ("b.service", f"{M1}/172.17.8.103"),
    ]
    assert rows[0]["hash"] == HASH


def test_list_units_hash_is_seven_chars_and_unknown_machine_has_no_ip() -> None:
    rows = render.state_rows([state("a.service", "ffffffff" + "0" * 24)], [], full=False)
    assert rows[0]["hash"] == "e55c0ae"
    assert rows[0]["machine"] == "ffffffff..."


def test_no_legend_drops_header() -> None:
    rows = render.state_rows([state("a.service", M1)], MACHINES, full=False)
    assert render.table(["unit", "active"], rows, no_legend=True) == "a.service\tactive\n"


def test_list_unit_files_rows() -> None:
    units = [
        schema.Unit(
            name="hello.service",
            options=OPTS,
            desired_state=TargetState.LAUNCHED,
            current_state=TargetState.LAUNCHED,
            machine_id=M1,
        ),
        schema.Unit(
            name="g.service",
            options=GLOBAL_OPTS,
            desired_state=TargetState.LAUNCHED,
            current_state=TargetState.INACTIVE,
        ),
        schema.Unit(
            name="idle.service",
            options=OPTS[1:],
            desired_state=TargetState.INACTIVE,
            current_state=TargetState.INACTIVE,
        ),
    ]
    rows = render.unit_file_rows(units, MACHINES, full=False)
    fields = ["unit", "dstate", "state", "target", "global", "desc"]
    text = render.table(fields, rows)
    assert text.splitlines() == [
        "UNIT\t\tDSTATE\t\tSTATE\t\tTARGET\t\t\t\tGLOBAL\tDESC",
        "g.service\tlaunched\t-\t\tglobal\t\t\t\ttrue\tHello World",
        "hello.service\tlaunched\tlaunched\t113f16a7.../172.17.8.103\tfalse\tHello World",
        "idle.service\tinactive\tinactive\t-\t\t\t\tfalse\t-",
    ]
    assert len(rows[1]["hash"]) == 7
    assert len(render.unit_file_rows(units, MACHINES, full=True)[1]["hash"]) == 64


def test_list_machines_rows() -> None:
    text = render.table(
        ["machine", "ip", "metadata"], render.machine_rows(reversed(MACHINES), False)
    )
    assert text.splitlines() == [
        "MACHINE\t\tIP\t\tMETADATA",
        "113f16a7...\t172.17.8.103\taz=us-west-1b",
        "2222bbbb...\t172.17.8.104\ta=2,z=1",
    ]
    bare = render.machine_rows([schema.Machine(id=M1)], full=True)[0]
    assert bare == {"machine": M1, "ip": "", "metadata": "-", "state": "ready", "cpu": "-",
                    "memory": "-"}
    drained = render.machine_rows([schema.Machine(id=M1, state="drained")], full=True)[0]
    assert drained["state"] == "drained"


def test_list_machines_capacity_fields() -> None:
    big = schema.Machine(id=M1, capacity=schema.Capacity(cpu=1500, memory=3 * 1024**3 // 2))
    row = render.machine_rows([big], full=False)[0]
    assert (row["cpu"], row["memory"]) == ("1.5", "1.5G")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "Must define output format"),
        ("unit,bogus", 'Invalid key in output format: "bogus"'),
        ("unit,", 'Invalid key in output format: ""'),
    ],
)
def test_invalid_fields(spec, message) -> None:
    with pytest.raises(render.FieldError, match=message):
        render.parse_fields(spec, render.UNIT_FIELDS)


@pytest.mark.parametrize(
    ("valid", "spec"),
    [
        (render.UNIT_FIELDS, "unit,load,active,sub,machine,hash"),
        (render.UNIT_FILE_FIELDS, "unit,hash,dstate,state,target,tmachine,global,desc"),
        (render.MACHINE_FIELDS, "machine,ip,metadata"),
    ],
)
def test_fleets_field_lists_are_valid(valid, spec) -> None:
    assert render.parse_fields(spec, valid) == spec.split(",")


# pending reasons ----------------------------------------------------------------------------------


def pending(name: str, reason: str | None) -> schema.Unit:
    return schema.Unit(
        name=name,
        options=OPTS,
        desired_state=TargetState.LAUNCHED,
        current_state=TargetState.INACTIVE,
        pending_reason=reason,
    )


def test_default_unit_file_fields_add_reason_only_when_a_unit_has_one() -> None:
    plain = [pending("a.service", None)]
    assert render.default_unit_file_fields(plain) == ["unit", "hash", "dstate", "state", "target"]
    assert render.default_unit_file_fields([]) == render.UNIT_FILE_DEFAULT.split(",")
    with_reason = plain + [pending("big.service", "insufficient memory")]
    assert render.default_unit_file_fields(with_reason)[-1] == "reason"


def test_reason_column_shows_dash_for_units_without_one() -> None:
    units = [pending("big.service", "insufficient memory: needs 64T"), pending("a.service", None)]
    rows = render.unit_file_rows(units, MACHINES, full=False)
    text = render.table(["unit", "reason"], rows)
    assert text.splitlines() == [
        "UNIT\t\tREASON",
        "a.service\t-",
        "big.service\tinsufficient memory: needs 64T",
    ]


def test_reason_is_kept_on_one_line() -> None:
    assert render.reason_legend("no machine\tmatches\n  metadata") == "no machine matches metadata"
    assert render.reason_legend(None) == ""


def test_reason_is_a_valid_field() -> None:
    assert render.parse_fields("unit,reason", render.UNIT_FILE_FIELDS) == ["unit", "reason"]


def test_is_global_tolerates_a_record_that_no_longer_validates() -> None:
    opts = [schema.UnitOption(section="X-Fleet", name=k, value=v)
            for k, v in (("Global", "true"), ("Memory", "lots"))]
    assert render.is_global(schema.Unit(name="g.service", options=opts))
