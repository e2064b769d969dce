"""Tier 1: every example in units/ is a unit fleetd accepts, documented at its top.

Each file goes through the same pure code the API and fleetctl use (unit-name rules, the unit-file
parser, [X-Fleet] parsing and validation, the unknown-key warning), and each shows what its
header says it shows (Global, metadata operators, resources, MachineOf, Publish, ...).
The real-cluster behaviour of the same files is tested in tests/functional/test_examples.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleetd.model.endpoints import Endpoint
from fleetd.model.names import validate_name
from fleetd.model.requirements import (
    Requirements,
    metadata_matches,
    parse_requirements,
    unknown_options,
    validate_requirements,
)
from fleetd.model.resources import Resources
from fleetd.model.unitfile import UnitFile

UNITS = Path(__file__).resolve().parents[2] / "units"
FILES = sorted(p.name for p in UNITS.iterdir() if p.is_file())
EXPECTED = {"hello.service", "web@.service", "node-exporter.service", "pinned.service",
            "batch-worker@.service", "web-announce@.service", "web-container@.service",
            "web-container-check.service", "maintenance.service", "maintenance.timer",
            "maintenance-uncordon.service"}
# systemd's specifiers that these examples may use (systemd.unit(5), "Specifiers")
SYSTEMD_SPECIFIERS = set("iInNpPHtT%")


def text(name: str) -> str:
    return (UNITS / name).read_text()


def requirements(name: str, unit_name: str | None = None) -> Requirements:
    """[X-Fleet] of units/<name> as the unit `unit_name` (an instance of a template) reads it."""
    return parse_requirements(unit_name or name, UnitFile.parse(text(name)))


def test_every_example_is_present() -> None:
    assert set(FILES) >= EXPECTED


@pytest.mark.parametrize("name", FILES)
def test_example_is_a_valid_unit(name: str) -> None:
    validate_name(name)
    unit = UnitFile.parse(text(name))
    assert unit.description, "a Description= in [Unit]"
    assert unknown_options(unit) == ()
    for unit_name in (name, name.replace("@.", "@1.")):
        validate_requirements(parse_requirements(unit_name, unit))


@pytest.mark.parametrize("name", FILES)
def test_example_starts_with_a_header_saying_how_to_run_it(name: str) -> None:
    lines = text(name).splitlines()
    header = lines[: next(i for i, line in enumerate(lines) if line.startswith("["))]
    assert header[0].startswith(f"# {name}: ")
    assert all(line.startswith("#") for line in header)
    # a unit a timer starts is only loaded
    assert re.search(rf"fleetctl (start|load) .*units/{re.escape(name)}", "\n".join(header))


@pytest.mark.parametrize("name", FILES)
def test_systemd_sees_only_known_specifiers_and_escaped_dollars(name: str) -> None:
    unit = UnitFile.parse(text(name))
    for option in unit.options:
        if option.section == "X-Fleet":
            continue
        for spec in re.findall(r"%(.)", option.value.replace("%%", "")):
            assert spec in SYSTEMD_SPECIFIERS, f"{option.name}: %{spec} is not a systemd specifier"
        if option.name.startswith("Exec"):
            assert "$" not in option.value.replace("$$", ""), f"{option.name}: write $$ for $"


def test_web_template_runs_three_apart_and_publishes_8080() -> None:
    req = requirements("web@.service", "web@2.service")
    assert (req.instances, req.conflicts, req.publish) == (3, ("web@*.service",), (Endpoint(8080),))


def test_node_exporter_is_global_and_publishes_9100() -> None:
    req = requirements("node-exporter.service")
    assert req.is_global and req.publish == (Endpoint(9100),)


@pytest.mark.parametrize(("metadata", "allowed"), [
    ({"host": "h1"}, False), ({"host": "h2"}, True), ({"host": "h3"}, True),
    ({"node": "1", "zone": "a"}, False), ({"node": "2", "zone": "b"}, True),
    ({"node": "3", "zone": "c"}, True),
])
def test_pinned_keeps_off_the_first_machine_of_both_example_clusters(metadata: dict[str, str],
                                                                    allowed: bool) -> None:
    assert metadata_matches(requirements("pinned.service"), metadata) is allowed


def test_batch_worker_demand_comes_from_its_systemd_limits() -> None:
    req = requirements("batch-worker@.service", "batch-worker@7.service")
    assert req.resources == Resources(cpu=1000, memory=256 * 1024 * 1024)
    assert req.instances == 3


def test_web_announce_follows_the_web_instance_with_the_same_number() -> None:
    assert requirements("web-announce@.service", "web-announce@2.service").machine_of == (
        "web@2.service",)
    unit = UnitFile.parse(text("web-announce@.service"))
    assert unit.value("Unit", "BindsTo") == "web@%i.service"
    assert unit.values("Service", "EnvironmentFile") == (  # etcdctl's CA and user, if any
        "/etc/fleet/environment", "-/etc/fleet/etcd-units.env")


def podman_run(name: str) -> list[str]:
    """The words of units/<name>'s `podman run` command line (ExecStart=)."""
    command = UnitFile.parse(text(name)).value("Service", "ExecStart") or ""
    assert command.startswith("/usr/bin/podman run "), command
    return command.split()


@pytest.mark.parametrize("name", ["web-container@.service", "web-container-check.service"])
def test_container_examples_are_systemd_friendly_podman_services(name: str) -> None:
    unit = UnitFile.parse(text(name))
    words = podman_run(name)
    for option in ("--rm", "--replace", "--cgroups=disabled", "--sdnotify=conmon",
                   "--log-driver=passthrough", "--network=host", "--read-only"):
        assert option in words, f"{name}: podman run {option}"
    assert "localhost/fleet-demo:latest" in words
    assert (unit.value("Service", "Type"), unit.value("Service", "NotifyAccess")) == ("notify", "all")
    container = words[words.index("--name") + 1]
    assert unit.value("Service", "ExecStop") == f"/usr/bin/podman stop --ignore --time 10 {container}"
    assert unit.value("Service", "ExecStopPost") == f"/usr/bin/podman rm --ignore --force {container}"


def test_web_container_runs_three_apart_and_publishes_what_it_serves() -> None:
    req = requirements("web-container@.service", "web-container@2.service")
    assert (req.instances, req.conflicts, req.publish) == (
        3, ("web-container@*.service",), (Endpoint(8081),))
    words = podman_run("web-container@.service")
    assert words[words.index("--name") + 1] == "%p-%i"
    assert words[words.index("web-serve") + 1] == "8081"


def test_web_container_check_looks_up_the_web_container_instances() -> None:
    words = podman_run("web-container-check.service")
    assert "--env-file=/etc/fleet/environment" in words
    assert words[words.index("web-check") + 1] == "web-container@"
