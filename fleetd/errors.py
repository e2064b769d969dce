"""fleetd's error tree. Adapters translate their libraries' errors into these.

    FleetError
    ├── InvalidInput          bad input from a user: HTTP 400, fleetctl exit 1
    │   ├── InvalidUnitName
    │   ├── InvalidUnitFile
    │   ├── InvalidRequirements
    │   └── InvalidState      an illegal desired-state change (e.g. activating a template)
    ├── NotFound              HTTP 404
    ├── Conflict              HTTP 409
    ├── ConfigError           fleetd cannot start: names the offending key
    ├── RegistryUnavailable   etcd cannot be reached now (transient): HTTP 503
    │   └── Compacted         a watch asked for a revision etcd has compacted away
    ├── Fenced                a leader write was refused: this process is no longer leader
    └── UnitManagerError      systemd refused or failed an operation
"""

from __future__ import annotations


class FleetError(Exception):
    """Base of every error fleetd raises on purpose."""


class InvalidInput(FleetError):
    """The caller sent something fleetd will not store or act on."""


class InvalidUnitName(InvalidInput):
    """A unit name systemd or fleet would refuse."""


class InvalidUnitFile(InvalidInput):
    """A unit file that cannot be parsed."""


class InvalidRequirements(InvalidInput):
    """An [X-Fleet] section whose options contradict each other."""


class InvalidState(InvalidInput):
    """A desired state that is unknown or not allowed for this unit."""


class NotFound(FleetError):
    """The named unit, machine or state does not exist."""


class Conflict(FleetError):
    """The request collides with what the registry holds."""


class ConfigError(FleetError):
    """fleetd's configuration is invalid; the message names the key."""


class RegistryUnavailable(FleetError):
    """etcd could not be reached, or did not answer in time (outcome unknown for writes)."""


class Compacted(RegistryUnavailable):
    """A watch start revision was compacted; the reader must relist."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted; oldest available is {compact_revision}")
        self.compact_revision = compact_revision


class Fenced(FleetError):
    """A write guarded by the leader's fencing token was refused."""


class UnitManagerError(FleetError):
    """systemd refused or failed an operation on a unit."""
