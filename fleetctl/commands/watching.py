"""`--watch` for list commands: re-render the listing on every change fleetd streams.

Owns the watch loop: follow GET /fleet/v1/watch (units, states, machines), run the wrapped
listing again on each event and print it when it differs from the last one shown: on a terminal
the screen is cleared first; otherwise tables follow each other, separated by a blank line.
Ctrl-C (or a closed pipe, e.g. `| head`) ends it with exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import signal
from collections.abc import Callable

from fleetctl.commands.base import Context, Runner

KINDS = ("units", "states", "machines")
CLEAR = "\x1b[H\x1b[2J"


def with_watch_flag(configure: Callable[[argparse.ArgumentParser], None]
                    ) -> Callable[[argparse.ArgumentParser], None]:
    def configure_and_watch(parser: argparse.ArgumentParser) -> None:
        configure(parser)
        parser.add_argument("--watch", "-w", action="store_true",
                            help="keep the listing on screen, redrawn on every change (Ctrl-C ends)")
    return configure_and_watch


def watchable(run: Runner) -> Runner:
    """`run`, or with --watch, `run` again on every change."""
    async def run_or_watch(ctx: Context, args: argparse.Namespace) -> int:
        if not getattr(args, "watch", False):
            return await run(ctx, args)
        stop = asyncio.Event()
        with _on_sigint(stop.set):
            loop_task = asyncio.ensure_future(_redraw(ctx, args, run))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({loop_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not loop_task.done():
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop_task
                return 0
            return loop_task.result()
    return run_or_watch


async def _redraw(ctx: Context, args: argparse.Namespace, run: Runner) -> int:
    tty = _isatty(ctx.out)
    shown: str | None = None
    async for _event in ctx.client.watch(KINDS):
        buffer = io.StringIO()
        code = await run(Context(ctx.client, buffer, ctx.err), args)
        if code:
            return code
        text = buffer.getvalue()
        if text == shown:
            continue
        try:
            ctx.out.write((CLEAR if tty else "" if shown is None else "\n") + text)
            ctx.out.flush()
        except BrokenPipeError:
            return 0
        shown = text
    return 0


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if isatty is not None else False


@contextlib.contextmanager
def _on_sigint(callback: Callable[[], None]):  # type: ignore[no-untyped-def]
    """Ctrl-C calls `callback` instead of raising (only possible in the main thread)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, callback)
    except (RuntimeError, ValueError, NotImplementedError):
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
