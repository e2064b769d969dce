"""The dynamic-metadata overlay (fleetd.agent.metadata): a failed put is retried on redelivery."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from fleetd.agent.metadata import MetadataOverlay
from fleetd.errors import RegistryUnavailable
from fleetd.model.machine import Machine
from fleetd.registry.keys import Keys
from fleetd.registry.kv import WatchEvent
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

ID = "a" * 32


@dataclass
class FakeHeart:
    """The two fields the overlay reads and writes on fleetd.agent.heart.Heart."""

    machine: Machine
    lease: int = 7


class FlakyRegistry(Registry):
    """A registry whose next `failures` machine registrations fail as an etcd outage would."""

    def __init__(self, failures: int) -> None:
        super().__init__(MemoryKV(), Keys("/test/"))
        self.failures = failures
        self.written: list[Machine] = []

    async def register_machine(self, machine: Machine, lease: int) -> None:
        if self.failures:
            self.failures -= 1
            raise RegistryUnavailable("etcd unavailable: deadline exceeded")
        self.written.append(machine)


def _overlay(failures: int) -> tuple[MetadataOverlay, FlakyRegistry, list[Machine]]:
    registry = FlakyRegistry(failures)
    heart = FakeHeart(Machine(id=ID, ip="10.0.0.1", metadata={"host": "h1"}))
    told: list[Machine] = []
    return MetadataOverlay(registry, heart, told.append), registry, told  # type: ignore[arg-type]


def _put(overlay: MetadataOverlay, value: dict[str, str]) -> WatchEvent:
    return WatchEvent(kind="put", key=overlay.key, value=json.dumps(value), mod_revision=5)


async def test_a_put_that_failed_is_written_when_the_event_comes_again() -> None:
    overlay, registry, told = _overlay(failures=1)
    await overlay.describe()  # the heart's registration
    event = _put(overlay, {"role": "web"})
    with pytest.raises(RegistryUnavailable):
        await overlay._on_event(event)  # the watch supervisor redelivers from this revision
    await overlay._on_event(event)
    assert [dict(m.metadata) for m in registry.written] == [{"host": "h1", "role": "web"}]
    assert len(told) == 2  # the agent heard of the registered record, then of the change once


async def test_an_unchanged_record_is_not_written_again() -> None:
    overlay, registry, _ = _overlay(failures=0)
    await overlay.describe()
    await overlay._on_event(_put(overlay, {}))  # what the heart registered already
    await overlay._on_event(_put(overlay, {"role": "db"}))
    await overlay._on_event(_put(overlay, {"role": "db"}))
    assert [dict(m.metadata) for m in registry.written] == [{"host": "h1", "role": "db"}]
