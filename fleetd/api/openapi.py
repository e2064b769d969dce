"""The API v1 described as an OpenAPI 3.1 document, built from the wire models in `schema`.

Owns the published contract: paths, parameters, request bodies, which statuses each operation
answers and with which body. Component schemas come from the pydantic models (fleet's camelCase
names), so the document cannot drift from what the server validates. Pure: no I/O; the server
serves `document_json()` at GET /fleet/v1/openapi.json.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from fleetd.api import schema
from fleetd.api.summary import Summary

PREFIX = "/fleet/v1"
_REF = "#/components/schemas/{model}"
_MODELS: tuple[type[schema.Wire], ...] = (
    schema.Unit, schema.UnitPage, schema.UnitBatch, schema.UnitNames, schema.UnitResults,
    schema.UnitState,
    schema.StatePage, schema.MachinePage, schema.AlarmList, schema.ErrorBody,
    schema.EndpointList, schema.Leader, Summary, schema.MachineStateRequest,
    schema.MachineStateChange, schema.MoveRequest, schema.MoveResult, schema.LockRequest,
    schema.LockState, schema.RebalancePlan,
)
_ERRORS = {
    400: "invalid input: body, unit name, options, [X-Fleet] requirements, desired state, token",
    404: "no such unit or state",
    409: "the request collides with the registry (see docs/api.md)",
    415: "Content-Type is not application/json (UTF-8)",
    503: "etcd is unavailable or did not answer in time",
}


def _ref(model: type[schema.Wire]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(schema_: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema_}}


def _responses(ok: dict[int, type[schema.Wire] | None], *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, model in ok.items():
        out[str(status)] = {"description": "success"}
        if model is not None:
            out[str(status)]["content"] = _json(_ref(model))
    for status in (*errors, 503):
        out[str(status)] = {"description": _ERRORS[status], "content": _json(_ref(schema.ErrorBody))}
    return out


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "string"}}


_TOKEN = _query("nextPageToken", "the token of the previous page's response")
_NAME = {"name": "name", "in": "path", "required": True, "description": "the unit's name",
         "schema": {"type": "string"}}


def _body(model: type[schema.Wire]) -> dict[str, Any]:
    return {"required": True, "content": _json(_ref(model))}


def _paths() -> dict[str, Any]:
    units = {
        "get": {"operationId": "listUnits", "summary": "Units sorted by name, one page; the "
                "filters combine with AND and pagination runs over what they keep",
                "parameters": [_query("unitName", "only names matching this glob (* ? [...])"),
                               _query("desiredState", "only this desired state: inactive, loaded "
                                      "or launched"),
                               _query("machineID", "only units placed on this machine"), _TOKEN],
                "responses": _responses({200: schema.UnitPage}, 400)},
        "post": {"operationId": "submitUnits", "summary": "Create, replace or set many units at once",
                 "requestBody": _body(schema.UnitBatch),
                 "responses": _responses({200: schema.UnitResults}, 400, 404, 409, 415)},
        "delete": {"operationId": "deleteUnits", "summary": "Destroy many units at once: one "
                   "result per name, 204 or 404", "requestBody": _body(schema.UnitNames),
                   "responses": _responses({200: schema.UnitResults}, 400, 415)},
    }
    unit = {
        "parameters": [_NAME],
        "get": {"operationId": "getUnit", "responses": _responses({200: schema.Unit}, 404)},
        "put": {"operationId": "putUnit", "summary": "Create (201), replace (201) or set the "
                "desired state (204)", "requestBody": _body(schema.Unit),
                "responses": _responses({201: None, 204: None}, 400, 404, 409, 415)},
        "delete": {"operationId": "deleteUnit", "responses": _responses({204: None}, 404)},
    }
    states = {"get": {
        "operationId": "listStates", "summary": "systemd states sorted by unit, then machine",
        "parameters": [_query("unitName", "only this unit"), _query("machineID", "only this machine"),
                       _TOKEN],
        "responses": _responses({200: schema.StatePage}, 400)}}
    state = {"parameters": [_NAME], "get": {
        "operationId": "getState", "responses": _responses({200: schema.UnitState}, 404)}}
    machines = {"get": {"operationId": "listMachines", "parameters": [_TOKEN],
                        "responses": _responses({200: schema.MachinePage}, 400)},
                "patch": _PATCH_MACHINES}
    alarms = {"get": {"operationId": "listAlarms", "summary": "Alarms the engine raised",
                      "responses": _responses({200: schema.AlarmList})}}
    alarm = {"parameters": [{"name": "kind", "in": "path", "required": True,
                             "description": "e.g. mass-failure", "schema": {"type": "string"}}],
             "delete": {"operationId": "clearAlarm", "summary": "Acknowledge an alarm (for "
                        "mass-failure: reschedule the units the brake holds)",
                        "responses": _responses({204: None}, 400, 404)}}
    endpoints = {"get": {"operationId": "listEndpoints", "summary": "Where the active units "
                         "with [X-Fleet] Publish= answer, sorted by unit then machine",
                         "responses": _responses({200: schema.EndpointList})}}
    unit_endpoints = {"parameters": [_NAME], "get": {
        "operationId": "getEndpoints", "summary": "One unit's endpoints ([] if none now)",
        "responses": _responses({200: schema.EndpointList}, 400, 404)}}
    leader = {"get": {"operationId": "getLeader", "summary": "The machine whose engine leads now "
                      "(no machineID while none does)", "responses": _responses({200: schema.Leader})}}
    overview = {"get": {"operationId": "getSummary", "summary": "The whole cluster in one answer "
                        "(the dashboard's data): machines with their load, units with placement, "
                        "pending reason, demand and systemd state per host, leader, alarms",
                        "responses": _responses({200: Summary})}}
    return {
        f"{PREFIX}/leader": leader, f"{PREFIX}/summary": overview,
        f"{PREFIX}/endpoints": endpoints, f"{PREFIX}/endpoints/{{name}}": unit_endpoints,
        f"{PREFIX}/alarms": alarms, f"{PREFIX}/alarms/{{kind}}": alarm,
        f"{PREFIX}/units": units, f"{PREFIX}/units/{{name}}": unit, f"{PREFIX}/state": states,
        f"{PREFIX}/state/{{name}}": state, f"{PREFIX}/machines": machines,
        f"{PREFIX}/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": _json({"type": "object"})}}}},
        f"{PREFIX}/discovery": {"get": {
            "operationId": "discovery", "summary": "This document (fleet served Google-discovery JSON)",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": _json({"type": "object"})}}}},
        f"{PREFIX}/watch": _WATCH,
        **_remote_paths(),
        **_lifecycle_paths(),
    }


_PATCH_VALUE = {"description": 'fleet\'s code sends {"value": "x"}, its docs "x"; both mean "x"',
                "oneOf": [{"type": "string"}, {"type": "object", "required": ["value"],
                          "properties": {"value": {"type": "string"}},
                          "additionalProperties": False}]}
_PATCH_OP = {"type": "object", "required": ["op", "path"], "additionalProperties": False,
             "properties": {"op": {"enum": ["add", "replace", "remove"]},
                            "path": {"type": "string", "description": "/<machineID>/metadata/<key>",
                                     "pattern": "^/[A-Za-z0-9_.-]+/metadata/[A-Za-z0-9_.-]+$"},
                            "value": _PATCH_VALUE}}
_PATCH_MACHINES = {
    "operationId": "patchMachines",
    "summary": "Set or remove dynamic machine metadata (all ops validated, then applied at once)",
    "requestBody": {"required": True, "content": _json({"type": "array", "items": _PATCH_OP})},
    "responses": _responses({204: None}, 400, 415)}
_WATCH = {"get": {
    "operationId": "watch",
    "summary": "Server-sent events: a `snapshot` event, then one event per change of a unit, "
               "state or machine (`id:` is the etcd revision; send it back as Last-Event-ID to "
               "resume); `error` ends the stream (e.g. a client too slow); `: keep-alive` every 15 s",
    "parameters": [_query("kinds", "comma list of units, states, machines, endpoints (default: "
                          "these four), assignments, pending, leader, alarms, machine-states "
                          "(only when named)"),
                   {"name": "Last-Event-ID", "in": "header", "required": False,
                    "description": "resume after this etcd revision", "schema": {"type": "string"}}],
    "responses": {"200": {"description": "an endless text/event-stream",
                          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                  **_responses({}, 400)}}}


def _remote_paths() -> dict[str, Any]:
    """status / journal / restart, relayed to the unit's host (fleetd.api.relay)."""
    ndjson = {"200": {"description": 'NDJSON lines {"machine","data"}, then {"machine","exit"} '
                      '(or {"machine","error"}) per machine',
                      "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
              **_responses({}, 400, 404, 409),
              "504": {"description": "the unit's host did not answer within 10 s",
                      "content": _json(_ref(schema.ErrorBody))}}
    journal = [_query("lines", "how many lines before following (default 10, at most 10000)"),
               _query("follow", "true: keep streaming new lines until the client disconnects"),
               _query("output", "journalctl's --output mode (default short)")]
    return {
        f"{PREFIX}/units/{{name}}/status": {"parameters": [_NAME], "get": {
            "operationId": "unitStatus", "summary": "systemctl status on the unit's host(s)",
            "responses": ndjson}},
        f"{PREFIX}/units/{{name}}/journal": {"parameters": [_NAME], "get": {
            "operationId": "unitJournal", "summary": "journalctl of the unit on its host",
            "parameters": journal, "responses": ndjson}},
        f"{PREFIX}/units/{{name}}/restart": {"parameters": [_NAME], "post": {
            "operationId": "restartUnit", "summary": "systemctl restart on the unit's host(s)",
            "responses": ndjson}},
    }


_MACHINE = {"name": "machine", "in": "path", "required": True,
            "description": "a machine id, a unique prefix of one, or self (this fleetd's machine)",
            "schema": {"type": "string"}}


def _lifecycle_paths() -> dict[str, Any]:
    """Cordon, drain, uncordon (fleetd.api.lifecycle); move (fleetd.api.moves)."""
    return {
        f"{PREFIX}/machines/{{machine}}/state": {"parameters": [_MACHINE], "put": {
            "operationId": "setMachineState", "summary": "Cordon (cordoned), drain (draining) or "
            "uncordon (ready) a machine; a state it is in already changes nothing",
            "requestBody": _body(schema.MachineStateRequest),
            "responses": _responses({200: schema.MachineStateChange}, 400, 404, 415)}},
        f"{PREFIX}/machines/{{machine}}/lock": {"parameters": [_MACHINE], "post": {
            "operationId": "lockMachine", "summary": "Take (or keep) a slot of the cluster-wide "
            "maintenance lock for the machine: at most maxParallel machines hold it; 409 while "
            "it is busy", "requestBody": _body(schema.LockRequest),
            "responses": _responses({200: schema.LockState}, 400, 404, 409, 415)},
            "delete": {"operationId": "unlockMachine", "summary": "Release the machine's slot "
                       "(a holder that will not come back)",
                       "responses": _responses({200: schema.LockState}, 400, 404)}},
        f"{PREFIX}/rebalance": {"get": {
            "operationId": "rebalancePlan", "summary": "The moves that would restore the spread or "
            "binpack goal now, in order (nothing is written; fleetctl rebalance makes them)",
            "parameters": [_query("maxMoves", "at most this many moves (1..1000, default 20)")],
            "responses": _responses({200: schema.RebalancePlan}, 400)}},
        f"{PREFIX}/units/{{name}}/move": {"parameters": [_NAME], "post": {
            "operationId": "moveUnit", "summary": "Re-place one unit: on machineID (an id, a "
            "unique prefix or self) or wherever the scheduler puts it now, never where it is; "
            "checked first (409 with the reason, nothing written), then done by the leader",
            "requestBody": _body(schema.MoveRequest),
            "responses": _responses({202: schema.MoveResult}, 400, 404, 409, 415)}},
    }


def _components() -> dict[str, Any]:
    _, defs = models_json_schema([(m, "validation") for m in _MODELS], ref_template=_REF,
                                 by_alias=True)
    return defs.get("$defs", {})


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of API v1 (the same routes also answer under /v1-alpha)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "fleetd API", "version": "v1",
                 "description": "fleet's API v1 with fleetd's extensions; see docs/api.md."},
        "paths": _paths(),
        "components": {"schemas": _components()},
    }


@cache
def document_json() -> str:
    """`document()` as JSON text, built once."""
    return json.dumps(document(), separators=(",", ":"))


def pretty_json() -> str:
    """The document as docs/openapi.json holds it (`python -m fleetd.api.openapi > docs/openapi.json`)."""
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(pretty_json(), end="")
