"""fleetctl's JSON output, completion scripts and progress line: tables for the pure code, and
the verbs against the served API (see test_fleetctl)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import subprocess

import pytest
import test_fleetctl as base

from fleetctl import completion, jsonout, progress
from fleetctl.cli import build_parser, main
from fleetd.api import schema
from fleetd.model.states import TargetState

M1, env, cluster, hello = base.M1, base.env, base.cluster, base.hello  # served-API fixtures
MACHINE = schema.Machine(id=M1, primary_ip="10.0.0.1", metadata={"z": "1", "a": "2"},
                         capacity=schema.Capacity(cpu=2000, memory=0))
STATE = schema.UnitState(name="a.service", hash="f" * 40, machine_id=M1, systemd_load_state="loaded",
                         systemd_active_state="active", systemd_sub_state="running")


def test_state_records_keep_every_field_whole() -> None:
    assert jsonout.state_records([STATE], [MACHINE]) == [{
        "unit": "a.service", "machine": M1, "ip": "10.0.0.1", "load": "loaded",
        "active": "active", "sub": "running", "hash": "f" * 40}]


def test_machine_records() -> None:
    assert jsonout.machine_records([MACHINE, schema.Machine(id="0" * 32)]) == [
        {"machine": "0" * 32, "ip": None, "metadata": {}, "state": "ready", "cpu": None,
         "memory": None},
        {"machine": M1, "ip": "10.0.0.1", "metadata": {"a": "2", "z": "1"}, "state": "ready",
         "cpu": 2000, "memory": None},
    ]


def test_unit_file_records() -> None:
    unit = schema.Unit(name="g.service", desired_state=TargetState.LAUNCHED, options=[
        schema.UnitOption(section="X-Fleet", name="Global", value="true"),
        schema.UnitOption(section="Unit", name="Description", value="G")])
    (record,) = jsonout.unit_file_records([unit], [MACHINE])
    assert record == {"unit": "g.service", "hash": record["hash"], "dstate": "launched",
                      "state": None, "target": None, "ip": None, "global": True, "desc": "G",
                      "reason": None}
    assert len(str(record["hash"])) > 7  # whole, not the short legend


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (None, [{"a": 1, "target": "m"}]),
        (["a"], [{"a": 1}]),
        (["tmachine", "a"], [{"tmachine": "m", "a": 1}]),
    ],
)
def test_dump_limits_keys(fields, expected) -> None:
    assert json.loads(jsonout.dump([{"a": 1, "target": "m"}], fields)) == expected


# progress -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "counts", "attempt", "text"),
    [
        (3, {"launched": 1, "loaded": 2}, 4, "waiting for 3 units: 1 launched, 2 loaded (attempt 4)"),
        (1, {"launched": 0, "inactive": 1}, 1, "waiting for 1 unit: 1 inactive (attempt 1)"),
        (2, {}, 2, "waiting for 2 units (attempt 2)"),
    ],
)
def test_waiting_text(total, counts, attempt, text) -> None:
    assert progress.waiting_text(total, counts, attempt) == text


@pytest.mark.parametrize(("polls", "attempt"), [(0, 1), (7, 1), (8, 2), (17, 3)])
def test_attempt_of(polls, attempt) -> None:
    assert progress.attempt_of(polls, 8) == attempt


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_redraws_on_a_tty_only() -> None:
    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        line = progress.Line(stream)
        line.show("one")
        line.show("two")
        line.clear()
    assert tty.getvalue() == "\rone\x1b[K\rtwo\x1b[K\r\x1b[K"
    assert pipe.getvalue() == ""


# completion -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    return build_parser({})


def _every_verb_and_flag() -> list[str]:
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    words = list(sub.choices)
    for p in [parser, *sub.choices.values()]:
        words += [o for a in p._actions for o in a.option_strings
                  if o.startswith("--") and a.help is not argparse.SUPPRESS]
    return words


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_scripts_name_every_verb_and_flag(shell) -> None:
    text = completion.script(shell, _parser())
    words = set(text.replace('"', " ").replace("(", " ").replace(")", " ").split())
    missing = [w for w in _every_verb_and_flag() if w not in words]
    assert not missing
    for verb in ("update", "list-units", "completion", "start"):
        assert verb in words


def test_verbs_know_their_arguments() -> None:
    _, found = completion.verbs(_parser())
    kinds = {v.name: v.argument for v in found}
    assert (kinds["start"], kinds["update"], kinds["list-units"]) == ("unit", "file", "")
    assert "--output" in next(v for v in found if v.name == "list-machines").flags


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_scripts_parse(shell, tmp_path) -> None:
    if shutil.which(shell) is None:  # `make deps` installs both; CI must not skip
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {shell} is not installed (make deps installs it)")
        pytest.skip(f"{shell} is not installed")
    path = tmp_path / "script"
    path.write_text(completion.script(shell, _parser()))
    assert subprocess.run([shell, "-n", str(path)], capture_output=True).returncode == 0


def test_bash_completes_verbs_flags_and_units(tmp_path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    script = tmp_path / "c.bash"
    script.write_text(completion.script("bash", _parser()))
    fake = tmp_path / "fleetctl"  # the unit list comes from fleetctl itself
    fake.write_text("#!/bin/sh\necho web@1.service\necho web@2.service\n")
    fake.chmod(0o755)

    def complete(*words: str) -> list[str]:
        line = (f'source {script}; COMP_WORDS=(fleetctl {" ".join(words)}); '
                f'COMP_CWORD={len(words)}; _fleetctl; printf "%s\\n" "${{COMPREPLY[@]}}"')
        done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=tmp_path,
                              env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
        return sorted(w for w in done.stdout.split() if w)

    assert complete("upd") == ["update"]
    assert complete("--endpoint", "x", "list-m") == ["list-machines"]
    assert complete("update", "--ba") == ["--batch"]
    assert complete("stop", "web@") == ["web@1.service", "web@2.service"]


async def test_completion_verb(env) -> None:
    run = await env.fleetctl("completion", "bash")
    assert run.code == 0 and "complete -F _fleetctl fleetctl" in run.out
    assert (await env.fleetctl("completion", "fish")).code == 2


# list-* -o json against the served API --------------------------------------------------------


async def test_list_json(cluster, hello) -> None:
    assert (await cluster.fleetctl("start", "hello")).code == 0
    units = json.loads((await cluster.fleetctl("list-units", "-o", "json")).out)
    assert [(u["unit"], u["machine"], u["ip"], u["active"]) for u in units] == [
        ("hello.service", M1, "10.0.0.1", "active")]
    files = json.loads((await cluster.fleetctl("list-unit-files", "--output", "json")).out)
    assert files[0]["dstate"] == "launched" and files[0]["global"] is False
    assert files[0]["target"] == M1 and len(files[0]["hash"]) > 7
    machines = json.loads((await cluster.fleetctl("list-machines", "-o", "json",
                                                  "--fields", "machine,ip")).out)
    assert machines == [{"machine": M1, "ip": "10.0.0.1"}]
    table = await cluster.fleetctl("list-machines", "--output", "table", "--no-legend")
    assert table.out.startswith("113f16a7...")


@pytest.mark.parametrize(
    "argv",
    [["list-units", "-o", "json", "--fields", "nope"], ["list-machines", "-o", "json", "--fields", ""]],
)
async def test_list_json_errors_exit_1(env, argv) -> None:
    run = await env.fleetctl(*argv)
    assert run.code == 1 and run.out == ""


async def test_a_blocking_wait_draws_progress_on_a_tty_only(env, hello) -> None:
    tty = Tty()
    out = io.StringIO()
    code = await asyncio.to_thread(main, ["start", "--block-attempts", "1", "hello"], out, tty,
                                   env.environ)
    assert code == 1
    assert "\rwaiting for 1 unit: 1 inactive (attempt 1)\x1b[K" in tty.getvalue()
    assert tty.getvalue().count("\r\x1b[K") >= 1  # cleared before the result lines
    piped = await env.fleetctl("start", "--block-attempts", "1", "hello")
    assert piped.code == 1 and "waiting for 1 unit" not in piped.err and "\r" not in piped.err
