"""Template units as fleetctl's verbs see them (pure): instance names, counts and scaling.

A template `web@.service` expands to the instances `web@1.service` .. `web@N.service`. N comes
from `--instances N` or else from `[X-Fleet] Instances=N` in the template. A template's
instances in the registry are the units with the same prefix and suffix and a non-empty
instance. Only numeric instances take part in scaling; `web@foo.service` is never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fleetd.errors import InvalidInput
from fleetd.model.names import parse_name
from fleetd.model.requirements import MAX_INSTANCES, parse_requirements
from fleetd.model.unitfile import UnitFile


class TemplateError(Exception):
    """A template argument cannot be expanded into instances; printed as `Error: ...`."""


def is_template(name: str) -> bool:
    return parse_name(name).is_template


def instance(template: str, number: int) -> str:
    """`web@.service`, 3 -> `web@3.service`."""
    info = parse_name(template)
    return f"{info.prefix}@{number}{info.suffix}"


def instance_number(name: str) -> int | None:
    """3 for `web@3.service`; None for `web@foo.service` or a name without an instance."""
    text = parse_name(name).instance
    return int(text) if text.isascii() and text.isdigit() else None


def instances_in(template: str, names: Iterable[str]) -> list[str]:
    """The instances of `template` among `names`: numeric ones by number, then the rest by name."""
    info = parse_name(template)
    found = {
        n
        for n in names
        if (other := parse_name(n)).is_instance
        and (other.prefix, other.suffix) == (info.prefix, info.suffix)
    }
    return sorted(found, key=_natural)


def _natural(name: str) -> tuple[int, int, str]:
    number = instance_number(name)
    return (0, number, name) if number is not None else (1, 0, name)


def wanted(template: str, count: int) -> list[str]:
    return [instance(template, i) for i in range(1, count + 1)]


def surplus(template: str, names: Iterable[str], count: int) -> list[str]:
    """Numeric instances numbered above `count`: what scaling down to `count` destroys."""
    return [
        n for n in instances_in(template, names) if (instance_number(n) or 0) > count
    ]


def check_flag(names: Sequence[str], override: int | None) -> None:
    """`--instances` must be 1..MAX_INSTANCES and is only for templates."""
    if override is None:
        return
    if not 1 <= override <= MAX_INSTANCES:
        raise TemplateError(
            f"--instances must be a whole number from 1 to {MAX_INSTANCES}, not {override}"
        )
    others = [n for n in names if not is_template(n)]
    if others:
        raise TemplateError(
            f"--instances only applies to template units (name@.service), not {', '.join(others)}"
        )


def count(template: str, unitfile: UnitFile, override: int | None, verb: str) -> int:
    """How many instances `verb` wants: `--instances`, else the template's Instances=."""
    if override is not None:
        return override
    try:
        declared = parse_requirements(template, unitfile).instances
    except InvalidInput as exc:
        raise TemplateError(f"invalid template {template}: {exc}") from exc
    if declared is None:
        raise TemplateError(
            f"{template} is a template; {verb} instances such as {instance(template, 1)}, "
            "or give a count with --instances N (or Instances=N in its [X-Fleet] section)"
        )
    return declared
