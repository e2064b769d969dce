"""The scheduler: evictions, in-place updates, placements and pending reasons (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from fleetd.engine.scheduler import Decision, Snapshot, UnitSpec, schedule
from fleetd.model.machine import Machine
from fleetd.model.metadata import parse_metadata
from fleetd.model.requirements import (
    Requirements,
)
from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment, Unit

LAUNCHED, LOADED, INACTIVE = TargetState.LAUNCHED, TargetState.LOADED, TargetState.INACTIVE
M1, M2, M3 = "1a2b3c4d" + "0" * 24, "2b3c4d5e" + "0" * 24, "3c4d5e6f" + "0" * 24


def spec(name: str, desired: TargetState = LAUNCHED, hash: str = "h1", **req: object) -> UnitSpec:
    """A unit spec; `metadata` may be given as {key: (accepted values...)} for brevity."""
    if isinstance(req.get("metadata"), dict):
        grouped = req["metadata"]
        req["metadata"] = parse_metadata(f"{k}={v}" for k, vs in grouped.items() for v in vs)  # type: ignore[attr-defined]
    return UnitSpec(Unit(name, hash, desired), Requirements(**req))  # type: ignore[arg-type]


def machine(mid: str, **metadata: str) -> Machine:
    return Machine(id=mid, metadata=metadata)


def snap(units: list[UnitSpec], machines: list[Machine], assigned: Mapping[str, str] = {}) -> Snapshot:
    by_name = {s.unit.name: s for s in units}
    assignments = {
        u: Assignment(u, m, by_name[u].unit.hash if u in by_name else "h1", LAUNCHED)
        for u, m in assigned.items()
    }
    return Snapshot({s.unit.name: s for s in units}, {m.id: m for m in machines}, assignments)


def placed(plan: Decision) -> dict[str, str]:
    return {p.assignment.unit: p.assignment.machine for p in plan.placements}


def pending(plan: Decision) -> dict[str, str]:
    return {p.unit: p.reason for p in plan.pending}


def evicted(plan: Decision) -> dict[str, str]:
    return {e.unit: e.reason for e in plan.evictions}


# --- placement ------------------------------------------------------------------------------


def test_spreads_by_unit_count_ties_by_machine_id() -> None:
    units = [spec(f"u{i}.service") for i in range(5)]
    plan = schedule(snap(units, [machine(M2), machine(M1)]))
    assert placed(plan) == {
        "u0.service": M1,
        "u1.service": M2,
        "u2.service": M1,
        "u3.service": M2,
        "u4.service": M1,
    }


def test_existing_load_counts() -> None:
    units = [spec("old1.service"), spec("old2.service"), spec("new.service")]
    plan = schedule(snap(units, [machine(M1), machine(M2)], {"old1.service": M1, "old2.service": M1}))
    assert placed(plan) == {"new.service": M2}
    assert plan.evictions == () and plan.updates == ()


def test_placement_carries_hash_and_desired_state() -> None:
    plan = schedule(snap([spec("a.service", LOADED, hash="abc")], [machine(M1)]))
    assert plan.placements[0].assignment == Assignment("a.service", M1, "abc", LOADED)
    assert plan.placements[0].reason


def test_inactive_and_global_units_are_not_placed() -> None:
    units = [spec("off.service", INACTIVE), spec("g.service", is_global=True)]
    plan = schedule(snap(units, [machine(M1)]))
    assert plan == Decision()


def test_templates_are_pending() -> None:
    plan = schedule(snap([spec("web@.service")], [machine(M1)]))
    assert "template" in pending(plan)["web@.service"]
    assert plan.placements == ()


def test_no_machines() -> None:
    plan = schedule(snap([spec("a.service")], []))
    assert pending(plan) == {"a.service": "no machines in the cluster"}


def test_machine_id_full_or_short() -> None:
    units = [spec("a.service", machine_id=M2), spec("b.service", machine_id=M2[:8])]
    plan = schedule(snap(units, [machine(M1), machine(M2)]))
    assert placed(plan) == {"a.service": M2, "b.service": M2}


def test_machine_id_not_in_cluster() -> None:
    plan = schedule(snap([spec("a.service", machine_id="deadbeef")], [machine(M1)]))
    assert pending(plan) == {"a.service": "machine deadbeef (MachineID) is not in the cluster"}


def test_metadata_filters_machines() -> None:
    units = [spec(f"u{i}.service", metadata={"region": ("east",)}) for i in range(3)]
    machines = [machine(M1, region="west"), machine(M2, region="east"), machine(M3)]
    plan = schedule(snap(units, machines))
    assert set(placed(plan).values()) == {M2}


def test_metadata_mismatch_is_pending_with_reason() -> None:
    units = [spec("a.service", metadata={"region": ("east",)})]
    plan = schedule(snap(units, [machine(M1, region="west")]))
    assert pending(plan) == {"a.service": "no machine matches metadata region=east"}


def test_conflicts_spread_instances_one_per_machine() -> None:
    units = [spec(f"web@{i}.service", conflicts=("web@*.service",)) for i in range(1, 4)]
    plan = schedule(snap(units, [machine(M1), machine(M2)]))
    assert placed(plan) == {"web@1.service": M1, "web@2.service": M2}
    assert pending(plan) == {
        "web@3.service": "conflicts with web@1.service, web@2.service on every candidate"
    }


def test_conflicts_are_symmetric_with_existing_units() -> None:
    units = [spec("db.service", conflicts=("app.service",)), spec("app.service")]
    plan = schedule(snap(units, [machine(M1), machine(M2)], {"db.service": M1}))
    assert placed(plan) == {"app.service": M2}


def test_machine_of_follows_peer_placed_in_same_plan() -> None:
    units = [spec("a-sidekick.service", machine_of=("z-main.service",)), spec("z-main.service")]
    plan = schedule(snap(units, [machine(M1), machine(M2)], {}))
    assert placed(plan)["a-sidekick.service"] == placed(plan)["z-main.service"]


def test_machine_of_follows_existing_peer_even_if_loaded() -> None:
    units = [spec("main.service"), spec("x.service"), spec("side.service", machine_of=("main.service",))]
    plan = schedule(snap(units, [machine(M1), machine(M2)], {"main.service": M1, "x.service": M2}))
    assert placed(plan) == {"side.service": M1}


def test_machine_of_waits_for_unplaceable_peer() -> None:
    units = [spec("main.service", machine_id="deadbeef"), spec("side.service", machine_of=("main.service",))]
    plan = schedule(snap(units, [machine(M1)]))
    assert pending(plan)["side.service"] == "waiting for peer main.service"


def test_machine_of_cycle_stays_pending() -> None:
    units = [spec("a.service", machine_of=("b.service",)), spec("b.service", machine_of=("a.service",))]
    plan = schedule(snap(units, [machine(M1)]))
    assert pending(plan) == {
        "a.service": "waiting for peer b.service (MachineOf cycle)",
        "b.service": "waiting for peer a.service (MachineOf cycle)",
    }


def test_machine_of_peer_machine_refuses_follower() -> None:
    units = [
        spec("main.service"),
        spec("side.service", machine_of=("main.service",), metadata={"disk": ("ssd",)}),
    ]
    plan = schedule(snap(units, [machine(M1, disk="hdd")], {"main.service": M1}))
    assert pending(plan)["side.service"] == (
        "no machine matches metadata disk=ssd (machine 1a2b3c4d of peer main.service)"
    )


def test_machine_of_peers_on_different_machines() -> None:
    units = [spec("a.service"), spec("b.service"), spec("s.service", machine_of=("a.service", "b.service"))]
    plan = schedule(snap(units, [machine(M1), machine(M2)], {"a.service": M1, "b.service": M2}))
    assert "different machines" in pending(plan)["s.service"]


# --- evictions and updates ------------------------------------------------------------------


def test_evicts_when_machine_went_away_and_replaces() -> None:
    plan = schedule(snap([spec("a.service")], [machine(M2)], {"a.service": M1}))
    assert evicted(plan) == {"a.service": "machine 1a2b3c4d went away"}
    assert placed(plan) == {"a.service": M2}


def test_evicts_deleted_and_inactive_units() -> None:
    units = [spec("off.service", INACTIVE)]
    plan = schedule(snap(units, [machine(M1)], {"off.service": M1, "gone.service": M1}))
    assert evicted(plan) == {
        "off.service": "desired state is inactive",
        "gone.service": "unit no longer exists",
    }
    assert plan.placements == ()


def test_evicts_when_metadata_changed() -> None:
    units = [spec("a.service", metadata={"region": ("east",)})]
    plan = schedule(snap(units, [machine(M1, region="west")], {"a.service": M1}))
    assert evicted(plan) == {"a.service": "machine 1a2b3c4d does not match metadata region=east"}
    assert pending(plan) == {"a.service": "no machine matches metadata region=east"}


def test_evicts_later_of_two_conflicting_units() -> None:
    units = [spec("a.service", conflicts=("b.service",)), spec("b.service")]
    plan = schedule(snap(units, [machine(M1), machine(M2)], {"a.service": M1, "b.service": M1}))
    assert evicted(plan) == {"b.service": "conflicts with a.service on machine 1a2b3c4d"}
    assert placed(plan) == {"b.service": M2}


def test_follower_is_evicted_when_peer_moves() -> None:
    units = [spec("main.service"), spec("side.service", machine_of=("main.service",))]
    plan = schedule(snap(units, [machine(M2)], {"main.service": M1, "side.service": M2}))
    assert evicted(plan)["side.service"] == "peer main.service is not on machine 2b3c4d5e"
    assert placed(plan) == {"main.service": M2, "side.service": M2}


def test_update_when_hash_or_desired_state_changes() -> None:
    units = [spec("a.service", hash="new"), spec("b.service", LOADED)]
    s = snap(units, [machine(M1)], {"b.service": M1})
    s = Snapshot(
        s.units, s.machines, {**s.assignments, "a.service": Assignment("a.service", M1, "old", LAUNCHED)}
    )
    plan = schedule(s)
    assert {u.assignment for u in plan.updates} == {
        Assignment("a.service", M1, "new", LAUNCHED),
        Assignment("b.service", M1, "h1", LOADED),
    }
    assert plan.evictions == () and plan.placements == ()


def test_steady_state_is_empty() -> None:
    units = [spec("a.service"), spec("b.service")]
    plan = schedule(snap(units, [machine(M1), machine(M2)], {"a.service": M1, "b.service": M2}))
    assert plan.is_empty and plan == Decision()
