"""Service discovery (pure): `[X-Fleet] Publish=PORT[/PROTO]` and the endpoint records agents publish.

Owns the option's syntax and messages (ports 1..65535, protocols tcp (the default) and udp,
several values or a space-separated list), the record an agent publishes while such a unit
is active on its machine (`endpoints/<unit>/<machine>`, on the machine's lease), the rule
that decides whether one is published, and the record's JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from fleetd.errors import InvalidInput, InvalidRequirements

PROTOCOLS = ("tcp", "udp")
MAX_PORT = 65535
PUBLISHED_WHILE = "active"  # systemd ActiveState under which a unit's endpoint is published


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """One port a unit serves on its machine's address."""

    port: int
    proto: str = "tcp"

    def __str__(self) -> str:
        return f"{self.port}/{self.proto}"


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """What endpoints/<unit>/<machine> holds: where `unit` answers on `machine` right now."""

    unit: str
    machine: str
    ip: str
    ports: tuple[Endpoint, ...]


def parse_publish(values: Iterable[str]) -> tuple[Endpoint, ...]:
    """`Publish=` values (each maybe a space-separated list) -> endpoints, in order, once each."""
    found = (parse_endpoint(word) for value in values for word in value.split())
    return tuple(dict.fromkeys(found))


def parse_endpoint(word: str) -> Endpoint:
    """`8080` or `8080/tcp` or `53/udp`; InvalidRequirements naming what is wrong otherwise."""
    port, slash, proto = word.partition("/")
    proto = proto.lower() if slash else "tcp"
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= MAX_PORT:
        raise InvalidRequirements(
            f'Publish: "{word}" is not PORT[/PROTO] with a port from 1 to {MAX_PORT}')
    if proto not in PROTOCOLS:
        raise InvalidRequirements(
            f'Publish: protocol of "{word}" must be {" or ".join(PROTOCOLS)}, not "{proto}"')
    return Endpoint(port=int(port), proto=proto)


def endpoint_record(unit: str, machine: str, ip: str, ports: tuple[Endpoint, ...],
                    active: str | None) -> EndpointRecord | None:
    """The record to publish for `unit` here, or None (nothing published, or not active)."""
    if not ports or active != PUBLISHED_WHILE:
        return None
    return EndpointRecord(unit=unit, machine=machine, ip=ip, ports=ports)


def encode_record(record: EndpointRecord) -> str:
    ports = [{"port": p.port, "proto": p.proto} for p in record.ports]
    return json.dumps({"unit": record.unit, "machine": record.machine, "ip": record.ip,
                       "ports": ports}, separators=(",", ":"), sort_keys=True)


def decode_record(text: str) -> EndpointRecord:
    """The record's JSON; InvalidInput if it is not one."""
    try:
        data = json.loads(text)
        ports = tuple(Endpoint(port=int(p["port"]), proto=str(p["proto"])) for p in data["ports"])
        return EndpointRecord(unit=str(data["unit"]), machine=str(data["machine"]),
                              ip=str(data.get("ip", "")), ports=ports)
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"corrupt endpoint record: {exc}") from exc
