"""The composition root: picks the concrete adapters, starts and supervises every task.

Tasks: heart (presence lease, and alongside it the maintenance-lock keeper), agent, publisher,
executor (remote status/journal/restart),
engine (unless disable_engine), the config reloader and the HTTP API. A task that crashes is
logged once and stops the daemon; systemd restarts it.
SIGHUP reloads the configuration (`fleetd.reload`: metadata, capacity and log level apply at
once, other changes are logged as needing a restart). SIGTERM/SIGINT stop gracefully: the
engine resigns so another leader takes over at once; the host's units keep running (unless
stop_units_on_shutdown) and the machine lease is left to expire, so a quick restart moves
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fleetd import __version__
from fleetd.agent.executor import Executor
from fleetd.agent.heart import Heart
from fleetd.agent.identity import local_machine
from fleetd.agent.local import HostUnits
from fleetd.agent.maintenance import LockKeeper
from fleetd.agent.metadata import MetadataOverlay
from fleetd.agent.metadata import attach as attach_metadata
from fleetd.agent.publisher import Publisher
from fleetd.agent.reconciler import Agent
from fleetd.api import access
from fleetd.api.http import make_app, serve
from fleetd.api.relay import Relay
from fleetd.config import FleetConfig
from fleetd.engine.reconciler import Engine
from fleetd.errors import ConfigError, FleetError
from fleetd.limits import raise_open_files
from fleetd.logs import get_logger
from fleetd.loop import spawn
from fleetd.metrics import Metrics
from fleetd.model.liveness import Liveness
from fleetd.model.machine import Machine
from fleetd.notify import watchdog
from fleetd.observe import Recorder
from fleetd.registry.etcd import EtcdAuth, EtcdKV, TLSFiles
from fleetd.registry.keys import Keys, normalize_prefix
from fleetd.registry.permissions import grants
from fleetd.registry.store import Registry
from fleetd.reload import Reloader
from fleetd.systemd.base import UnitManager
from fleetd.systemd.dbus import DbusUnitManager


@dataclass
class Node:
    """One fleetd's loops, wired together; `run` supervises them until `stop` is set."""

    heart: Heart
    agent: Agent
    publisher: Publisher
    engine: Engine | None
    executor: Executor | None = None  # runs status/journal/restart asked through the registry
    overlay: MetadataOverlay | None = None  # publishes the machine record (metadata, capacity)
    reloader: Reloader | None = None  # applies SIGHUP reloads

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(watchdog(self.heart.timing.fence_after),
                                       name="systemd-watchdog"),
                     spawn(group, self.heart.run(), "heart")]
            await _first(self.heart.registered.wait(), stop.wait())
            tasks.append(spawn(group, self.agent.run(), "agent"))
            tasks.append(spawn(group, self.publisher.run(), "publisher"))
            if self.executor is not None:
                tasks.append(spawn(group, self.executor.run(), "executor"))
            if self.engine is not None:
                tasks.append(spawn(group, self.engine.run(), "engine"))
            if self.reloader is not None:
                tasks.append(spawn(group, self.reloader.run(), "config-reload"))
            await stop.wait()
            for task in tasks:
                task.cancel()


def assemble(registry: Registry, systemd: UnitManager, machine: Machine, *, agent_ttl: float,
             reconcile_interval: float, run_engine: bool, policy: str = "binpack",
             fence_grace: float = 2.0, brake: bool = True, recorder: Recorder | None = None,
             file_gc_grace: float = 60.0, lock_ttl: float = 600.0, drain_batch: int = 4) -> Node:
    """Wire heart, agent, publisher and engine for one machine (adapters chosen by the caller)."""
    timing = Liveness(agent_ttl=agent_ttl, fence_grace=fence_grace)
    heart = Heart(registry, machine, timing)
    host = HostUnits()
    publisher = Publisher(registry, systemd, machine.id, lambda: heart.lease, host, ip=machine.ip)
    agent = Agent(registry, systemd, machine, publisher, host, heart, recorder=recorder)
    overlay = attach_metadata(registry, heart, agent)
    heart.run_alongside(LockKeeper(registry, machine.id, lock_ttl).run)
    heart.on_new_lease(publisher.republish_all)
    heart.on_fence_change(agent.wakeup.poke)
    systemd.on_change(publisher.unit_changed)
    engine = (Engine(registry, machine.id, heart, reconcile_interval, policy, timing, brake,
                     recorder=recorder, file_gc_grace=file_gc_grace, drain_batch=drain_batch)
              if run_engine else None)
    return Node(heart=heart, agent=agent, publisher=publisher, engine=engine,
                executor=Executor(registry, machine.id, lambda: heart.lease), overlay=overlay)


def etcd_client(cfg: FleetConfig, recorder: Recorder | None = None) -> EtcdKV:
    """The etcd client the configuration describes (TLS files, user and password)."""
    etcd_tls = (TLSFiles(ca=cfg.etcd_cafile or None, cert=cfg.etcd_certfile or None,
                         key=cfg.etcd_keyfile or None) if cfg.etcd_cafile or cfg.etcd_certfile else None)
    password = (access.read_secret(cfg.etcd_password_file, "etcd_password_file", one_word=False)
                if cfg.etcd_password_file else cfg.etcd_password)
    return EtcdKV(cfg.etcd_servers, request_timeout=cfg.etcd_request_timeout, tls=etcd_tls,
                  auth=EtcdAuth(cfg.etcd_username, password) if cfg.etcd_username else None,
                  recorder=recorder)


async def etcd_setup(cfg: FleetConfig, user: str, password_file: str, machine_id: str) -> str:
    """`fleetd etcd-setup`: give `user` the grants of `cfg.roles` for `machine_id`; a summary."""
    access.etcd_warnings(cfg)
    if not re.fullmatch(r"[0-9a-f]{32}", machine_id):
        raise ConfigError(f"--machine {machine_id!r} is not a machine id (32 lowercase hex digits)")
    password = access.read_secret(password_file, "--password-file", one_word=False)
    found = grants(Keys(normalize_prefix(cfg.etcd_key_prefix)), cfg.roles, machine_id)
    kv = etcd_client(cfg)
    try:
        await kv.set_user(user, password, found)
    finally:
        await kv.close()
    return (f"etcd user {user}: roles {','.join(cfg.roles)} for machine {machine_id}: "
            + ", ".join(f"{g.access} {g.key}{'*' if g.prefix else ''}" for g in found))


async def run(cfg: FleetConfig, config_path: str | None = None) -> None:
    """Run fleetd until a signal or a fatal error; SIGHUP reloads `config_path` (fleetd.reload)."""
    log = get_logger("server")
    tcp = access.tcp_access(cfg)  # refuses an unprotected TCP listener before anything starts
    for warning in tcp.warnings if tcp else ():
        log.warning(warning)
    for warning in access.etcd_warnings(cfg):  # refuses plain http:// etcd unless etcd_insecure
        log.error(warning)
    before, after = raise_open_files()
    log.info("open files limit", soft=after, was=before)
    machine = local_machine(cfg)
    metrics = Metrics()
    kv = etcd_client(cfg, metrics)
    registry = Registry(kv, Keys(normalize_prefix(cfg.etcd_key_prefix)))
    systemd = DbusUnitManager(bus_address=cfg.systemd_bus, units_directory=cfg.units_directory)
    await systemd.connect()
    node = assemble(registry, systemd, machine, agent_ttl=cfg.agent_ttl,
                    reconcile_interval=cfg.engine_reconcile_interval,
                    run_engine="engine" in cfg.roles and not cfg.disable_engine,
                    policy=cfg.scheduler_policy,
                    fence_grace=cfg.fence_grace, brake=cfg.mass_failure_brake, recorder=metrics,
                    file_gc_grace=cfg.unit_file_gc_grace, lock_ttl=cfg.maintenance_lock_ttl,
                    drain_batch=cfg.drain_batch)
    app = make_app(registry, __version__, tcp_token=tcp.token if tcp else None,
                   tcp_auth=tcp.auth if tcp else "token",
                   relayed=Relay(registry, lambda: node.heart.lease), metrics=metrics.render,
                   recorder=metrics, machine_id=machine.id, policy=cfg.scheduler_policy,
                   lock_ttl=cfg.maintenance_lock_ttl)
    runner = (await serve(app, cfg.api_socket, socket_group=cfg.api_socket_group or None,
                          tcp=cfg.api_listen or None, tcp_ssl=tcp.ssl if tcp else None)
              if "api" in cfg.roles else None)  # an agent-only host's etcd user could not serve it
    log.info("fleetd started", version=__version__, machine=machine.id, ip=machine.ip,
             cpu=machine.capacity.cpu, memory=machine.capacity.memory, policy=cfg.scheduler_policy,
             roles=",".join(cfg.roles), engine=node.engine is not None,
             api=cfg.api_socket if runner else "not served (roles has no api)",
             **({"tcp": cfg.api_listen, "tcp_auth": tcp.auth} if tcp else {}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stopper(stop, log))
    if node.overlay is not None:
        node.reloader = Reloader(cfg, node.overlay, config_path)
        loop.add_signal_handler(signal.SIGHUP, node.reloader.request)
    try:
        await node.run(stop)
    finally:
        await _shutdown(cfg, node, systemd, runner, kv, log)


def _stopper(stop: asyncio.Event, log: Any) -> Callable[[], None]:
    def on_signal() -> None:
        log.info("stopping on signal")
        stop.set()
    return on_signal


async def _first(*aws: Awaitable[object]) -> None:
    """Wait until the first of `aws` completes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()


async def _shutdown(cfg: FleetConfig, node: Node, systemd: UnitManager, runner: Any,
                    kv: EtcdKV, log: Any) -> None:
    """Release leadership at once; keep the host's units unless told to stop them.

    With stop_units_on_shutdown the units are unloaded and the machine lease revoked, so the
    engine re-places them at once instead of after agent_ttl.
    """
    with contextlib.suppress(FleetError, OSError):
        if node.engine is not None and node.engine.token is not None:
            await node.engine.registry.resign(node.engine.token)
            log.info("engine leadership released")
    if cfg.stop_units_on_shutdown:
        for name in sorted(systemd.local_units()):
            with contextlib.suppress(FleetError):
                await systemd.unload(name)
                log.info("unit unloaded on shutdown", unit=name)
        with contextlib.suppress(FleetError, OSError):
            await node.heart.revoke()
            log.info("machine lease revoked: leaving the cluster")
    if runner is not None:
        await runner.cleanup()
    with contextlib.suppress(FleetError, OSError):
        await systemd.close()
        await kv.close()
    log.info("fleetd stopped")
