"""fleetd's Prometheus metrics: the only module that imports prometheus_client.

`Metrics` is the `fleetd.observe.Recorder` the composition root hands to the engine, the agent
and the etcd adapter; `render` gives the text exposition format served at GET /metrics. Each
`Metrics` owns its own CollectorRegistry (never the library's global default), so two fleetds
in one process, or tests, do not share counters. Names follow fleet's (`fleet_` prefix) where
the meaning matches, with Prometheus' unit suffixes (`_seconds`, `_total`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from fleetd.observe import AUTH_FAILURES, EVICTION_CATEGORIES, PENDING_CATEGORIES

CONTENT_TYPE = CONTENT_TYPE_LATEST
PASS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ETCD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ETCD_OPS = ("get", "range", "put", "delete", "txn", "lease", "watch", "compact")
AGENT_TASKS = ("unload", "load", "reload", "stop", "start")
ENGINE_FAILURES = ("etcd_unavailable", "leadership_lost", "forged_leader")


class Metrics:
    """Every fleetd metric, in a registry of its own; implements `fleetd.observe.Recorder`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.registry = reg = CollectorRegistry(auto_describe=True)
        self.clock = clock
        self._engine(reg)
        self._etcd(reg)
        self._agent(reg)
        self._api(reg)
        ProcessCollector(registry=reg)  # process_cpu_seconds_total, resident memory, open fds

    def _engine(self, reg: CollectorRegistry) -> None:
        self.is_leader = Gauge("fleet_engine_is_leader", "1 while this fleetd's engine is the leader",
                               registry=reg)
        self.leader_start = Gauge("fleet_engine_leader_start_time_seconds",
                                  "Unix time this engine last became leader (0: never)", registry=reg)
        self.leader_changes = Counter("fleet_engine_leader_changes_total",
                                      "Times this engine became leader", registry=reg)
        self.passes = Histogram("fleet_engine_reconcile_duration_seconds",
                                "Duration of scheduling passes that decided and committed a plan",
                                buckets=PASS_BUCKETS, registry=reg)
        self.failures = Counter("fleet_engine_reconcile_failure_count_total",
                                "Scheduling passes or leader sessions that failed, by reason",
                                ["reason"], registry=reg)
        self.placements = Counter("fleet_engine_placements_total", "Units placed on a machine",
                                  registry=reg)
        self.files_deleted = Counter("fleet_engine_unit_files_deleted_total",
                                     "Unit files under files/ that no unit referenced, deleted by "
                                     "this engine as leader", registry=reg)
        self.updates = Counter("fleet_engine_placement_updates_total",
                               "Placements changed in place (new file or desired state)", registry=reg)
        self.evictions = Counter("fleet_engine_evictions_total",
                                 "Units taken off a machine, by reason category", ["reason"], registry=reg)
        self.pending = Gauge("fleet_engine_pending_units",
                             "Units that cannot be placed now, by reason category (leader only)",
                             ["reason"], registry=reg)
        for reason in ENGINE_FAILURES:
            self.failures.labels(reason)
        for reason in EVICTION_CATEGORIES:
            self.evictions.labels(reason)
        for reason in PENDING_CATEGORIES:
            self.pending.labels(reason)

    def _etcd(self, reg: CollectorRegistry) -> None:
        self.etcd_latency = Histogram("fleet_registry_operation_duration_seconds",
                                      "Duration of etcd calls by operation (watch: stream setup only)",
                                      ["operation"], buckets=ETCD_BUCKETS, registry=reg)
        self.etcd_errors = Counter("fleet_registry_operation_failed_count_total",
                                   "etcd calls that failed, by operation and error code",
                                   ["operation", "code"], registry=reg)
        self._latency_of = {op: self.etcd_latency.labels(op) for op in ETCD_OPS}

    def _agent(self, reg: CollectorRegistry) -> None:
        self.agent_passes = Histogram("fleet_agent_reconcile_duration_seconds",
                                      "Duration of agent passes", buckets=PASS_BUCKETS, registry=reg)
        self.agent_pass_failures = Counter("fleet_agent_reconcile_failure_count_total",
                                           "Agent passes that stopped at a failure", registry=reg)
        self.tasks = Counter("fleet_agent_task_count_total", "Agent tasks run on systemd, by task",
                             ["task"], registry=reg)
        self.task_failures = Counter("fleet_agent_task_failure_count_total",
                                     "Agent tasks systemd refused or failed, by task", ["task"],
                                     registry=reg)
        self.relist_catches = Counter("fleet_agent_relist_catches_total",
                                      "Changes a safety-net listing found that the watches never "
                                      "delivered (0 unless a watch is broken)", registry=reg)
        self.passes_abandoned = Counter("fleet_agent_pass_abandoned_total",
                                        "Agent passes abandoned after the pass timeout "
                                        "(0 unless something hangs)", registry=reg)
        for task in AGENT_TASKS:
            self.tasks.labels(task)
            self.task_failures.labels(task)

    def _api(self, reg: CollectorRegistry) -> None:
        self.auth_failures = Counter("fleet_api_auth_failures_total",
                                     "TCP API requests refused for their credentials: token "
                                     "missing, invalid, or locked_out (the address sent too many "
                                     "wrong tokens); client certificate missing_cert, or bad_cert "
                                     "(the TLS handshake failed to verify it)",
                                     ["reason"], registry=reg)
        for reason in AUTH_FAILURES:
            self.auth_failures.labels(reason)

    # Recorder --------------------------------------------------------------------------------

    def leadership(self, leading: bool) -> None:
        self.is_leader.set(1 if leading else 0)
        if leading:
            self.leader_changes.inc()
            self.leader_start.set(self.clock())
        else:
            for reason in PENDING_CATEGORIES:  # a follower knows nothing about pending units
                self.pending.labels(reason).set(0)

    def engine_pass(self, seconds: float, placements: int, updates: int,
                    evictions: Mapping[str, int], pending: Mapping[str, int]) -> None:
        self.passes.observe(seconds)
        self.placements.inc(placements)
        self.updates.inc(updates)
        for reason, count in evictions.items():
            self.evictions.labels(_known(reason, EVICTION_CATEGORIES)).inc(count)
        totals = dict.fromkeys(PENDING_CATEGORIES, 0)
        for reason, count in pending.items():
            totals[_known(reason, PENDING_CATEGORIES)] += count
        for reason, count in totals.items():
            self.pending.labels(reason).set(count)

    def engine_failure(self, reason: str) -> None:
        self.failures.labels(reason).inc()

    def unit_files_deleted(self, count: int) -> None:
        self.files_deleted.inc(count)

    def etcd_request(self, op: str, seconds: float | None, error: str | None) -> None:
        if seconds is not None:
            latency = self._latency_of.get(op)
            (latency or self.etcd_latency.labels(op)).observe(seconds)
        if error is not None:
            self.etcd_errors.labels(op, error).inc()

    def agent_pass(self, seconds: float, ok: bool) -> None:
        self.agent_passes.observe(seconds)
        if not ok:
            self.agent_pass_failures.inc()

    def agent_task(self, task: str, ok: bool) -> None:
        self.tasks.labels(task).inc()
        if not ok:
            self.task_failures.labels(task).inc()

    def agent_relist_catches(self, keys: int) -> None:
        self.relist_catches.inc(keys)

    def agent_pass_abandoned(self) -> None:
        self.passes_abandoned.inc()

    def api_auth_failure(self, reason: str) -> None:
        self.auth_failures.labels(_known(reason, AUTH_FAILURES)).inc()

    # exposition ------------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The current values in Prometheus' text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE


def _known(reason: str, categories: tuple[str, ...]) -> str:
    return reason if reason in categories else "other"
