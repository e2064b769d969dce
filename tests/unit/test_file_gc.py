"""Unit-file cleanup: the pure grace rule, the guarded deletions, and the leader doing it."""

from __future__ import annotations

import pytest
from test_engine_loop import Rig, rig  # noqa: F401  (the fixture)
from test_loops import eventually_async

from bench.file_gc import markdown
from fleetd.engine import file_gc
from fleetd.engine.file_gc import FileCollector
from fleetd.model.states import TargetState
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry.files import delete_files


@pytest.mark.parametrize("files, referenced, since, now, doomed", [
    ({"a": 5}, {"a"}, {}, 100.0, []),  # referenced: never
    ({"a": 5}, set(), {}, 100.0, []),  # first seen unreferenced now: wait the grace
    ({"a": 5}, set(), {("a", 5): 30.0}, 100.0, [("a", 5)]),
    ({"a": 5}, set(), {("a", 5): 50.0}, 100.0, []),  # 50 s < 60 s
    ({"a": 7}, set(), {("a", 5): 10.0}, 100.0, []),  # written again since: the clock restarts
])
def test_due(files, referenced, since, now, doomed) -> None:
    kept, found = file_gc.due(files, referenced, since, now, 60.0)
    assert found == doomed
    assert set(kept) == {(d, r) for d, r in files.items() if d not in referenced}


def version(n: int) -> UnitFile:
    return UnitFile.parse(f"[Service]\nExecStart=/bin/sleep {n}\n")


async def test_the_leader_deletes_old_versions_after_the_grace(rig: Rig) -> None:  # noqa: F811
    rig.engine.file_gc_grace = 0.2
    await rig.start()
    first = version(0)
    assert await rig.registry.create_unit(Unit("a.service", first.hash, TargetState.LAUNCHED),
                                          first.serialize())
    for n in range(1, 6):
        text = version(n)
        assert await rig.registry.replace_unit(Unit("a.service", text.hash, TargetState.LAUNCHED),
                                               text.serialize())
    keys = rig.keys

    async def one_left() -> bool:
        return [kv.key for kv in (await rig.memory.get_keys(keys.files)).items] == [
            keys.file(version(5).hash)]

    await eventually_async(one_left, timeout=5)


async def test_a_file_written_again_is_never_deleted(rig: Rig) -> None:  # noqa: F811
    keys, registry = rig.keys, rig.registry
    token = await rig.memory.put(keys.leader, "e" * 32)  # the leader key's create revision
    await registry.kv.put(keys.file("h1"), "[Service]\nExecStart=/bin/true\n")
    now = [0.0]
    deleted: list[int] = []
    collector = FileCollector(registry, 10.0, lambda: now[0], deleted.append)
    assert await collector.collect([], token) == 0  # seen unreferenced at t=0
    await registry.kv.put(keys.file("h1"), "[Service]\nExecStart=/bin/true\n")  # a create re-puts it
    now[0] = 11.0
    assert await collector.collect([], token) == 0 and deleted == []
    now[0] = 22.0
    assert await collector.collect([], token) == 1 and deleted == [1]


async def test_guards_refuse_a_stale_revision_or_a_deposed_leader(rig: Rig) -> None:  # noqa: F811
    keys, registry = rig.keys, rig.registry
    token = await rig.memory.put(keys.leader, "e" * 32)
    revs = {d: await registry.kv.put(keys.file(d), "x") for d in ("a", "b", "c")}
    assert await delete_files(registry, token + 1000, [("a", revs["a"])]) == []
    stale = [("a", revs["a"]), ("b", revs["b"] - 1), ("c", revs["c"])]
    assert await delete_files(registry, token, stale) == [("a", revs["a"]), ("c", revs["c"])]
    assert [kv.key for kv in (await rig.memory.get_keys(keys.files)).items] == [keys.file("b")]


def test_the_benchmark_section_says_what_it_measured() -> None:
    figures = {"versions": 1000, "files_before": 1000, "files_after": 1, "deleted": 999,
               "grace_s": 1.0, "submit_s": 1.0, "cleaned_after_s": 1.6}
    text = markdown(figures, "python -m bench.file_gc --versions 1000", "a test machine")
    assert "files/ held **1000** keys, then **1** after 1.6 s (999 deletions counted" in text
