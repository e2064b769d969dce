"""The publisher's share of service discovery: which endpoint records this host must change.

While a fleet unit with `[X-Fleet] Publish=` is active here, endpoints/<unit>/<this machine>
holds its ports at this machine's address; when it stops, fails or leaves the host the record
is deleted. The publisher asks `changes` for the units it is writing and sends the result in
the same txns as their states; `written` records what etcd accepted, `forget` (after a new
lease) makes everything due again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from fleetd.agent.local import HostUnits
from fleetd.model.endpoints import EndpointRecord, endpoint_record
from fleetd.model.states import SystemdState


class EndpointBook:
    """The endpoint records this host has published, and what to change next."""

    def __init__(self, machine: str, ip: str, host: HostUnits) -> None:
        self.machine = machine
        self.ip = ip
        self.host = host
        self.published: dict[str, EndpointRecord] = {}

    def changes(self, names: Collection[str], known: Mapping[str, SystemdState]
                ) -> tuple[list[EndpointRecord], list[str]]:
        """(records to put, units whose record to delete) for the units `names` just written."""
        wanted = {}
        for name in names:
            state = known.get(name)
            record = endpoint_record(name, self.machine, self.ip, self.host.published.get(name, ()),
                                     state.active if state else None)
            if record is not None:
                wanted[name] = record
        changed = [r for n, r in sorted(wanted.items()) if self.published.get(n) != r]
        gone = [n for n in sorted(self.published) if n not in wanted
                and (n in names or n not in self.host.files or n not in known)]
        return changed, gone

    def written(self, changed: list[EndpointRecord], gone: list[str]) -> None:
        self.published.update((r.unit, r) for r in changed)
        for name in gone:
            self.published.pop(name, None)

    def forget(self) -> None:
        self.published.clear()
