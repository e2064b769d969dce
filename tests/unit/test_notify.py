"""Tier 2: the systemd watchdog keep-alive, against a real datagram socket standing for systemd."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from fleetd.notify import notify, watchdog, watchdog_period


def test_no_socket_means_no_watchdog() -> None:
    assert watchdog_period({}) is None
    assert watchdog_period({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}) is None  # not us
    assert watchdog_period({"WATCHDOG_USEC": "3000000"}) == 3.0
    assert notify("WATCHDOG=1", {}) is False


async def test_watchdog_tightens_the_period_then_keeps_systemd_fed(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(path)
        systemd.setblocking(False)
        env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
        task = asyncio.create_task(watchdog(0.3, env))
        await asyncio.sleep(0.35)
        task.cancel()
        messages = []
        while True:
            try:
                messages.append(systemd.recv(100).decode())
            except BlockingIOError:
                break
    assert messages[0] == "WATCHDOG_USEC=300000"
    assert messages[1:].count("WATCHDOG=1") >= 3
