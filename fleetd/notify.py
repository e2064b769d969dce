"""systemd's notification socket: the watchdog keep-alive (sd_notify, without libsystemd).

With WatchdogSec= in fleet.service, systemd sets NOTIFY_SOCKET and WATCHDOG_USEC and kills
fleetd if it stops saying "WATCHDOG=1" for that long. The unit's period is generous, to cover
start-up; once running, `watchdog(period)` tightens it to `period` (sd_notify WATCHDOG_USEC=)
and says WATCHDOG=1 from the event loop every third of it, so a hung or frozen (SIGSTOP)
fleetd is killed and restarted, and its ExecStopPost stops the AtMostOnce units a silent
agent can no longer fence.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping


def _address(environ: Mapping[str, str]) -> str | None:
    path = environ.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    return "\0" + path[1:] if path.startswith("@") else path


def watchdog_period(environ: Mapping[str, str] = os.environ) -> float | None:
    """Seconds systemd waits for a keep-alive, if it watches this process."""
    usec, pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000


def notify(message: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send one notification; False if systemd is not listening."""
    address = _address(environ)
    if address is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError:
            return False
    return True


async def watchdog(period: float, environ: Mapping[str, str] = os.environ) -> None:
    """Keep systemd's watchdog fed while the event loop runs (returns at once if none is set)."""
    if watchdog_period(environ) is None or _address(environ) is None:
        return
    notify(f"WATCHDOG_USEC={int(period * 1_000_000)}", environ)
    while True:
        notify("WATCHDOG=1", environ)
        await asyncio.sleep(period / 3)
