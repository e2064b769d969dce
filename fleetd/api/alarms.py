"""API v1 alarms: what the engine raised for operators (GET), and their acknowledgement (DELETE).

The leader writes alarms/<kind> (today only `mass-failure`, see fleetd.engine.departure_memory); deleting
it is how an operator confirms that the machines the brake holds are gone.
"""

from __future__ import annotations

import re

from fleetd.api import schema
from fleetd.errors import InvalidInput, NotFound
from fleetd.registry import codec
from fleetd.registry.store import Registry

Result = tuple[int, schema.Wire | None]
KIND = re.compile(r"[a-z][a-z0-9-]{0,63}")


def to_wire(kind: str, record: str) -> schema.Alarm:
    machines, since, message = codec.decode_alarm(record)
    return schema.Alarm(kind=kind, message=record if message is None else message,
                        machines=list(machines), since=since)


async def list_alarms(reg: Registry) -> Result:
    alarms = await reg.list_alarms()
    return 200, schema.AlarmList(alarms=[to_wire(k, v) for k, v in sorted(alarms.items())])


async def clear_alarm(reg: Registry, kind: str) -> Result:
    if not KIND.fullmatch(kind):
        raise InvalidInput(f"{kind!r} is not an alarm kind (lower-case letters, digits and '-')")
    if not await reg.clear_alarm(kind):
        raise NotFound(f"no alarm {kind!r} is raised")
    return 204, None
