"""rebalance: move units so the spread or binpack goal holds again after hosts joined or returned.

fleetd plans (GET /rebalance: for each move the unit, from, to and why, by the scheduler's own
rules); `--dry-run` prints the plan and changes nothing. Otherwise the moves are made `--batch`
at a time through the move endpoint (each checked again by the scheduler: one the cluster no
longer allows is skipped with the reason), and each batch is waited for, until every unit of
it runs on its new machine, before the next batch starts.
"""

from __future__ import annotations

import argparse
import asyncio

from fleetctl import render
from fleetctl.client import ApiError
from fleetctl.commands.base import Command, Context
from fleetctl.commands.move import arrived
from fleetd.api import schema

DEFAULT_TIMEOUT = 300.0


def plan_rows(moves: list[schema.RebalanceMove]) -> list[dict[str, str]]:
    return [{"unit": m.unit, "from": m.away[:8], "to": m.to[:8], "why": render.reason_legend(m.why)}
            for m in moves]


async def run_rebalance(ctx: Context, args: argparse.Namespace) -> int:
    moves = await ctx.client.rebalance_plan(args.max_moves)
    if not moves:
        ctx.say("Nothing to rebalance: every unit is where the placement goal wants it")
        return 0
    if args.dry_run:
        ctx.out.write(render.table(["unit", "from", "to", "why"], plan_rows(moves), False))
        return 0
    batches = [moves[i:i + args.batch] for i in range(0, len(moves), args.batch)]
    for number, batch in enumerate(batches, 1):
        ctx.say(f"batch {number} of {len(batches)}: {', '.join(m.unit for m in batch)}")
        if not await _move_batch(ctx, batch, args.timeout):
            return 1
    return 0


async def _move_batch(ctx: Context, batch: list[schema.RebalanceMove], timeout: float) -> bool:
    """Ask for every move of the batch, then wait until each one arrived; False on a timeout."""
    started = []
    for move in batch:
        try:
            await ctx.client.move_unit(move.unit, move.to)
            started.append(move)
        except ApiError as exc:
            ctx.warn(f"skipped {move.unit}: {exc.message}")
    try:
        async with asyncio.timeout(timeout if timeout > 0 else None):
            landed = await asyncio.gather(*(arrived(ctx, m.unit, m.away) for m in started))
    except TimeoutError:
        ctx.warn(f"Error: the batch did not arrive within {timeout:g} s (--timeout); "
                 "see fleetctl list-unit-files")
        return False
    for move, where in zip(started, landed, strict=True):
        ctx.say(f"Unit {move.unit} moved from {move.away[:8]} to {where[:8]} ({move.why})")
    return True


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return int(text)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (unit, from, to, why) and change nothing")
    parser.add_argument("--max-moves", type=_positive, default=20, metavar="N",
                        help="move at most N units (default 20)")
    parser.add_argument("--batch", type=_positive, default=1, metavar="N",
                        help="move N units at a time, waiting for each batch to run (default 1)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"give up waiting for a batch after SECONDS (default {DEFAULT_TIMEOUT:g}; "
                        "0 = no limit)")


REBALANCE = Command(
    "rebalance",
    "Move units so the spread or binpack goal holds again (after hosts joined or returned)",
    "fleetctl rebalance [--dry-run] [--max-moves N] [--batch N] [--timeout SECONDS]",
    _configure,
    run_rebalance,
)
