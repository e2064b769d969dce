"""confirm-reschedule: an operator's word that the machines the mass-failure brake holds are gone.

The engine raises the `mass-failure` alarm when more than half of the machines vanish within
one TTL window and then leaves their units where they were. This verb shows the alarm and
deletes it; the leader takes that as confirmation and re-places the held units.
"""

from __future__ import annotations

import argparse

from fleetctl import render
from fleetctl.commands.base import Command, Context

MASS_FAILURE = "mass-failure"


async def run_confirm_reschedule(ctx: Context, args: argparse.Namespace) -> int:
    raised = [a for a in await ctx.client.list_alarms() if a.kind == MASS_FAILURE]
    if not raised:
        ctx.say("No mass-failure alarm is raised: nothing is held, nothing to confirm.")
        return 0
    ctx.say(render.alarm_line(raised[0]))
    if not await ctx.client.clear_alarm(MASS_FAILURE):
        ctx.say("The alarm was cleared meanwhile (machines returned, or another operator confirmed).")
        return 0
    ctx.say(f"Confirmed: the units of {len(raised[0].machines)} vanished machine(s) will be "
            "rescheduled on the machines that are left.")
    return 0


CONFIRM_RESCHEDULE = Command(
    "confirm-reschedule",
    "Confirm that machines held by the mass-failure brake are gone: reschedule their units",
    "fleetctl confirm-reschedule",
    lambda parser: None,
    run_confirm_reschedule,
)
