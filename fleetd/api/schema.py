"""The API's wire models: fleet v1's JSON shapes (camelCase), strictly validated.

Owns what goes over the wire between fleetd and fleetctl. Unknown fields and wrong types are
refused (pydantic `ValidationError`, which the server answers with 400). No I/O.
"""

from __future__ import annotations

import json
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from fleetd.model.states import TargetState


def _json(name: str, **kwargs: Any) -> Any:
    """A field whose JSON name is `name` (fleet's camelCase) and whose Python name is snake_case."""
    return Field(validation_alias=name, serialization_alias=name, **kwargs)


class Wire(BaseModel):
    """Base: strict types, no unknown fields, Python names with fleet's JSON names."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, validate_by_name=True, validate_by_alias=True
    )

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Parse wire JSON: only fleet's camelCase names are accepted, never the Python ones."""
        return cls.model_validate_json(text, by_name=False)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class _Repeated(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Repeated(key)
        seen[key] = value
    return seen


def repeated_key(text: str) -> str | None:
    """The first key that appears twice in one object of the JSON `text`, None if none does
    (or `text` is not JSON: the model's own parse reports that). Every JSON parser keeps a
    different copy of a repeated key (ours the last), so a body with one is refused."""
    try:
        json.loads(text, object_pairs_hook=_unique_pairs)
    except _Repeated as repeated:
        return repeated.key
    except ValueError:
        return None
    return None


class UnitOption(Wire):
    section: str
    name: str
    value: str


class Unit(Wire):
    """A unit as the API shows it; also the body of PUT /units/<name> (all fields optional there).

    `current_state` and `machine_id` are read-only: derived by the server, ignored on PUT.
    """

    name: str | None = None
    options: list[UnitOption] | None = None
    desired_state: TargetState | None = _json("desiredState", default=None)
    current_state: TargetState | None = _json("currentState", default=None)
    machine_id: str | None = _json("machineID", default=None)
    pending_reason: str | None = _json("pendingReason", default=None)


class UnitPage(Wire):
    units: list[Unit]
    next_page_token: str | None = _json("nextPageToken", default=None)


MAX_BATCH = 10000  # entries in one POST /units


class UnitBatch(Wire):
    """The body of POST /units: entries shaped like PUT's body, each with its `name`."""

    units: list[Unit]


class UnitNames(Wire):
    """The body of DELETE /units: the units to destroy."""

    names: list[str]


class UnitResult(Wire):
    """What POST /units did with one entry: 201 created or replaced, 204 desired state set.

    An entry redone as a plain PUT after losing a race may instead carry that PUT's error
    status (404, 409) and `message`.
    """

    name: str
    status: int
    message: str | None = None


class UnitResults(Wire):
    results: list[UnitResult]


class UnitState(Wire):
    """What systemd reports for one unit on one machine."""

    name: str
    hash: str
    machine_id: str = _json("machineID")
    systemd_load_state: str = _json("systemdLoadState")
    systemd_active_state: str = _json("systemdActiveState")
    systemd_sub_state: str = _json("systemdSubState")
    reason: str | None = None  # why the agent refused the unit (e.g. an invalid name)


class StatePage(Wire):
    states: list[UnitState]
    next_page_token: str | None = _json("nextPageToken", default=None)


class Capacity(Wire):
    """What a machine offers units: CPU in millicores (1000 = one core), memory in bytes; 0 = unknown."""

    cpu: int = 0
    memory: int = 0


class Machine(Wire):
    """A live machine; `state` is ready, cordoned, draining or drained (fleetd.model.lifecycle)."""

    id: str
    primary_ip: str = _json("primaryIP", default="")
    metadata: dict[str, str] = Field(default_factory=dict)
    capacity: Capacity | None = None
    state: str | None = None


class MachineStateRequest(Wire):
    """The body of PUT /machines/<id>/state: ready (uncordon), cordoned or draining.
    `ifLocked` (with ready): only if the machine holds the maintenance lock (a boot-time unit)."""

    state: str
    if_locked: bool = _json("ifLocked", default=False)


class MachineStateChange(Wire):
    """What PUT /machines/<id>/state did: the machine it resolved to, its state before and now,
    and (uncordon) whether it gave up a maintenance lock."""

    machine_id: str = _json("machineID")
    previous: str
    state: str
    unlocked: bool = False


class LockRequest(Wire):
    """The body of POST /machines/<id>/lock: how many machines may hold the lock at once."""

    max_parallel: int = _json("maxParallel", default=1)


class LockHolder(Wire):
    machine_id: str = _json("machineID")
    slot: int
    since: str = ""


class LockState(Wire):
    """The maintenance lock after a request: the machine asked about and every holder."""

    machine_id: str = _json("machineID")
    held: bool
    holders: list[LockHolder] = Field(default_factory=list)


class MoveRequest(Wire):
    """The body of POST /units/<name>/move: the machine to move to (absent: the scheduler picks)."""

    machine_id: str | None = _json("machineID", default=None)


class MoveResult(Wire):
    """Where a move goes: the leader will place `name` on `to` (from `from`)."""

    name: str
    away: str = _json("from")
    to: str


class RebalanceMove(Wire):
    """One step of a rebalance plan: move `unit` from `from` to `to`, because `why`."""

    unit: str
    away: str = _json("from")
    to: str
    why: str


class RebalancePlan(Wire):
    moves: list[RebalanceMove]


class MachinePage(Wire):
    machines: list[Machine]
    next_page_token: str | None = _json("nextPageToken", default=None)


class Leader(Wire):
    """GET /leader: the machine whose engine leads now; no `machineID` while none does."""

    machine_id: str | None = _json("machineID", default=None)


class Alarm(Wire):
    """A condition the engine raised for operators (today: mass-failure, the rescheduling brake)."""

    kind: str
    message: str
    machines: list[str] = Field(default_factory=list)
    since: str = ""


class AlarmList(Wire):
    alarms: list[Alarm]


class EndpointPort(Wire):
    """One published port: `[X-Fleet] Publish=PORT[/PROTO]`."""

    port: int
    proto: str = "tcp"


class Endpoint(Wire):
    """Where an active unit with Publish= answers: its machine's address and its ports."""

    unit: str
    machine_id: str = _json("machineID")
    ip: str = ""
    ports: list[EndpointPort] = Field(default_factory=list)


class EndpointList(Wire):
    endpoints: list[Endpoint]


class ErrorDetail(Wire):
    code: int
    message: str


class ErrorBody(Wire):
    error: ErrorDetail

    @classmethod
    def of(cls, code: int, message: str) -> ErrorBody:
        return cls(error=ErrorDetail(code=code, message=message))
