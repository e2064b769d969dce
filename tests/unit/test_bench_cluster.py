"""Tier 1: the cluster benchmark's pure parts: process layout, unit mix, history, figures."""

from __future__ import annotations

import pytest

from bench import cluster_figures, cluster_history, cluster_load
from bench.cluster_history import Span, line
from fleetd.model.requirements import parse_requirements
from fleetd.model.unitfile import UnitFile


@pytest.mark.parametrize(("agents", "engines", "sizes"), [
    (20, 3, [1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]),
    (100, 3, [1, 1, 1, 1, *[10] * 9, 6]),
    (1000, 3, [1, 1, 1, 1, *[100] * 9, 96]),
    (5, 3, [1, 1, 1, 1, 1]),
])
def test_layout_whole_fleetds_then_one_lone_agent_then_tenths(agents: int, engines: int,
                                                               sizes: list[int]) -> None:
    processes = cluster_load.layout(agents, engines)
    assert [len(p.agents) for p in processes] == sizes
    assert [p.fleetd for p in processes] == [True] * engines + [False] * (len(sizes) - engines)
    assert sorted(i for p in processes for i in p.agents) == list(range(agents))
    assert processes[engines].name == "lone" and processes[engines + 1].name == "pack1"


@pytest.mark.parametrize(("agents", "engines"), [(4, 3), (10, 1)])
def test_layout_refuses_what_cannot_run_every_phase(agents: int, engines: int) -> None:
    with pytest.raises(ValueError):
        cluster_load.layout(agents, engines)


def test_unit_mix_adds_up_and_every_unit_parses_with_its_constraints() -> None:
    counts = cluster_load.unit_counts(10000, 100)
    assert counts == {"reserved": 4000, "pinned": 3000, "plain": 2950, "conflicting": 50}
    made = list(cluster_load.units(10000, 100))
    assert len(made) == len({name for name, _ in made}) == 10000
    assert made[0][0] == "bench-reserved@1.service" and made[1][0] == "bench-pinned-1.service"
    needs = {name.split("@")[0].rstrip("-0123456789"): parse_requirements(name, UnitFile.parse(text))
             for name, text in made}
    assert needs["bench-reserved"].resources.cpu == 100
    assert needs["bench-web"].conflicts == ("bench-web@*.service",)
    assert parse_requirements(cluster_load.GLOBAL, UnitFile.parse(cluster_load.global_text())).is_global


def test_machines_cover_every_zone_and_have_distinct_ids() -> None:
    machines = [cluster_load.machine(i) for i in range(8)]
    assert {m.metadata["zone"] for m in machines} == set(cluster_load.ZONES)
    assert len({m.id for m in machines}) == 8


def test_intervals_pair_changes_and_end_at_a_kill() -> None:
    lines = [line(1.0, "m1", "a.service", "active"), line(2.0, "m1", "a.service", "inactive"),
             line(3.0, "m2", "a.service", "activating"), line(3.5, "m2", "a.service", "active"),
             line(1.5, "m3", "b.service", "active")]
    spans = cluster_history.intervals(reversed(lines), killed={"m3": 4.0})
    assert spans == {"a.service": [Span("m1", 1.0, 2.0), Span("m2", 3.5, None)],
                     "b.service": [Span("m3", 1.5, 4.0)]}


@pytest.mark.parametrize(("spans", "duplicate"), [
    ([Span("m1", 1, 2), Span("m2", 3, None)], False),  # moved after it stopped
    ([Span("m1", 1, 3), Span("m2", 2, 4)], True),  # two machines at once
    ([Span("m1", 1, None), Span("m2", 2, 3)], True),  # never stopped on m1
    ([Span("m1", 1, 2), Span("m1", 1.5, 3)], False),  # one machine
    ([Span("m1", 1, 2), Span("m2", 2, 3)], False),  # one ended as the other began
])
def test_duplicates_are_overlaps_on_different_machines(spans: list[Span], duplicate: bool) -> None:
    assert cluster_history.duplicates({"u": spans}) == (["u"] if duplicate else [])
    assert cluster_history.duplicates({"u": spans}, everywhere={"u"}) == []


def test_lost_units_were_never_active() -> None:
    spans = {"a": [Span("m1", 1, None)]}
    assert cluster_history.lost(spans, ["a", "b"]) == ["b"]


def test_metric_sum_adds_every_sample_of_one_name() -> None:
    page = ("# TYPE grpc_server_msg_received_total counter\n"
            'grpc_server_msg_received_total{grpc_method="Range"} 12\n'
            'grpc_server_msg_received_total{grpc_method="LeaseKeepAlive"} 3.5e+01\n'
            'grpc_server_msg_received_total_other{grpc_method="Range"} 99\n')
    assert cluster_figures.metric_sum(page, cluster_figures.REQUESTS) == 47.0


def test_targets_and_zero_counters() -> None:
    figures = {"placed_s": 16.0, "active_s": 30, "list_units_s": 3, "lost": 0, "duplicates": 2}
    assert cluster_figures.misses(figures) == ["placed_s 16.0 > 15"]
    assert cluster_figures.nonzero(figures) == ["duplicates=2"]


def test_section_keeps_earlier_rows_and_appends_this_one() -> None:
    first = cluster_figures.section(None, {"agents": 100, "units": 10000, "lost": 0}, "notes")
    second = cluster_figures.section(first, {"agents": 1000, "units": 100000, "lost": 0}, "notes")
    rows = [r for r in second.splitlines() if r.startswith("| 1") or r.startswith("|  | 1")]
    assert len(rows) == 2 and "100000" in rows[1]
    assert second.count(cluster_figures.HEADER) == 1 and second.count("| placed_s <= 15 |") == 1
