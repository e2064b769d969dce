"""Registry operations of the remote-command relay (exec/ and exec-out/ keys).

Owns how a request, its output records and their cleanup are written: the request on the
requesting fleetd's lease, the output records on the owning host's lease, so a crashed
requester's requests and a dead host's outputs vanish with their leases. See
`fleetd.model.remote` for the records and `fleetd.registry.keys` for the layout.
"""

from __future__ import annotations

from fleetd.model.remote import ExecRequest, Output, seq_name
from fleetd.registry.kv import Delete, Listing
from fleetd.registry.store import MAX_TXN_OPS, Registry


async def write_request(reg: Registry, machine_id: str, request_id: str, request: ExecRequest,
                        lease: int) -> int:
    """Ask `machine_id`; returns the revision of the write (watch its outputs from rev + 1)."""
    return await reg.kv.put(reg.keys.exec_request(machine_id, request_id), request.encode(), lease)


async def put_output(reg: Registry, request_id: str, seq: int, output: Output, lease: int) -> None:
    await reg.kv.put(reg.keys.exec_outputs(request_id) + seq_name(seq), output.encode(), lease)


async def delete_outputs(reg: Registry, request_id: str) -> None:
    """Remove every output record of `request_id` (idempotent)."""
    listing: Listing = await reg.kv.get_prefix(reg.keys.exec_outputs(request_id))
    keys = [item.key for item in listing.items]
    for start in range(0, len(keys), MAX_TXN_OPS):
        await reg.kv.txn([], [Delete(key) for key in keys[start : start + MAX_TXN_OPS]])


async def finish(reg: Registry, machine_id: str, request_id: str) -> None:
    """The requester is done: drop its request, then the outputs."""
    await reg.kv.delete(reg.keys.exec_request(machine_id, request_id))
    await delete_outputs(reg, request_id)
