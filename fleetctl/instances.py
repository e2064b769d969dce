"""load/start of a template: plan the arguments plus the instances each template stands for.

`fleetctl start web@.service` submits the template as lazy create does, then makes and starts
`web@1.service` .. `web@N.service` (N from `--instances` or `Instances=`); the template itself
stays inactive. With `--instances K`, numeric instances above K are to be destroyed. Everything
is planned and validated here against one listing of the registry, before anything is written.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from fleetctl import templates
from fleetctl.commands.base import Context
from fleetctl.resolve import Plan, Registry, plan_instance, plan_units
from fleetd.api import schema
from fleetd.model.names import normalize_name
from fleetd.model.states import TargetState
from fleetd.model.unitfile import UnitFile


@dataclass(frozen=True, slots=True)
class Batch:
    """What load/start write, activate and (when scaling down) destroy."""

    plans: list[Plan]
    names: list[str]
    surplus: list[str]

    def contents(self) -> dict[str, UnitFile]:
        """Each planned unit's content once written (the first plan of a name wins)."""
        found: dict[str, UnitFile] = {}
        for plan in self.plans:
            found.setdefault(plan.name, _content(plan))
        return found


def prepare(
    ctx: Context,
    args: Sequence[str],
    registry: Registry,
    *,
    replace: bool,
    allowed: Collection[TargetState],
    override: int | None,
    verb: str,
) -> Batch:
    """Raises TemplateError or ResolveError; reads only local unit files."""
    templates.check_flag([normalize_name(a) for a in args], override)
    plans = plan_units(ctx, args, registry, replace=replace, allowed=allowed)
    counts = {
        p.name: templates.count(p.name, _content(p), override, verb)
        for p in plans
        if templates.is_template(p.name)
    }
    if not counts:
        return Batch(plans, _unique(p.name for p in plans), [])
    extra = [
        plan_instance(ctx, name, template, registry.get(name), replace, allowed)
        for template in _unique_plans(plans)
        if template.name in counts
        for name in templates.wanted(template.name, counts[template.name])
    ]
    names = _names(plans, counts)
    return Batch(plans + extra, names, _surplus(counts, registry, override, names))


def _content(plan: Plan) -> UnitFile:
    assert plan.content is not None, "a planned unit has content"
    return plan.content


def _names(plans: Sequence[Plan], counts: dict[str, int]) -> list[str]:
    """The units to activate, in argument order; a template stands for its wanted instances."""
    names: list[str] = []
    for plan in plans:
        names += templates.wanted(plan.name, counts[plan.name]) if plan.name in counts else [plan.name]
    return _unique(names)


def _surplus(
    counts: dict[str, int],
    registry: Mapping[str, schema.Unit],
    override: int | None,
    keep: Collection[str],
) -> list[str]:
    """Only an explicit --instances scales down; Instances= alone never destroys."""
    if override is None:
        return []
    found = [n for t in counts for n in templates.surplus(t, registry, override)]
    return [n for n in _unique(found) if n not in keep]


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _unique_plans(plans: Sequence[Plan]) -> list[Plan]:
    first: dict[str, Plan] = {}
    for plan in plans:
        first.setdefault(plan.name, plan)
    return list(first.values())
