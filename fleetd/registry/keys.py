"""The registry's key layout under the configured prefix (pure).

    <prefix>units/<name>              unit record: name, file hash, desired state
    <prefix>files/<sha256>            unit file text, content-addressed, create-only
    <prefix>machines/<id>             presence: address, metadata; on the machine's lease
    <prefix>assign/<machine>/<unit>   placement by the leader: hash + desired state
    <prefix>global/<unit>             copy of a global unit's record (every agent watches this)
    <prefix>pending/<unit>            why the leader cannot place the unit now (text)
    <prefix>states/<unit>/<machine>   systemd state reported by that machine; on its lease
    <prefix>endpoints/<unit>/<machine>  where an active unit with Publish= answers; on its lease
    <prefix>leader                    engine leader's machine id, on the leader's lease
    <prefix>alarms/<kind>             a condition the leader raised for operators (JSON)
    <prefix>exec/<machine>/<id>       a status/journal/restart request for that machine; on
                                      the requesting fleetd's lease
    <prefix>exec-out/<id>/<seq>       the owning host's output for request <id>; on its lease
    <prefix>metadata/<machine>        dynamic metadata set by PATCH /machines (JSON map; no lease)
    <prefix>machine-state/<machine>   cordoned or draining, set by an operator (JSON; no lease)
    <prefix>moves/<unit>              an operator's request to move a unit (JSON; the leader
                                      deletes it once the unit moved, or could not)
    <prefix>maintenance/<slot>        the maintenance lock: slot 0..N-1 of the semaphore, held by a
                                      machine (JSON), on a lease of its own that the holder's
                                      fleetd keeps alive
    <prefix>failed/<unit>/<machine>   the unit (RescheduleOnFailure=true) failed there: the file
                                      hash that failed (JSON; no lease: the leader forgets it
                                      once the unit is gone or has a new file)
"""

from __future__ import annotations

from dataclasses import dataclass


def normalize_prefix(prefix: str) -> str:
    """Always exactly one leading and one trailing slash."""
    return "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds and splits registry keys for one prefix."""

    prefix: str

    @property
    def units(self) -> str:
        return f"{self.prefix}units/"

    @property
    def files(self) -> str:
        return f"{self.prefix}files/"

    @property
    def machines(self) -> str:
        return f"{self.prefix}machines/"

    @property
    def assign(self) -> str:
        return f"{self.prefix}assign/"

    @property
    def globals(self) -> str:
        return f"{self.prefix}global/"

    @property
    def pending(self) -> str:
        return f"{self.prefix}pending/"

    @property
    def states(self) -> str:
        return f"{self.prefix}states/"

    @property
    def alarms(self) -> str:
        return f"{self.prefix}alarms/"

    def alarm(self, kind: str) -> str:
        return f"{self.alarms}{kind}"

    def exec_requests(self, machine_id: str) -> str:
        return f"{self.prefix}exec/{machine_id}/"

    def exec_request(self, machine_id: str, request_id: str) -> str:
        return f"{self.exec_requests(machine_id)}{request_id}"

    def exec_outputs(self, request_id: str) -> str:
        return f"{self.prefix}exec-out/{request_id}/"

    def machine_metadata(self, machine_id: str) -> str:
        return f"{self.prefix}metadata/{machine_id}"

    @property
    def machine_states(self) -> str:
        return f"{self.prefix}machine-state/"

    def machine_state(self, machine_id: str) -> str:
        return f"{self.machine_states}{machine_id}"

    @property
    def moves(self) -> str:
        return f"{self.prefix}moves/"

    def move(self, unit: str) -> str:
        return f"{self.moves}{unit}"

    @property
    def maintenance(self) -> str:
        return f"{self.prefix}maintenance/"

    def maintenance_slot(self, slot: int) -> str:
        return f"{self.maintenance}{slot}"

    @property
    def failures(self) -> str:
        return f"{self.prefix}failed/"

    def failure(self, unit: str, machine_id: str) -> str:
        return f"{self.failures}{unit}/{machine_id}"

    @property
    def leader(self) -> str:
        return f"{self.prefix}leader"

    def unit(self, name: str) -> str:
        return f"{self.units}{name}"

    def file(self, digest: str) -> str:
        return f"{self.files}{digest}"

    def machine(self, machine_id: str) -> str:
        return f"{self.machines}{machine_id}"

    def assigned_to(self, machine_id: str) -> str:
        return f"{self.assign}{machine_id}/"

    def assignment(self, machine_id: str, unit: str) -> str:
        return f"{self.assign}{machine_id}/{unit}"

    def global_unit(self, name: str) -> str:
        return f"{self.globals}{name}"

    def pending_reason(self, name: str) -> str:
        return f"{self.pending}{name}"

    def unit_states(self, unit: str) -> str:
        return f"{self.states}{unit}/"

    def state(self, unit: str, machine_id: str) -> str:
        return f"{self.states}{unit}/{machine_id}"

    @property
    def endpoints(self) -> str:
        return f"{self.prefix}endpoints/"

    def unit_endpoints(self, unit: str) -> str:
        return f"{self.endpoints}{unit}/"

    def endpoint(self, unit: str, machine_id: str) -> str:
        return f"{self.endpoints}{unit}/{machine_id}"

    def last_segment(self, key: str) -> str:
        return key.rsplit("/", 1)[-1]

    def split_pair(self, key: str, under: str) -> tuple[str, str]:
        """`<under><a>/<b>` -> (a, b), e.g. an assignment key -> (machine, unit)."""
        first, _, second = key[len(under):].partition("/")
        return first, second
