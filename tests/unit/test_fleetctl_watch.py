"""fleetctl list-units --watch against the served API: a table per change, until the pipe closes."""

from __future__ import annotations

import asyncio
import io

from fleetd.model.machine import Machine
from fleetd.model.states import SystemdState, TargetState, UnitState
from tests.unit.test_fleetctl import M1, Env, env  # noqa: F401  (fixture)


class TwoTables(io.StringIO):
    """A pipe whose reader goes away after two tables (like `| head`)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables = 0
        self.two = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def write(self, text: str) -> int:
        if self.tables == 2:
            raise BrokenPipeError
        self.tables += 1
        if self.tables == 2:
            self.loop.call_soon_threadsafe(self.two.set)
        return super().write(text)


def state(active: str) -> UnitState:
    return UnitState(name="web.service", machine=M1, hash="h", state=TargetState.LAUNCHED,
                     systemd=SystemdState("loaded", active, "running" if active == "active" else "dead"))


async def test_list_units_watch_renders_each_change(env: Env) -> None:  # noqa: F811
    from fleetctl.cli import main

    await env.registry.register_machine(Machine(M1, "10.0.0.1"), 0)
    await env.registry.put_state(state("activating"), 0)
    out, err = TwoTables(), io.StringIO()
    run = asyncio.create_task(asyncio.to_thread(main, ["list-units", "--watch"], out, err, env.environ))
    for _ in range(250):
        if out.tables:
            break
        await asyncio.sleep(0.02)
    await env.registry.put_state(state("active"), 0)
    await asyncio.wait_for(out.two.wait(), 5)
    await env.registry.put_state(state("failed"), 0)  # the third table finds the pipe closed
    assert await asyncio.wait_for(run, 10) == 0, err.getvalue()
    tables = out.getvalue().split("\n\n")
    assert len(tables) == 2
    assert "activating" in tables[0] and "web.service" in tables[0]
    assert "active" in tables[1].split() and "activating" not in tables[1]
    assert tables[1].startswith("UNIT")


async def test_list_units_watch_reports_an_unreachable_fleetd(env: Env) -> None:  # noqa: F811
    from fleetctl.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(main, ["--endpoint", "unix:///nonexistent.sock", "list-units",
                                          "--watch"], out, err, {})
    assert code == 1 and "cannot reach fleetd" in err.getvalue()
