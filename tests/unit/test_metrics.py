"""Metrics: reason categories (pure), the Prometheus registry fleetd owns, GET /metrics, and what
the engine and the etcd adapter report through the `Recorder` port.

The exposition is parsed back with prometheus_client's own text parser, as a scraper would.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_engine_loop import Rig, placed_count  # the engine over the in-memory registry
from test_scheduler import pending
from test_scheduler_rules import G, machine, snap, spec  # the scheduler's table helpers

from bench.etcd_server import free_ports
from fleetd.api.http import make_app, serve
from fleetd.engine.scheduler import schedule
from fleetd.errors import RegistryUnavailable
from fleetd.metrics import Metrics
from fleetd.observe import PENDING_CATEGORIES, NoRecorder, by_category, category
from fleetd.registry.etcd import EtcdKV
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

M1, M2 = "1a2b3c4d" + "0" * 24, "2b3c4d5e" + "0" * 24


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition: (name, sorted labels) -> value."""
    text = metrics.render()[0].decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


# reason categories ---------------------------------------------------------------------------


@pytest.mark.parametrize(("reason", "expected"), [
    ("insufficient memory: needs 2G, largest free 1G", "resources"),
    ("conflicts with x.service, y.service on every candidate", "conflicts"),
    ("replaced by b.service on every candidate", "replaced"),
    ("follows a unit replaced by b.service (MachineOf, Replaces)", "replaced"),
    ("waiting for peer db.service", "peer"),
    ("waiting for peer a.service (MachineOf cycle)", "peer"),
    ("peers a.service, b.service are on different machines", "peer"),
    ("peer db.service is not on machine 1a2b3c4d", "peer"),
    ("no machine matches metadata zone=b", "metadata"),
    ("2 machines do not match metadata disk=ssd", "metadata"),
    ("machine 1a2b3c4d does not match metadata disk=ssd", "metadata"),
    ("machine deadbeef (MachineID) is not in the cluster", "machine_id"),
    ("machine 1a2b3c4d is not deadbeef (MachineID)", "machine_id"),
    ("no machines in the cluster", "no_machines"),
    ("a template cannot be scheduled; start its instances", "template"),
    ("machine 1a2b3c4d vanished in a mass failure; the brake holds its units", "mass_failure"),
    ("machine 1a2b3c4d went away", "machine_gone"),
    ("unit no longer exists", "unit_removed"),
    ("desired state is inactive", "desired_state"),
    ("global units are not placed by the engine", "global"),
    ("something new", "other"),
])
def test_each_reason_falls_in_its_category(reason: str, expected: str) -> None:
    assert category(reason) == expected


def test_names_and_metadata_inside_a_reason_do_not_change_its_category() -> None:
    assert category("no machine matches metadata role=template, peer=x") == "metadata"
    assert category("conflicts with template-peer.service on 1 machine") == "conflicts"


def test_the_reasons_the_scheduler_gives_are_all_known() -> None:
    units = [spec("big.service", memory=2 * G), spec("pin.service", machine_id="deadbeef"),
             spec("ssd.service", metadata=("disk=ssd",)), spec("web@.service"),
             spec("a.service", conflicts=("b.service",)), spec("b.service")]
    plan = schedule(snap(units, [machine(M1, memory=G)], {"b.service": M1}))
    found = {unit: category(reason) for unit, reason in pending(plan).items()}
    assert found == {"big.service": "resources", "pin.service": "machine_id",
                     "ssd.service": "metadata", "web@.service": "template", "a.service": "conflicts"}


def test_counts_by_category_classify_each_distinct_reason_once() -> None:
    reasons = ["no machines in the cluster"] * 3 + ["waiting for peer x.service"]
    assert by_category(reasons) == {"no_machines": 3, "peer": 1}


# the metrics registry ------------------------------------------------------------------------


def test_every_series_is_there_before_anything_happened() -> None:
    metrics = Metrics()
    assert value(metrics, "fleet_engine_is_leader") == 0
    assert value(metrics, "fleet_engine_placements_total") == 0
    assert value(metrics, "fleet_engine_pending_units", reason="resources") == 0
    assert value(metrics, "fleet_engine_evictions_total", reason="machine_gone") == 0
    assert value(metrics, "fleet_agent_task_failure_count_total", task="start") == 0
    assert value(metrics, "fleet_registry_operation_duration_seconds_count", operation="txn") == 0
    assert value(metrics, "fleet_engine_reconcile_failure_count_total", reason="etcd_unavailable") == 0


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.engine_pass(0.01, 5, 0, {}, {})
    assert value(first, "fleet_engine_placements_total") == 5
    assert value(second, "fleet_engine_placements_total") == 0


def test_leadership_sets_the_gauges_and_counts_changes() -> None:
    metrics = Metrics(clock=lambda: 1700000000.0)
    metrics.leadership(True)
    metrics.engine_pass(0.2, 0, 0, {}, {"resources": 2})
    assert value(metrics, "fleet_engine_is_leader") == 1
    assert value(metrics, "fleet_engine_leader_start_time_seconds") == 1700000000.0
    metrics.leadership(False)
    metrics.leadership(True)
    assert value(metrics, "fleet_engine_leader_changes_total") == 2
    metrics.leadership(False)
    assert value(metrics, "fleet_engine_is_leader") == 0
    assert value(metrics, "fleet_engine_pending_units", reason="resources") == 0  # a follower knows none


def test_a_pass_sets_pending_by_category_and_zeroes_the_ones_gone() -> None:
    metrics = Metrics()
    metrics.engine_pass(0.2, 3, 1, {"machine_gone": 2}, {"resources": 2, "metadata": 1})
    metrics.engine_pass(0.03, 1, 0, {"conflicts": 1, "surprise": 1}, {"metadata": 4, "surprise": 1})
    assert value(metrics, "fleet_engine_placements_total") == 4
    assert value(metrics, "fleet_engine_placement_updates_total") == 1
    assert value(metrics, "fleet_engine_evictions_total", reason="machine_gone") == 2
    assert value(metrics, "fleet_engine_evictions_total", reason="other") == 1
    assert value(metrics, "fleet_engine_pending_units", reason="resources") == 0
    assert value(metrics, "fleet_engine_pending_units", reason="metadata") == 4
    assert value(metrics, "fleet_engine_pending_units", reason="other") == 1
    assert value(metrics, "fleet_engine_reconcile_duration_seconds_count") == 2
    assert value(metrics, "fleet_engine_reconcile_duration_seconds_bucket", le="0.05") == 1
    reasons = {dict(k[1])["reason"] for k in samples(metrics) if k[0] == "fleet_engine_pending_units"}
    assert reasons == set(PENDING_CATEGORIES)  # bounded: never a free-text label


def test_etcd_and_agent_calls_are_counted() -> None:
    metrics = Metrics()
    metrics.etcd_request("put", 0.003, None)
    metrics.etcd_request("put", 2.0, "deadline_exceeded")
    metrics.etcd_request("watch", None, "unavailable")
    metrics.agent_task("start", True)
    metrics.agent_task("start", False)
    metrics.agent_pass(0.5, False)
    assert value(metrics, "fleet_registry_operation_duration_seconds_count", operation="put") == 2
    assert value(metrics, "fleet_registry_operation_duration_seconds_count", operation="watch") == 0
    assert value(metrics, "fleet_registry_operation_failed_count_total", operation="put",
                 code="deadline_exceeded") == 1
    assert value(metrics, "fleet_registry_operation_failed_count_total", operation="watch",
                 code="unavailable") == 1
    assert value(metrics, "fleet_agent_task_count_total", task="start") == 2
    assert value(metrics, "fleet_agent_task_failure_count_total", task="start") == 1
    assert value(metrics, "fleet_agent_reconcile_failure_count_total") == 1
    assert value(metrics, "process_resident_memory_bytes") > 0


# what the etcd adapter reports ---------------------------------------------------------------


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def test_the_etcd_adapter_reports_each_call_with_its_grpc_code() -> None:
    metrics = Metrics()
    kv = EtcdKV(["http://127.0.0.1:1"], recorder=metrics)
    with kv._guard("txn"):
        pass
    with pytest.raises(RegistryUnavailable), kv._guard("range"):
        raise _rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")
    with pytest.raises(RegistryUnavailable), kv._guard("watch", timed=False):
        raise _rpc_error(grpc.StatusCode.UNAVAILABLE, "no leader")
    assert value(metrics, "fleet_registry_operation_duration_seconds_count", operation="txn") == 1
    assert value(metrics, "fleet_registry_operation_duration_seconds_count", operation="range") == 1
    assert value(metrics, "fleet_registry_operation_duration_seconds_count", operation="watch") == 0
    assert value(metrics, "fleet_registry_operation_failed_count_total", operation="range",
                 code="unavailable") == 1
    assert value(metrics, "fleet_registry_operation_failed_count_total", operation="watch",
                 code="unavailable") == 1


# what the engine reports ---------------------------------------------------------------------


async def test_the_engine_reports_leadership_placements_and_pending_units() -> None:
    rig = Rig()
    metrics = Metrics()
    rig.engine.recorder = metrics
    try:
        await rig.start(machines=2)
        await rig.submit([f"u{i}.service" for i in range(5)] + ["web@.service"])
        await placed_count(rig, 5)
        for _ in range(100):
            if value(metrics, "fleet_engine_pending_units", reason="template") == 1:
                break
            await asyncio.sleep(0.02)
    finally:
        await rig.stop()
    assert value(metrics, "fleet_engine_is_leader") == 1
    assert value(metrics, "fleet_engine_leader_changes_total") == 1
    assert value(metrics, "fleet_engine_placements_total") == 5
    assert value(metrics, "fleet_engine_pending_units", reason="template") == 1
    assert value(metrics, "fleet_engine_reconcile_duration_seconds_count") >= 1


def test_loops_work_without_metrics() -> None:
    recorder = NoRecorder()
    recorder.engine_pass(0.1, 1, 0, {}, {})
    recorder.etcd_request("get", 0.001, None)


# GET /metrics --------------------------------------------------------------------------------


async def _get(session: aiohttp.ClientSession, url: str, method: str = "GET",
               **headers: str) -> tuple[int, str, str]:
    async with session.request(method, url, headers=headers) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def test_metrics_are_served_at_the_root_over_the_socket(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.engine_pass(0.01, 7, 0, {}, {})
    app = make_app(Registry(MemoryKV(), Keys("/t/")), "test", metrics=metrics.render)
    path = str(tmp_path / "fleet.sock")
    runner = await serve(app, path)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as session:
            status, content_type, body = await _get(session, "http://fleet/metrics")
            refused = await _get(session, "http://fleet/metrics", "POST")
            absent = await _get(session, "http://fleet/fleet/v1/metrics")
    finally:
        await runner.cleanup()
    assert (status, content_type.split(";")[0]) == (200, "text/plain")
    assert "fleet_engine_placements_total 7.0" in body
    assert refused[0] == 405 and absent[0] == 404


async def test_metrics_over_tcp_need_the_bearer_token(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    app = make_app(Registry(MemoryKV(), Keys("/t/")), "test", tcp_token="t0ken-0123456789abcdef",
                   metrics=Metrics().render)
    runner = await serve(app, str(tmp_path / "fleet.sock"), tcp=f"127.0.0.1:{port}")
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/metrics"
            without = await _get(session, url)
            good = await _get(session, url, Authorization="Bearer t0ken-0123456789abcdef")
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
    assert without[0] == 401
    assert good[0] == 200 and "fleet_engine_is_leader" in good[2]
