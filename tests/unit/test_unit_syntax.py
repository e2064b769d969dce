"""How fleetd reads unit file text: one table row per rule, each citing the behaviour it follows.

Sources, read for the facts (no code taken from them):
- GS: coreos/go-systemd unit/deserialize.go, the lexer fleet v1.0.0 used through `unit.NewUnitFile`
  (the version after go-systemd's "pass through line continuations" change of September 2015,
  which fleet's vendor update of July 2016 brought in);
- FU: coreos/fleet unit/unit.go (`mapOptions`, `parseMultivalueLine`, `Description`);
- FJ: coreos/fleet job/job.go (`requirements`, `RequiredTarget`, `Peers`, `Conflicts`,
  `RequiredTargetMetadata`, `IsGlobal`);
- FC: coreos/fleet fleetctl/fleetctl.go (`getUnitFromFile` hands the file's text to
  `unit.NewUnitFile`; its errors are fleet's messages);
- SD: systemd.syntax(7) and systemd/systemd src/shared/conf-parser.c (`config_parse`,
  `parse_line`): how systemd reads the normalized file fleetd writes to a machine.
"""

from __future__ import annotations

import pytest

from fleetd.errors import InvalidUnitFile
from fleetd.model.requirements import parse_requirements
from fleetd.model.resources import unit_demand
from fleetd.model.unitfile import UnitFile, UnitOption, systemd_text


def opts(text: str) -> list[tuple[str, str, str]]:
    return [(o.section, o.name, o.value) for o in UnitFile.parse(text).options]


# (text, options fleet's reader yields)
READ = [
    # BOM. GS: before the first `[` the lexer skips every character that is neither `[` nor a
    # comment character, so a byte-order mark is skipped. SD: config_parse drops a UTF-8 BOM.
    ("\ufeff[Unit]\nDescription=x\n", [("Unit", "Description", "x")]),
    # Before the first section. GS: text, blank lines, options and comments before the first
    # `[` are skipped (go-systemd's own tests: "options outside of sections are ignored").
    # SD: "Assignment outside of section. Ignoring."
    ("Description=lost\n\n  garbage <<<\n# c\n[Unit]\nA=1\n", [("Unit", "A", "1")]),
    # GS: there a `#` or `;` anywhere starts a comment, and a `[` anywhere starts the section.
    ("junk ; [Fake]\n  x [Unit]\nA=1\n", [("Unit", "A", "1")]),
    # Comments. GS and SD: a line whose first non-blank character is `#` or `;` is a comment.
    ("[S]\n# a\n ; b\nA=1\n#B=2\n", [("S", "A", "1")]),
    # GS: `#` later in a line is text, not a comment (SD: the same).
    ("[S]\nA=v # not a comment ; nor this\n", [("S", "A", "v # not a comment ; nor this")]),
    # GS (ignoreLineFunc): a comment ending in `\` (one trailing space allowed) continues onto
    # the next line, which is comment too. systemd of fleet's day did the same (systemd issue
    # 10598); later systemd does not, but it reads the file fleetd writes, without comments.
    ("[S]\n# c \\\nA=swallowed\nB=2\n", [("S", "B", "2")]),
    ("[S]\n# c \\  \nA=1\n", [("S", "A", "1")]),  # two trailing spaces: no continuation
    # Whitespace around `=`. GS: name and value are trimmed (Go's TrimSpace); SD: strstrip both.
    ("[S]\n  Some Key \t=  \tv  w \t\n", [("S", "Some Key", "v  w")]),
    # GS: the first `=` splits; the rest is value.
    ("[S]\nEnvironment=A=b=c\n", [("S", "Environment", "A=b=c")]),
    # Whitespace around section names. GS: the name is the text between `[` and `]`, kept as
    # is, so `[ X-Fleet ]` is not [X-Fleet]; SD: strndup of the same bytes, also untrimmed.
    ("  [ X-Fleet ]  \nGlobal=true\n", [(" X-Fleet ", "Global", "true")]),
    # Line continuations. GS: a value line whose last character is `\` continues; the value
    # keeps the backslash, the line break and the next line (trimmed as a whole). SD joins them
    # with a space when it reads the file fleetd writes (see systemd_text below).
    ("[S]\nExecStart=/bin/echo \\\n  one \\\n  two\n", [("S", "ExecStart", "/bin/echo \\\n  one \\\n  two")]),
    # GS: a line inside a continuation is appended whatever it holds, a comment too (go-systemd's
    # test "apparent comment lines inside of line continuations not ignored").
    ("[S]\nA=a \\\n# note \\\n b\n", [("S", "A", "a \\\n# note \\\n b")]),
    # Continuation ending in a comment line: the comment line ends the value (it has no `\`).
    ("[S]\nA=a \\\n# end\nB=2\n", [("S", "A", "a \\\n# end"), ("S", "B", "2")]),
    # GS: a blank line ends a continuation; the value then ends in `\` and a line break.
    ("[S]\nA=a \\\n\nB=2\n", [("S", "A", "a \\\n"), ("S", "B", "2")]),
    # GS: a continuation at the end of the file. fleet kept `a \`; fleetd stores it as a
    # continuation ended by a blank line, so the written file reads the same to systemd (SD
    # reads a continuation at the end of a file).
    ("[S]\nA=a \\", [("S", "A", "a \\\n")]),
    # GS: `\` followed by blanks is not a continuation (the last character must be `\`); the
    # trimmed value ends in `\`. SD: the same (the escape must be the last character).
    ("[S]\nA=a \\ \nB=2\n", [("S", "A", "a \\"), ("S", "B", "2")]),
    # Duplicate sections. GS yields options in file order; a repeated section adds to it (FU:
    # mapOptions appends across sections; SD: a section may appear more than once).
    ("[S]\nA=1\n[T]\nB=2\n[S]\nA=3\n", [("S", "A", "1"), ("T", "B", "2"), ("S", "A", "3")]),
    # Duplicate keys: every value is kept, in order (GS); which one counts is per key (below).
    ("[S]\nA=1\nA=\nA=2\n", [("S", "A", "1"), ("S", "A", ""), ("S", "A", "2")]),
    # Quotes are not special to the reader (go-systemd's test "multiple values not
    # special-cased"); [X-Fleet] splits them afterwards (FU, below).
    ('[S]\nEnvironment= "A=1" "B=2"\n', [("S", "Environment", '"A=1" "B=2"')]),
    # CRLF. GS strips the LF, and TrimSpace the CR, from values and section lines.
    ("[S]\r\nA=1\r\n\r\n[T]\r\nB=2\r\n", [("S", "A", "1"), ("T", "B", "2")]),
    # GS: with CRLF the last character of `a \` CR is the CR, so the line does not continue;
    # the next line must then be an option of its own.
    ("[S]\r\nA=a \\\r\nB=2\r\n", [("S", "A", "a \\"), ("S", "B", "2")]),
    # Tabs are ordinary characters inside values (GS), trimmed at both ends.
    ("[S]\nA=\tx\ty\t\n", [("S", "A", "x\ty")]),
    # GS: the last line needs no line break.
    ("[S]\nA=1", [("S", "A", "1")]),
]


@pytest.mark.parametrize(("text", "expected"), READ)
def test_reader_yields_fleets_options(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert opts(text) == expected


# (text, fragment of the error) for what fleet refused, with fleet's message.
REFUSED = [
    # GS lexOptionNameFunc: "unexpected newline encountered while parsing option name".
    ("[S]\nno equals sign\n", "line 2: unexpected newline encountered while parsing option name"),
    # GS: the same when a continued line after a CRLF has no `=`; SD would have joined them.
    ("[S]\r\nA=a \\\r\n  b\r\n", "line 3: unexpected newline encountered while parsing option name"),
    # GS: the file ends before `=`: Go's io.EOF, whose message is "EOF".
    ("[S]\nDescription", "line 2: EOF"),
    # GS lexSectionName: "unable to find end of section".
    ("[Unit\nA=b\n", "line 1: unable to find end of section"),
    # GS lexSectionSuffixFunc: "found garbage after section name".
    ("[Unit] x\n", "line 1: found garbage after section name [Unit]: 'x'"),
    ("[Unit] # comment\n", "found garbage after section name"),
]


@pytest.mark.parametrize(("text", "fragment"), REFUSED)
def test_reader_refuses_what_fleet_refused(text: str, fragment: str) -> None:
    with pytest.raises(InvalidUnitFile) as info:
        UnitFile.parse(text)
    assert fragment in str(info.value)


def xfleet(body: str, name: str = "web@1.service"):
    return parse_requirements(name, UnitFile.parse("[Service]\nExecStart=/bin/true\n[X-Fleet]\n" + body))


# (X-Fleet body, attribute, value fleet's scheduler would use)
XFLEET = [
    # FJ RequiredTarget: MachineID first, else X-ConditionMachineID, else X-ConditionMachineBootID;
    # the first value of that key; the order of the keys in the file does not matter.
    ("MachineID=new\nX-ConditionMachineID=old\n", "machine_id", "new"),
    ("X-ConditionMachineID=old\nMachineID=new\n", "machine_id", "new"),
    ("X-ConditionMachineBootID=boot\nX-ConditionMachineID=old\n", "machine_id", "old"),
    ("MachineID=a\nMachineID=b\n", "machine_id", "a"),
    # FJ Peers/Conflicts/RequiredTargetMetadata: the deprecated name's values, then the new one's.
    ("MachineOf=b.service\nX-ConditionMachineOf=a.service\n", "machine_of", ("a.service", "b.service")),
    ("Conflicts=b*\nX-Conflicts=a*\n", "conflicts", ("a*", "b*")),
    # FJ IsGlobal: the last Global value wins, so an empty one after `true` turns it off.
    ("Global=true\nGlobal=\n", "is_global", False),
    ("Global=false\nGlobal=yes\n", "is_global", True),
    # FU mapOptions: values of repeated keys accumulate, across repeated [X-Fleet] sections too.
    ("Conflicts=a*\n[X-Fleet]\nConflicts=b*\n", "conflicts", ("a*", "b*")),
    # An empty value is a value, not a reset (FU appends it): `MachineOf=` adds an empty peer,
    # which no unit is, so fleet never scheduled such a unit; `MachineID=` pins to no machine.
    ("MachineOf=a.service\nMachineOf=\n", "machine_of", ("a.service", "")),
    ("MachineID=\n", "machine_id", ""),
    # An empty Conflicts= adds nothing (FJ splits each value on whitespace, fleet PR 1695).
    ("Conflicts=a*\nConflicts=\n", "conflicts", ("a*",)),
    # Quotes (FU parseMultivalueLine): a value starting and ending in `"` is split at spaces
    # outside quotes and loses its quotes; a quoted space stays.
    ('MachineOf="a.service" "b c.service"\n', "machine_of", ("a.service", "b c.service")),
    # Only a space splits: a tab between quoted words stays inside one value.
    ('MachineOf="a.service"\t"b.service"\n', "machine_of", ("a.service\tb.service",)),
    # Two spaces make an empty value between them.
    ('MachineOf="a.service"  "b.service"\n', "machine_of", ("a.service", "", "b.service")),
    # A value not both starting and ending with `"` is kept whole, quotes and all.
    ('MachineOf="a.service" b.service\n', "machine_of", ('"a.service" b.service',)),
    # Conflicts values are then split on any whitespace, tabs included (FJ, Go's strings.Fields).
    ('Conflicts="a*"\t"b*"\n', "conflicts", ("a*", "b*")),
    # Specifiers are replaced after the split (FJ requirements -> unitPrintf on each value).
    ('MachineOf="%p-db@%i.service" "x.service"\n', "machine_of", ("web-db@1.service", "x.service")),
    # A continued [X-Fleet] value keeps its backslash and line break (GS), so fleet's split saw
    # a `\` word, which matches no unit.
    ("Conflicts=a* \\\n  b*\n", "conflicts", ("a*", "\\", "b*")),
    # `[ X-Fleet ]` is another section (GS keeps the spaces): its options are not requirements.
    ("[ X-Fleet ]\nGlobal=true\n", "is_global", False),
]


@pytest.mark.parametrize(("body", "attribute", "expected"), XFLEET)
def test_x_fleet_values_are_read_as_fleet_read_them(body: str, attribute: str, expected) -> None:
    assert getattr(xfleet(body), attribute) == expected


def test_metadata_aliases_accumulate_per_key() -> None:
    # FJ RequiredTargetMetadata: both names feed one map of key -> allowed values.
    req = xfleet("MachineMetadata=region=a\nX-ConditionMachineMetadata=region=b\n")
    assert [(r.key, r.values) for r in req.metadata.rules] == [("region", ("b", "a"))]


# (stored value, what systemd reads from the written file)
SYSTEMD_READS = [
    # SD: a trailing backslash is replaced by a space and the next line appended.
    ("/bin/echo \\\n  one \\\n  two", "/bin/echo    one    two"),
    # SD (systemd.syntax(7)): comment lines inside a continuation are ignored.
    ("a \\\n# note \\\n b", "a   b"),
    # SD: a continuation ended by a blank line (or the end of the file).
    ("a \\\n", "a"),
    ("plain", "plain"),
]


@pytest.mark.parametrize(("value", "expected"), SYSTEMD_READS)
def test_systemd_text_joins_continuations_as_systemd_does(value: str, expected: str) -> None:
    assert systemd_text(value) == expected


def test_empty_systemd_value_resets_the_setting() -> None:
    # SD (systemd.resource-control(5)): an empty MemoryMax= resets it; the last assignment wins.
    unit = UnitFile.parse("[Service]\nMemoryMax=1G\nMemoryMax=\nCPUQuota=50% \\\n\n")
    assert unit_demand(unit, None, None).memory == 0
    assert unit_demand(unit, None, None).cpu == 500


def test_description_is_the_first_as_fleet_showed_it() -> None:
    # FU Description: "returns the first Description option found in the [Unit] section".
    unit = UnitFile.parse("[Unit]\nDescription=first \\\n  line\nDescription=second\n")
    assert unit.description == "first    line"


@pytest.mark.parametrize("text", [row[0] for row in READ])
def test_written_file_reads_back_to_the_same_options(text: str) -> None:
    unit = UnitFile.parse(text)
    again = UnitFile.parse(unit.serialize())  # sections grouped: the same options, regrouped
    assert sorted(again.options, key=repr) == sorted(unit.options, key=repr)
    assert again.serialize() == unit.serialize()
    assert UnitFile.from_options(unit.options) == unit  # what fleetctl sends, the API rebuilds


def test_value_ending_in_a_backslash_is_written_so_it_does_not_continue() -> None:
    unit = UnitFile.from_options([UnitOption("S", "A", "a \\"), UnitOption("S", "B", "2")])
    assert unit.serialize() == "[S]\nA=a \\ \nB=2\n"
    assert UnitFile.parse(unit.serialize()) == unit
