"""API v1 endpoints: where the active units with `[X-Fleet] Publish=` answer right now.

GET /endpoints lists every published record (sorted by unit, then machine); GET
/endpoints/<unit> those of one unit: 404 if there is no such unit, an empty list if it
publishes nothing now. The records come from the registry's endpoints/ prefix, which agents
keep on their machines' leases (fleetd.agent.endpoints).
"""

from __future__ import annotations

from fleetd.api import schema
from fleetd.errors import NotFound
from fleetd.model.endpoints import EndpointRecord
from fleetd.model.names import validate_name
from fleetd.registry.endpoints import list_endpoints
from fleetd.registry.store import Registry

Result = tuple[int, schema.Wire | None]


def to_wire(record: EndpointRecord) -> schema.Endpoint:
    ports = [schema.EndpointPort(port=p.port, proto=p.proto) for p in record.ports]
    return schema.Endpoint(unit=record.unit, machine_id=record.machine, ip=record.ip, ports=ports)


async def list_all(reg: Registry) -> Result:
    records = await list_endpoints(reg)
    return 200, schema.EndpointList(endpoints=[to_wire(r) for r in records])


async def list_unit(reg: Registry, name: str) -> Result:
    validate_name(name)
    if await reg.get_unit(name) is None:
        raise NotFound("unit does not exist")
    records = await list_endpoints(reg, name)
    return 200, schema.EndpointList(endpoints=[to_wire(r) for r in records if r.unit == name])
