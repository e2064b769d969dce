"""Real fleet unit files (tests/data/fleet-corpus, sources in its SOURCES.md) read as fleet read them.

Every file must parse, pass the checks the API makes when a unit is created (the same function
its handler calls, in process) and give the [X-Fleet] requirements fleet v1.0.0 derived from it;
the one file fleet refused must be refused with fleet's message. The expected requirements below
were worked out by hand from each file and fleet's job/job.go, not from fleetd's code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetd.api import schema
from fleetd.api.handlers import build_unit_file
from fleetd.errors import InvalidUnitFile
from fleetd.model.metadata import parse_metadata
from fleetd.model.requirements import Requirements, parse_requirements, unknown_options
from fleetd.model.unitfile import UnitFile

CORPUS = Path(__file__).resolve().parents[1] / "data" / "fleet-corpus"
GLOBAL = {"is_global": True}


def unit_name(path: Path) -> str:
    """The name the file had in its repository: the part after `__`."""
    return path.name.split("__", 1)[1]


# unit name (a template's files are read as one instance of it) -> what fleet's job.go gives
EXPECTED: dict[str, dict[str, object]] = {
    "hello.service": {},
    "ping.service": {},
    "pong.service": {},  # its section is [X-Flt], not [X-Fleet]: fleet read no requirement
    "pong.1.service": {},  # [X-Flt] too
    "global.service": {},  # [X-Flt] too
    "socket-activated.service": {},
    "simplehttp.service": {},
    "web@8000.service": {},
    "conflict.multiple.1.service": {
        "conflicts": ("conflict.2.service", "conflict.1.service", "conflict.0.service")},
    "metadata@h1.service": {"metadata": parse_metadata(["hostname=h1"])},
    "pin@0123456789abcdef0123456789abcdef.service": {"machine_id": "0123456789abcdef0123456789abcdef"},
    "conflicts-with-hello.service": {"conflicts": ("hello.service",)},
    "conflict-global.1.service": {**GLOBAL, "conflicts": ("conflict-global.*.service",)},
    "subgun-http@1.service": {"conflicts": ("subgun-http@*.service",)},
    "subgun-presence@1.service": {"machine_of": ("subgun-http@1.service",)},
    "apache@1.service": {"conflicts": ("apache@*.service",)},
    "apache-discovery@1.service": {"machine_of": ("apache@1.service",)},
    "registry@1.service": {"conflicts": ("registry@*.service",)},
    "vulcan.service": {},
    "etcd-amb-redis.service": {"machine_of": ("redis-demo.service",)},
    "deis-builder.service": {},
    "deis-database.service": {},
    "deis-store-gateway.service": {},
    "deis-logspout.service": GLOBAL,
    "deis-store-daemon.service": GLOBAL,
    "deis-kube-proxy.service": GLOBAL,
    "deis-mesos-slave.service": GLOBAL,
    "deis-swarm-node.service": GLOBAL,
    "deis-router.service": {"conflicts": ("deis-router@*.service",)},
    "deis-router@1.service": {"conflicts": ("deis-router@*.service",)},
    "coreos-deploy.service": {**GLOBAL, "metadata": parse_metadata(["role=control"])},
    "ssh.pool-1@1.1.service": {"conflicts": ("ssh.pool-1@*.1.1.service",)},
    "ssh.pool-1.register@1.1.service": {"machine_of": ("ssh.pool-1@1.1.service",)},
}
# fleet's reader refused these: an ExecStart= broken over two lines without a backslash
REFUSED = {"myapp.service": "line 12: unexpected newline encountered while parsing option name"}


def corpus() -> list[Path]:
    return sorted(CORPUS.glob("*__*"))


def instance_of(name: str) -> str:
    """The name EXPECTED uses for a file: itself, or the instance of a template listed there."""
    if "@." not in name:
        return name
    prefix = name.split("@", 1)[0] + "@"
    return next(n for n in EXPECTED if n.startswith(prefix) and "@." not in n)


def test_corpus_is_large_and_from_several_repositories() -> None:
    files = corpus()
    assert len(files) >= 30
    assert len({f.name.split("__")[0] for f in files}) >= 5
    listed = (CORPUS / "SOURCES.md").read_text()
    assert all(f"`{f.name}`" in listed for f in files)
    assert {instance_of(unit_name(f)) for f in files} - set(REFUSED) == set(EXPECTED)


@pytest.mark.parametrize("path", [p for p in corpus() if unit_name(p) not in REFUSED], ids=lambda p: p.name)
def test_every_file_is_accepted_with_fleets_requirements(path: Path) -> None:
    name = instance_of(unit_name(path))
    parsed = UnitFile.parse(path.read_text())
    wire = [schema.UnitOption(section=o.section, name=o.name, value=o.value) for o in parsed.options]
    stored = build_unit_file(name, wire)  # what the API's PUT /units/{name} checks and stores
    assert stored == parsed and stored.hash == parsed.hash
    assert parse_requirements(name, stored) == Requirements(**EXPECTED[name])
    assert unknown_options(stored) == ()
    assert UnitFile.parse(stored.serialize()).serialize() == stored.serialize()


@pytest.mark.parametrize(("name", "message"), REFUSED.items())
def test_files_fleet_refused_are_refused_with_its_message(name: str, message: str) -> None:
    (path,) = [p for p in corpus() if unit_name(p) == name]
    with pytest.raises(InvalidUnitFile, match=message):
        UnitFile.parse(path.read_text())


def test_a_continued_value_reaches_systemd_as_one_line() -> None:
    # registry@.service wraps `docker run` over nine lines; systemd joins them with spaces.
    (path,) = [p for p in corpus() if unit_name(p) == "registry@.service"]
    exec_start = UnitFile.parse(path.read_text()).setting("Service", "ExecStart") or ""
    assert exec_start.startswith("/usr/bin/docker run -rm    --name registry-%i    -p 5000:5000")
    assert exec_start.endswith("registry:0.7.1") and "\n" not in exec_start
