"""The `--tunnel` process: runs the ssh forward fleetctl.tunnel planned, for one command run.

`opened(...)` starts `ssh -N -L ...`, waits until the local end of the forward accepts a
connection, yields the endpoint to use, and on exit stops ssh and removes the private directory.
If ssh exits first, its last stderr line becomes the TunnelError; if nothing answers within
--ssh-timeout (when no prompt can be answered), it is fleet's `timed out while initiating SSH
connection`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from fleetctl.client import Endpoint
from fleetctl.sshcmd import SshOptions
from fleetctl.tunnel import Plan, TunnelError, plan

POLL = 0.05
STOP_GRACE = 5.0


def free_port() -> int:
    """A loopback TCP port nobody listens on now (ssh's ExitOnForwardFailure catches a race)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def opened(tunnel: tuple[str, int], endpoint: Endpoint,
                 opts: SshOptions) -> AsyncIterator[Endpoint]:
    if opts.strict:  # ssh stores new host keys there, but makes no directory for it
        Path(opts.known_hosts).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix="fleetctl-tunnel-") as private:
        chosen = plan(tunnel, endpoint, opts, private, free_port())
        errors = Path(private) / "ssh.err"
        try:
            with errors.open("wb") as sink:
                proc = await asyncio.create_subprocess_exec(
                    *chosen.argv, stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL, stderr=sink)
        except OSError as exc:
            raise TunnelError(f"cannot run ssh: {exc.strerror or exc}") from None
        try:
            await _until_ready(proc, chosen, tunnel, errors,
                               None if opts.interactive else opts.timeout)
            yield chosen.endpoint
        finally:
            await _stop(proc)


async def _until_ready(proc: asyncio.subprocess.Process, chosen: Plan, tunnel: tuple[str, int],
                       errors: Path, timeout: float | None) -> None:
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while not await _answers(chosen):
        if proc.returncode is not None:
            raise TunnelError(f"cannot open SSH tunnel to {tunnel[0]}:{tunnel[1]}: "
                              f"{_last_line(errors, proc.returncode)}")
        if deadline is not None and loop.time() > deadline:
            raise TunnelError("timed out while initiating SSH connection")
        await asyncio.sleep(POLL)


async def _answers(chosen: Plan) -> bool:
    try:
        if chosen.local_socket is not None:
            _, writer = await asyncio.open_unix_connection(chosen.local_socket)
        else:
            _, writer = await asyncio.open_connection("127.0.0.1", chosen.local_port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _last_line(errors: Path, code: int) -> str:
    text = errors.read_text(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else f"ssh exited with status {code}"


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
