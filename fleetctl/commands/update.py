"""update: roll new content out to a running unit or to every instance of a template.

The thin loop around fleetctl.rollout: read the registry once, plan, change the units that are
not launched in place (one POST), then per batch POST the new content (the engine keeps the
placement and the agent unloads, reloads and restarts the unit) and poll GET /state until the
batch is healthy. On the first failure it stops, optionally puts the previous content back on
the units it changed (in batches too), prints which unit is on which version and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping, Sequence

from fleetctl import progress, render, rollout, templates, waiting
from fleetctl.client import ClientError
from fleetctl.commands.base import Command, Context
from fleetctl.resolve import (
    Registry,
    ResolveError,
    check,
    check_names,
    read_registry,
    read_unit_file,
    unit_path,
)
from fleetd.api import schema
from fleetd.model.names import normalize_name
from fleetd.model.states import TargetState
from fleetd.model.unitfile import UnitFile


def _options(unitfile: UnitFile) -> list[schema.UnitOption]:
    return [schema.UnitOption(section=o.section, name=o.name, value=o.value) for o in unitfile.options]


def _targets(name: str, registry: Registry) -> list[str]:
    """The units the file replaces: a template's instances (and itself), else the unit."""
    if not templates.is_template(name):
        if name not in registry:
            raise ResolveError(f"unit {name} is not in the registry (use fleetctl start to create it)")
        return [name]
    found = templates.instances_in(name, registry)
    if not found:
        raise ResolveError(f"no instances of {name} in the registry")
    return found + ([name] if name in registry else [])


class Updater:
    """One run: the units' old contents, what was changed, and the batch waits."""

    def __init__(self, ctx: Context, args: argparse.Namespace, registry: Registry) -> None:
        self.ctx, self.args = ctx, args
        self.units = dict(registry)
        self.old = {n: render.unit_file(u) for n, u in registry.items()}
        self.changed: list[str] = []
        self.line = progress.Line(ctx.err)

    async def write(self, names: Sequence[str], content: Mapping[str, UnitFile]) -> None:
        batch = [schema.Unit(name=n, options=_options(content[n]),
                             desired_state=self.units[n].desired_state) for n in names]
        for result in await self.ctx.client.submit_units(batch):
            if result.status >= 400:
                raise ClientError(f'unit "{result.name}": {result.message}')

    async def roll(self, batches: Sequence[Sequence[str]], content: Mapping[str, UnitFile],
                   track: bool) -> list[str]:
        """Each batch in turn; the units of the first batch that failed (empty: all healthy)."""
        for index, names in enumerate(batches, 1):
            to = content[names[0]].hash
            self.ctx.say(rollout.batch_line(index, len(batches), names, to))
            await self.write(names, content)
            if track:
                self.changed += names
            bad = await self.wait(names, to)
            if bad:
                return bad
            self.ctx.say(f"batch {index}/{len(batches)}: {', '.join(names)} active on {to[:7]}")
        return []

    async def wait(self, names: Sequence[str], want: str) -> list[str]:
        budget, polls = waiting.polls_allowed(self.args.block_attempts), 0
        if budget is not None:  # the healthy window is not counted in the attempts
            budget += int(self.args.min_healthy_seconds / waiting.POLL_INTERVAL) + 1
        verdict = rollout.Verdict(rollout.Status.WAITING, {})
        try:
            while budget is None or polls < budget:
                seen = await self._seen(names)
                verdict = rollout.judge(names, want, seen, verdict.healthy_since, time.monotonic(),
                                        self.args.min_healthy_seconds)
                if verdict.status is rollout.Status.HEALTHY:
                    return []
                if verdict.status is rollout.Status.FAILED:
                    self.line.clear()
                    self.ctx.warn(f"Unit(s) {', '.join(verdict.failed)} failed on {want[:7]}")
                    return list(verdict.failed)
                up = len(verdict.healthy_since)
                self.line.show(progress.waiting_text(
                    len(names), {"active": up, "starting": len(names) - up},
                    progress.attempt_of(polls, round(waiting.ATTEMPT_SECONDS / waiting.POLL_INTERVAL))))
                polls += 1
                await asyncio.sleep(waiting.POLL_INTERVAL)
        finally:
            self.line.clear()
        late = rollout.pending(names, verdict) or list(names)
        self.ctx.warn(f"timed out waiting for unit(s) {', '.join(late)} to stay active on {want[:7]}")
        return late

    async def _seen(self, names: Sequence[str]) -> dict[str, list[rollout.Seen]]:
        wanted, seen = set(names), dict[str, list[rollout.Seen]]()
        states = await self.ctx.client.list_states(unit_name=names[0] if len(names) == 1 else None)
        for s in states:
            if s.name in wanted:
                seen.setdefault(s.name, []).append(rollout.Seen(s.hash, s.systemd_active_state))
        return seen


async def run_update(ctx: Context, args: argparse.Namespace) -> int:
    if args.batch < 1 or args.min_healthy_seconds < 0:
        ctx.warn("Error: --batch must be at least 1 and --min-healthy-seconds not negative")
        return 1
    name = normalize_name(args.unit_file)
    try:
        check_names([args.unit_file])
        new = read_unit_file(unit_path(args.unit_file))
        registry = await read_registry(ctx)
        names = _targets(name, registry)
        for target in names:
            check(ctx, target, new, warn=target == names[0])
    except ResolveError as exc:
        ctx.warn(f"Error: {exc}")
        return 1
    return await _update(Updater(ctx, args, registry), names, new)


async def _update(up: Updater, names: list[str], new: UnitFile) -> int:
    ctx, args = up.ctx, up.args
    targets = [rollout.Target(n, up.old[n].hash, up.units[n].desired_state == TargetState.LAUNCHED
                              and not templates.is_template(n)) for n in names]
    plan = rollout.plan(targets, new.hash, args.batch)
    for current in plan.current:
        ctx.say(f"Unit {current} already on {new.hash[:7]}")
    content = dict.fromkeys(names, new)
    if plan.in_place:
        await up.write(plan.in_place, content)
        for done in plan.in_place:
            ctx.say(f"Unit {done} updated in place (not launched)")
    if not await up.roll(plan.batches, content, track=True):
        return 0
    if args.rollback and up.changed:
        ctx.warn(f"Rolling back {', '.join(up.changed)}")
        back = [up.changed[i : i + args.batch] for i in range(0, len(up.changed), args.batch)]
        if await up.roll(back, up.old, track=False):
            ctx.warn("Rollback did not complete")
    stored = {u.name or "": render.unit_file(u).hash for u in await ctx.client.list_units()}
    for line in rollout.versions([t.name for t in targets if t.launched], stored, new.hash):
        ctx.warn(line)
    return 1


async def run(ctx: Context, args: argparse.Namespace) -> int:
    try:
        return await run_update(ctx, args)
    except ClientError as exc:
        ctx.warn(f"Error updating units: {exc}")
        return 1


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("unit_file", metavar="UNIT_FILE",
                        help="the new unit file; a template file (name@.service) updates every "
                        "instance of it in the registry")
    parser.add_argument("--batch", type=int, default=1, metavar="N",
                        help="units replaced at once, i.e. at most N down (default 1)")
    parser.add_argument("--min-healthy-seconds", type=float, default=5.0, metavar="S",
                        help="how long each unit must stay active on the new content (default 5)")
    parser.add_argument("--rollback", action="store_true",
                        help="on failure, put the previous content back on the units changed")
    parser.add_argument("--block-attempts", type=int, default=0, metavar="N",
                        help="give a batch at most N attempts of ~2 s each to become healthy, "
                        "not counting --min-healthy-seconds (0 = wait forever)")


UPDATE = Command(
    "update",
    "Rolling update: replace a running unit's or a template's instances' content, batch by batch",
    "fleetctl update [--batch=N] [--min-healthy-seconds=S] [--rollback] [--block-attempts=N] "
    "UNIT_FILE",
    configure,
    run,
)
