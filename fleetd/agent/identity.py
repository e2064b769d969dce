"""Who this host is: machine id from /etc/machine-id, public address, metadata, capabilities."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from fleetd import __version__
from fleetd.agent.capacity import machine_capacity
from fleetd.config import FleetConfig
from fleetd.errors import ConfigError
from fleetd.model.machine import Machine

_MACHINE_ID = re.compile(r"^[0-9a-f]{32}$")


def read_machine_id(path: str) -> str:
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read machine id from {path}: {exc.strerror}") from None
    if not _MACHINE_ID.match(text):
        raise ConfigError(f"{path} does not hold a machine id (32 hex digits): {text[:40]!r}")
    return text


def detect_ip(etcd_servers: list[str]) -> str:
    """The local address this host uses to reach etcd (no packet is sent)."""
    parts = urlsplit(etcd_servers[0])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((parts.hostname or "127.0.0.1", parts.port or 2379))
            return str(probe.getsockname()[0])
    except OSError:
        return ""


def local_machine(cfg: FleetConfig) -> Machine:
    return Machine(
        id=read_machine_id(cfg.machine_id_file),
        ip=cfg.public_ip or detect_ip(cfg.etcd_servers),
        metadata=dict(cfg.metadata),
        version=__version__,
        disable_engine=cfg.disable_engine,
        capacity=machine_capacity(cfg.capacity_cpu, cfg.capacity_memory),
    )
