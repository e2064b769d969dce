"""Tier 2: the mass-failure alarm through the API and fleetctl (list-machines, confirm-reschedule)."""

from __future__ import annotations

from test_fleetctl import env  # noqa: F401  (the served registry + fleetctl fixture)

from fleetd.engine.departures import alarm_record

M = ["a" * 32, "b" * 32, "c" * 32]


async def raise_alarm(registry) -> None:  # type: ignore[no-untyped-def]
    await registry.kv.put(registry.keys.alarm("mass-failure"),
                          alarm_record(M, 2, "2026-11-21T10:00:00+00:00"))


async def test_list_machines_shows_a_raised_alarm_on_stderr(env) -> None:  # noqa: F811
    quiet = await env.fleetctl("list-machines")
    assert quiet.code == 0 and quiet.err == ""
    await raise_alarm(env.registry)
    run = await env.fleetctl("list-machines")
    assert run.code == 0
    assert run.err.startswith("ALARM mass-failure since 2026-11-21T10:00:00+00:00: mass failure: 3 of 5")
    assert "(machines: aaaaaaaa, bbbbbbbb, cccccccc)" in run.err


async def test_confirm_reschedule_clears_the_alarm_once(env) -> None:  # noqa: F811
    await raise_alarm(env.registry)
    run = await env.fleetctl("confirm-reschedule")
    assert run.code == 0 and "Confirmed: the units of 3 vanished machine(s)" in run.out
    assert await env.registry.list_alarms() == {}
    again = await env.fleetctl("confirm-reschedule")
    assert again.code == 0 and "No mass-failure alarm is raised" in again.out


async def test_api_alarm_kinds_are_validated_and_unknown_ones_are_404(env) -> None:  # noqa: F811
    from aiohttp import ClientSession, UnixConnector

    path = env.environ["FLEETCTL_ENDPOINT"].removeprefix("unix://")
    async with ClientSession(connector=UnixConnector(path=path)) as http:
        async with http.get("http://fleet/fleet/v1/alarms") as resp:
            assert resp.status == 200 and await resp.json() == {"alarms": []}
        async with http.delete("http://fleet/fleet/v1/alarms/mass-failure") as resp:
            assert resp.status == 404
            assert "no alarm 'mass-failure' is raised" in (await resp.json())["error"]["message"]
        async with http.delete("http://fleet/fleet/v1/alarms/..%2Fleader") as resp:
            assert resp.status in (400, 404)
        async with http.delete("http://fleet/fleet/v1/alarms/Bad_Kind") as resp:
            assert resp.status == 400
        async with http.post("http://fleet/fleet/v1/alarms") as resp:
            assert resp.status == 405
    assert await env.registry.kv.get(env.registry.keys.leader) is None
