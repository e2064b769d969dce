"""PATCH /fleet/v1/machines: fleet's dynamic machine metadata, with no HTTP library in sight.

Owns the request body (a JSON array of {op, path, value}; validated whole by
`fleetd.model.metapatch` before anything is written) and the answer (204). The machines need not
be registered; the ops land in one txn (`fleetd.registry.metadata.patch`).
"""

from __future__ import annotations

import json
from typing import Any, Self

from fleetd.api import schema
from fleetd.api.handlers import Result
from fleetd.errors import InvalidInput
from fleetd.model.metapatch import parse_ops
from fleetd.registry import metadata
from fleetd.registry.store import Registry


class MetadataPatch(schema.Wire):
    """The decoded body: fleet's operations, not yet validated (see `patch_machines`)."""

    ops: list[Any]

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"unable to decode body: {exc}") from exc
        if not isinstance(data, list):
            raise InvalidInput("unable to decode body: expected a JSON array of operations")
        return cls(ops=data)


async def patch_machines(reg: Registry, body: MetadataPatch) -> Result:
    """Validate every op, then apply them in order, atomically."""
    await metadata.patch(reg, parse_ops(body.ops))
    return 204, None
