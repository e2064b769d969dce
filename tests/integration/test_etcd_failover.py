"""EtcdKV against a 3-member etcd when the member it talks to is killed or frozen.

The client is given all three endpoints; gRPC's pick_first connects to the first one. That
member (the raft leader, or a follower) gets SIGKILL, or SIGSTOP (frozen: its TCP connections
stay up and nothing answers), while a writer puts a key every 30 ms
and `follow` watches the prefix. Writes must resume on the other members, each put with its
own fresh deadline, and the watch must deliver every acknowledged write exactly once, in order.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from fleetd.errors import ConfigError, RegistryUnavailable
from fleetd.registry.etcd import EtcdKV, grpc_target
from fleetd.registry.kv import WatchEvent
from fleetd.registry.watch import Backoff, follow

WRITE_FOR = 3.0
KILL_AT = 1.0


@dataclass
class Writes:
    acked: list[tuple[float, int]] = field(default_factory=list)  # (time, revision)
    failed: list[float] = field(default_factory=list)


async def write_steadily(kv: EtcdKV, prefix: str, kill: Callable[[], None]) -> Writes:
    loop = asyncio.get_running_loop()
    writes, start, killed, i = Writes(), loop.time(), False, 0
    while (now := loop.time() - start) < WRITE_FOR:
        if not killed and now >= KILL_AT:
            kill()
            killed = True
        try:
            writes.acked.append((loop.time() - start, await kv.put(f"{prefix}{i}", str(i))))
        except RegistryUnavailable:
            writes.failed.append(loop.time() - start)
        i += 1
        await asyncio.sleep(0.03)
    return writes


@pytest.mark.etcd
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "frozen"])
@pytest.mark.parametrize("victim_role", ["leader", "follower"])
async def test_losing_the_connected_member(etcd_cluster, victim_role: str, how: int) -> None:
    etcd_cluster.move_leader(0 if victim_role == "leader" else 1)
    kv = EtcdKV(etcd_cluster.endpoints, request_timeout=1.0)
    prefix = f"/failover/{uuid.uuid4().hex[:8]}/"
    start = await kv.put(prefix + "start", "")
    seen: list[int] = []
    errors: list[Exception] = []

    async def relist() -> int:
        raise AssertionError("nothing was compacted")

    def record(event: WatchEvent) -> None:
        seen.append(event.mod_revision)

    watcher = asyncio.create_task(follow(kv, prefix, start + 1, record, relist,
                                         backoff=Backoff(initial=0.05, cap=0.5),
                                         on_error=errors.append))
    try:
        writes = await write_steadily(kv, prefix, lambda: etcd_cluster.kill(0, how))
        last = writes.acked[-1][1]
        for _ in range(200):
            if seen and seen[-1] >= last:
                break
            await asyncio.sleep(0.025)
    finally:
        watcher.cancel()
        await kv.close()

    acked = [rev for _, rev in writes.acked]
    times = [0.0] + [t for t, _ in writes.acked]
    print(f"{victim_role}: {len(acked)} acked, {len(writes.failed)} failed, "
          f"max gap {max(b - a for a, b in zip(times, times[1:], strict=False)):.2f} s, "
          f"watch errors {len(errors)}")
    assert any(t > KILL_AT for t, _ in writes.acked[-5:]), "writes did not resume"
    resumed = next(t for t, _ in writes.acked if t > KILL_AT)
    assert resumed - KILL_AT < 2 * kv.request_timeout + 1.0, "writes stalled too long"
    assert errors, "the watch never broke: the client was not on the killed member"
    assert seen == sorted(set(seen)), "watch events duplicated or out of order"
    assert set(acked) <= set(seen), f"lost events: {sorted(set(acked) - set(seen))}"


@pytest.mark.parametrize(("endpoints", "target"), [
    (["http://10.213.0.1:12379", "http://127.0.0.1:2379"], "ipv4:10.213.0.1:12379,127.0.0.1:2379"),
    (["127.0.0.1"], "ipv4:127.0.0.1:2379"),
    (["http://[::1]:2379", "http://[fd00::2]:2379"], "ipv6:[::1]:2379,[fd00::2]:2379"),
    (["https://etcd.example:2379"], "dns:///etcd.example:2379"),
])
def test_endpoints_become_one_failover_target(endpoints: list[str], target: str) -> None:
    assert grpc_target(endpoints) == target


@pytest.mark.parametrize("endpoints", [[], ["http://a:1", "http://b:2"], ["ftp://10.0.0.1:1"],
                                       ["http://10.0.0.1:1", "http://[::1]:2"]])
def test_unusable_endpoint_lists_are_config_errors(endpoints: list[str]) -> None:
    with pytest.raises(ConfigError):
        grpc_target(endpoints)
