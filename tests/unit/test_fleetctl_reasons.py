"""fleetctl and pending reasons: list-unit-files' REASON column and start's notices while it
waits. The reasons are injected where fleetctl receives units (its client), so these tests do
not depend on the engine producing them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import test_fleetctl as base

from fleetctl import waiting
from fleetctl.client import Client
from fleetctl.commands.base import Context
from fleetd.api import schema
from fleetd.model.states import TargetState

env, cluster = base.env, base.cluster  # the fixtures (not the real cluster of tests/conftest.py)
BIG = "insufficient memory: needs 64T, largest free 7.7G"


@pytest.fixture
def reasons(monkeypatch) -> dict[str, str]:
    """Unit name -> pending reason, added to every unit fleetctl reads from the API."""
    table: dict[str, str] = {}
    get_unit, list_units = Client.get_unit, Client.list_units

    def tag(unit: schema.Unit) -> schema.Unit:
        reason = table.get(unit.name or "")
        return unit.model_copy(update={"pending_reason": reason}) if reason else unit

    async def tagged_get(self: Client, name: str) -> schema.Unit | None:
        unit = await get_unit(self, name)
        return tag(unit) if unit is not None else None

    async def tagged_list(self: Client) -> list[schema.Unit]:
        return [tag(u) for u in await list_units(self)]

    monkeypatch.setattr(Client, "get_unit", tagged_get)
    monkeypatch.setattr(Client, "list_units", tagged_list)
    return table


@pytest.fixture
def units(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("big", "small"):
        (tmp_path / f"{name}.service").write_text(base.HELLO)


async def test_default_columns_stay_fleets_without_reasons(env, units, reasons) -> None:
    await env.fleetctl("submit", "big", "small")
    run = await env.fleetctl("list-unit-files")
    assert run.out.splitlines()[0].split() == ["UNIT", "HASH", "DSTATE", "STATE", "TARGET"]


async def test_reason_column_appears_when_a_unit_has_a_reason(env, units, reasons) -> None:
    await env.fleetctl("submit", "big", "small")
    reasons["big.service"] = BIG
    run = await env.fleetctl("list-unit-files", "--no-legend")
    assert [line.split("\t")[-1] for line in run.out.splitlines()] == [BIG, "-"]
    run = await env.fleetctl("list-unit-files")
    assert run.out.splitlines()[0].split() == ["UNIT", "HASH", "DSTATE", "STATE", "TARGET", "REASON"]


async def test_reason_field_and_explicit_fields_are_kept(env, units, reasons) -> None:
    await env.fleetctl("submit", "big", "small")
    reasons["big.service"] = BIG
    run = await env.fleetctl("list-unit-files", "--fields", "unit,reason")
    assert run.out.splitlines() == ["UNIT\t\tREASON", f"big.service\t{BIG}", "small.service\t-"]
    run = await env.fleetctl("list-unit-files", "--fields", "unit,dstate")
    assert "REASON" not in run.out
    run = await env.fleetctl("list-unit-files", "--fields", "")
    assert run.code == 1 and run.err.strip() == "Must define output format"


async def test_start_prints_the_reason_once_while_waiting(env, units, reasons) -> None:
    await env.fleetctl("submit", "big")
    reasons["big.service"] = BIG
    run = await env.fleetctl("start", "--block-attempts", "1", "big")
    assert run.code == 1
    assert run.err.splitlines() == [
        f"Unit big.service cannot be placed yet: {BIG}",
        "timed out waiting for unit big.service to report state launched",
    ]


class ScriptedClient:
    """get_unit answers from a script: one schema.Unit per poll."""

    def __init__(self, answers: list[schema.Unit]) -> None:
        self.answers = answers

    async def get_unit(self, name: str) -> schema.Unit | None:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    async def list_machines(self) -> list[schema.Machine]:
        return []


def unit(reason: str | None, state: TargetState = TargetState.INACTIVE) -> schema.Unit:
    return schema.Unit(name="big.service", current_state=state, pending_reason=reason)


async def test_reason_is_printed_when_it_appears_and_when_it_changes(monkeypatch) -> None:
    monkeypatch.setattr(waiting, "POLL_INTERVAL", 0.001)
    answers = [unit(None), unit("a"), unit("a"), unit("b"), unit("b"), unit(None), unit("b")]
    client = ScriptedClient([*answers, unit(None, TargetState.LOADED)])
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(client, out, err)  # type: ignore[arg-type]
    done = await waiting.wait_for_states(ctx, ["big.service"], "load", "loaded", 0, False)
    assert done is not None and out.getvalue() == "Unit big.service loaded\n"
    assert err.getvalue().splitlines() == [
        "Unit big.service cannot be placed yet: a",
        "Unit big.service cannot be placed yet: b",
        "Unit big.service cannot be placed yet: b",
    ]
