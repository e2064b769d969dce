"""Registry records <-> JSON text (pure). Field names follow fleet's camelCase API."""

from __future__ import annotations

import json

from fleetd.errors import InvalidInput
from fleetd.model.lifecycle import MachineState, Move
from fleetd.model.machine import Machine
from fleetd.model.resources import Resources
from fleetd.model.states import SystemdState, TargetState, UnitState
from fleetd.model.unit import Assignment, Unit


def _load(text: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"corrupt registry record: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("corrupt registry record: not an object")
    return data


def _dump(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def encode_unit(unit: Unit) -> str:
    record: dict[str, object] = {"name": unit.name, "hash": unit.hash, "desiredState": unit.desired.value}
    if unit.is_global:
        record["global"] = True
    return _dump(record)


def decode_unit(text: str) -> Unit:
    d = _load(text)
    return Unit(name=d["name"], hash=d["hash"], desired=TargetState(d["desiredState"]),
                is_global=bool(d.get("global", False)))


def encode_assignment(a: Assignment) -> str:
    return _dump({"hash": a.hash, "desiredState": a.desired.value})


def decode_assignment(machine: str, unit: str, text: str) -> Assignment:
    d = _load(text)
    return Assignment(unit=unit, machine=machine, hash=d["hash"],
                      desired=TargetState(d["desiredState"]))


def encode_machine(m: Machine) -> str:
    return _dump({"id": m.id, "primaryIP": m.ip, "metadata": dict(m.metadata),
                  "version": m.version, "disableEngine": m.disable_engine,
                  "capacity": {"cpu": m.capacity.cpu, "memory": m.capacity.memory}})


def decode_machine(text: str) -> Machine:
    d = _load(text)
    cap = d.get("capacity") or {}
    return Machine(id=d["id"], ip=d.get("primaryIP", ""), metadata=dict(d.get("metadata", {})),
                   version=d.get("version", ""), disable_engine=bool(d.get("disableEngine")),
                   capacity=Resources(cpu=int(cap.get("cpu", 0)), memory=int(cap.get("memory", 0))))


def encode_state(s: UnitState) -> str:
    record = {"hash": s.hash, "state": s.state.value, "load": s.systemd.load,
              "active": s.systemd.active, "sub": s.systemd.sub}
    return _dump(record | {"reason": s.reason} if s.reason else record)


def decode_state(unit: str, machine: str, text: str) -> UnitState:
    d = _load(text)
    return UnitState(name=unit, machine=machine, hash=d["hash"], state=TargetState(d["state"]),
                     systemd=SystemdState(load=d["load"], active=d["active"], sub=d["sub"]),
                     reason=str(d.get("reason", "")))


def encode_alarm(kind: str, machines: list[str], since: str, message: str) -> str:
    return _dump({"kind": kind, "machines": machines, "since": since, "message": message})


def decode_alarm(text: str) -> tuple[tuple[str, ...], str, str | None]:
    """An alarm record's machines, start time and message (None if it has none). A record
    that does not decode reads as naming nothing: an alarm is information, never an error."""
    try:
        data = _load(text)
    except InvalidInput:
        return (), "", None
    listed, since, message = data.get("machines"), data.get("since"), data.get("message")
    machines = tuple(m for m in listed if isinstance(m, str)) if isinstance(listed, list) else ()
    return (machines, since if isinstance(since, str) else "",
            message if isinstance(message, str) else None)


def encode_machine_state(s: MachineState) -> str:
    return _dump({"state": s.state, "since": s.since})


def decode_machine_state(text: str) -> MachineState | None:
    """A stored machine state; None for a record that does not decode (it counts as ready)."""
    try:
        data = _load(text)
    except InvalidInput:
        return None
    state, since = data.get("state"), data.get("since")
    if not isinstance(state, str) or not state:
        return None
    return MachineState(state=state, since=since if isinstance(since, str) else "")


def encode_move(m: Move) -> str:
    return _dump({"from": m.away, "to": m.to})


def decode_move(unit: str, text: str) -> Move | None:
    """A stored move request; None for a record that does not decode (it is ignored)."""
    try:
        data = _load(text)
    except InvalidInput:
        return None
    away, to = data.get("from"), data.get("to", "")
    if not isinstance(away, str) or not isinstance(to, str):
        return None
    return Move(unit=unit, away=away, to=to)


def encode_failure(digest: str) -> str:
    return _dump({"hash": digest})


def decode_failure(text: str) -> str | None:
    """The file hash a failure record names; None for a record that does not decode."""
    try:
        digest = _load(text).get("hash")
    except InvalidInput:
        return None
    return digest if isinstance(digest, str) else None
