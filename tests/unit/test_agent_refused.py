"""Tier 2: an agent that finds units with invalid names in etcd (written there past the API)
refuses them: each is logged once, reported failed with the reason in its published state,
never handed to systemd, and the host's other units run as if nothing happened.

One fleetd without an engine (test_loops.Solo) over the in-memory registry and a fake systemd;
the test writes the assignments and global records itself, as a buggy or hostile writer would.
"""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs
from test_loops import (
    HELLO,
    Solo,
    eventually,
    eventually_async,
    solo,  # noqa: F401  (the fixture: one fleetd without an engine)
)

from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment, Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry import codec
from fleetd.registry.kv import Op, Put

# name in etcd -> (the label its state is reported under, a piece of the reason)
INVALID = {
    ".service": (".service", 'no prefix before ".service"'),
    "-rf.service": ("-rf.service", 'cannot start in "-"'),
    "a/../b.service": ("a%2F..%2Fb.service", 'cannot contain "/"'),
    "a b.service": ("a b.service", "invalid character ' '"),
    "x.snapshot": ("x.snapshot", 'invalid unit type: "snapshot"'),
    "w" * 300 + ".service": ("w" * 300 + ".service", "maximum length (255 bytes)"),
}


async def place(host: Solo, *names: str) -> None:
    """Assign units here directly (bypassing the API), with their files."""
    unit_file = UnitFile.parse(HELLO)
    ops: list[Op] = [Put(host.registry.keys.file(unit_file.hash), unit_file.serialize())]
    ops += [host.registry.place_op(Assignment(n, host.machine.id, unit_file.hash,
                                              TargetState.LAUNCHED)) for n in names]
    await host.kv.txn((), ops)


async def reported(host: Solo) -> dict[str, tuple[str, str]]:
    return {s.name: (s.systemd.active, s.reason) for s in await host.registry.list_states()}


async def test_invalid_names_are_refused_reported_failed_and_the_rest_runs(solo: Solo) -> None:  # noqa: F811
    with capture_logs() as logs:
        await place(solo, "good.service", *INVALID)
        await eventually(lambda: solo.running() == {"good.service"})
        await eventually_async(lambda: _all_reported(solo))
        await place(solo, "later.service")  # more passes: the refused units are not logged again
        await eventually(lambda: solo.running() == {"good.service", "later.service"})
    states = await reported(solo)
    for label, why in INVALID.values():
        active, reason = states[label]
        assert active == "failed" and reason.startswith("invalid unit name: ") and why in reason
    assert states["good.service"] == ("active", "")
    assert set(solo.systemd.files) == {"good.service", "later.service"}
    assert all(call[1:] in (("good.service",), ("later.service",), ()) for call in solo.systemd.calls)
    refusals = [e["unit"] for e in logs if e["event"].startswith("unit refused")]
    assert sorted(refusals) == sorted(INVALID)  # each exactly once


async def test_a_refused_unit_removed_from_etcd_takes_its_state_with_it(solo: Solo) -> None:  # noqa: F811
    await place(solo, "good.service", "-rf.service")
    await eventually_async(lambda: _has(solo, "-rf.service"))
    await solo.kv.txn((), [solo.registry.evict_op("-rf.service", solo.machine.id)])
    await eventually_async(lambda: _lacks(solo, "-rf.service"))
    assert "good.service" in await reported(solo)


async def test_a_global_unit_with_an_invalid_name_is_refused_too(solo: Solo) -> None:  # noqa: F811
    unit_file = UnitFile.parse(HELLO + "[X-Fleet]\nGlobal=true\n")
    record = Unit(name="-g.service", hash=unit_file.hash, desired=TargetState.LAUNCHED,
                  is_global=True)
    await solo.kv.txn((), [Put(solo.registry.keys.file(unit_file.hash), unit_file.serialize()),
                           Put(solo.registry.keys.global_unit("-g.service"),
                               codec.encode_unit(record))])
    await place(solo, "good.service")
    await eventually(lambda: solo.running() == {"good.service"})
    await eventually_async(lambda: _has(solo, "-g.service"))
    await asyncio.sleep(0.1)
    assert "-g.service" not in solo.systemd.files


async def _all_reported(host: Solo) -> bool:
    states = await reported(host)
    return all(label in states for label, _ in INVALID.values())


async def _has(host: Solo, label: str) -> bool:
    return label in await reported(host)


async def _lacks(host: Solo, label: str) -> bool:
    return label not in await reported(host)
