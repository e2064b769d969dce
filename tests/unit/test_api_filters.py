"""GET /fleet/v1/units filters: tables for parsing and matching, and the API over MemoryKV."""

from __future__ import annotations

import pytest
from test_api import client, registry  # noqa: F401  (fixtures: the app over MemoryKV, page size 2)

from fleetd.api.filters import UnitFilter, apply_unit_filter, parse_unit_filter
from fleetd.errors import InvalidInput
from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment, Unit

H = "a" * 64
UNITS = [Unit("api@1.service", H, TargetState.LAUNCHED), Unit("api@2.service", H, TargetState.LOADED),
         Unit("db.service", H, TargetState.LAUNCHED), Unit("web.service", H, TargetState.INACTIVE)]
PLACED = {"api@1.service": Assignment("api@1.service", "m1", H, TargetState.LAUNCHED),
          "db.service": Assignment("db.service", "m2", H, TargetState.LAUNCHED)}


@pytest.mark.parametrize(("query", "kept"), [
    ({}, ["api@1.service", "api@2.service", "db.service", "web.service"]),
    ({"unitName": "api@*"}, ["api@1.service", "api@2.service"]),
    ({"unitName": "?b.service"}, ["db.service"]),
    ({"desiredState": "launched"}, ["api@1.service", "db.service"]),
    ({"machineID": "m2"}, ["db.service"]),
    ({"unitName": "api@*", "desiredState": "launched", "machineID": "m1"}, ["api@1.service"]),
    ({"machineID": "m9"}, []),
])
def test_filters_combine_with_and(query: dict[str, str], kept: list[str]) -> None:
    assert [u.name for u in apply_unit_filter(UNITS, PLACED, parse_unit_filter(query))] == kept


@pytest.mark.parametrize(("query", "message"), [
    ({"desiredState": "running"}, 'desiredState must be inactive, loaded or launched, not "running"'),
    ({"unitName": ""}, "unitName must be a pattern of 1 to 256 characters"),
    ({"unitName": "x" * 257}, "unitName must be a pattern of 1 to 256 characters"),
    ({"machineID": "../leader"}, 'machineID "../leader" is not a machine id'),
])
def test_bad_filters_are_refused(query: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_unit_filter(query)


def test_no_query_is_no_filter() -> None:
    assert parse_unit_filter({}) == UnitFilter()


async def test_the_api_filters_before_paginating(client, registry) -> None:  # noqa: F811
    for name in ("a1.service", "b.service", "a2.service", "a3.service"):
        body = {"desiredState": "inactive", "options": [
            {"section": "Service", "name": "ExecStart", "value": "/bin/true"}]}
        assert (await client.put(f"/fleet/v1/units/{name}", json=body)).status == 201
    first = await (await client.get("/fleet/v1/units", params={"unitName": "a*"})).json()
    assert [u["name"] for u in first["units"]] == ["a1.service", "a2.service"]  # page size 2
    rest = await (await client.get("/fleet/v1/units", params={
        "unitName": "a*", "nextPageToken": first["nextPageToken"]})).json()
    assert [u["name"] for u in rest["units"]] == ["a3.service"] and "nextPageToken" not in rest
    bad = await client.get("/fleet/v1/units", params={"desiredState": "up"})
    assert bad.status == 400 and "desiredState" in (await bad.json())["error"]["message"]
