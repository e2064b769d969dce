"""fleetctl and template units: Instances=, --instances scaling, and stop/unload/destroy of a
template, end to end against the real API backed by MemoryKV (fixtures of test_fleetctl)."""

from __future__ import annotations

from pathlib import Path

import pytest
import test_fleetctl as base

from fleetd.model.states import TargetState

env, cluster = base.env, base.cluster  # the fixtures (not the real cluster of tests/conftest.py)
HELLO = base.HELLO
WEB = HELLO + "\n[X-Fleet]\nInstances=3\n"
LAUNCHED, LOADED, INACTIVE = TargetState.LAUNCHED, TargetState.LOADED, TargetState.INACTIVE


@pytest.fixture
def web(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "web@.service").write_text(WEB)
    return tmp_path / "web@.service"


async def desired(registry) -> dict[str, TargetState]:
    return {u.name: u.desired for u in await registry.list_units()}


def web_units(*numbers: object) -> list[str]:
    return [f"web@{n}.service" for n in numbers]


async def test_start_template_starts_its_declared_instances(cluster, web) -> None:
    run = await cluster.fleetctl("start", str(web))
    assert run.code == 0, run
    lines = run.out.splitlines()
    assert lines[0] == "Unit web@.service inactive"
    for name in web_units(1, 2, 3):
        assert f"Unit {name} inactive" in lines
        assert f"Unit {name} launched on 113f16a7.../10.0.0.1" in lines
    assert await desired(cluster.registry) == {
        "web@.service": INACTIVE,
        **dict.fromkeys(web_units(1, 2, 3), LAUNCHED),
    }
    template = await cluster.registry.get_unit("web@.service")
    for name in web_units(1, 2, 3):
        assert (await cluster.registry.get_unit(name)).hash == template.hash


async def test_template_only_in_the_registry(cluster, web) -> None:
    assert (await cluster.fleetctl("submit", "web@.service")).code == 0
    web.unlink()
    run = await cluster.fleetctl("load", "web@")
    assert run.code == 0, run
    assert "Unit web@2.service loaded on 113f16a7.../10.0.0.1" in run.out
    assert set((await desired(cluster.registry)).values()) == {INACTIVE, LOADED}


async def test_submit_of_a_template_only_submits_it(env, web) -> None:
    run = await env.fleetctl("submit", "web@.service")
    assert (run.code, run.out) == (0, "Unit web@.service inactive\n")
    assert await desired(env.registry) == {"web@.service": INACTIVE}


async def test_instances_scales_up_then_down(cluster, web) -> None:
    run = await cluster.fleetctl("start", "--instances", "5", "web@.service")
    assert run.code == 0, run
    assert (await cluster.fleetctl("submit", "web@foo.service")).code == 0  # a named instance
    assert (await cluster.fleetctl("start", "web@foo.service")).code == 0
    run = await cluster.fleetctl("start", "--instances", "2", "web@.service")
    assert run.code == 0, run
    destroyed = [line for line in run.out.splitlines() if line.startswith("Destroyed")]
    assert destroyed == [f"Destroyed {n}" for n in web_units(3, 4, 5)]
    assert await desired(cluster.registry) == {
        "web@.service": INACTIVE,
        **dict.fromkeys(web_units(1, 2, "foo"), LAUNCHED),
    }
    assert {s.name for s in await cluster.registry.list_states()} == set(web_units(1, 2, "foo"))


async def test_instances_from_the_file_never_scale_down(cluster, web) -> None:
    assert (await cluster.fleetctl("start", "--instances", "4", "web@.service")).code == 0
    run = await cluster.fleetctl("start", "web@.service")
    assert run.code == 0 and "Destroyed" not in run.out
    assert (await desired(cluster.registry))["web@4.service"] == LAUNCHED


async def test_no_block_triggers_the_instances(env, web) -> None:
    run = await env.fleetctl("start", "--no-block", "--instances", "2", "web@.service")
    assert run.code == 0, run
    assert run.out.splitlines() == [
        "Triggered unit web@.service submit",
        "Triggered unit web@1.service submit",
        "Triggered unit web@2.service submit",
        "Triggered unit web@1.service start",
        "Triggered unit web@2.service start",
    ]


async def test_template_and_plain_units_together(cluster, web, tmp_path) -> None:
    (tmp_path / "hello.service").write_text(HELLO)
    run = await cluster.fleetctl("start", "hello", "web@.service")
    assert run.code == 0, run
    assert set(await desired(cluster.registry)) == {"hello.service", "web@.service"} | set(
        web_units(1, 2, 3)
    )


@pytest.mark.parametrize("verb", ["start", "load"])
async def test_template_without_a_count_writes_nothing(env, tmp_path, monkeypatch, verb) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "web@.service").write_text(HELLO)
    (tmp_path / "hello.service").write_text(HELLO)
    run = await env.fleetctl(verb, "hello", "web@.service")
    assert run.code == 1 and run.out == ""
    assert run.err.startswith(f"Error: web@.service is a template; {verb} instances such as ")
    assert "--instances N" in run.err and "Instances=N" in run.err
    assert await env.registry.list_units() == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--instances", "2", "hello"], "--instances only applies to template units"),
        (["--instances", "0", "web@.service"], "--instances must be a whole number from 1 to"),
        (["--instances", "-3", "web@.service"], "--instances must be a whole number from 1 to"),
    ],
)
async def test_bad_instances_flag_writes_nothing(env, web, argv, message) -> None:
    (web.parent / "hello.service").write_text(HELLO)
    run = await env.fleetctl("start", *argv)
    assert run.code == 1 and run.err.startswith(f"Error: {message}")
    assert await env.registry.list_units() == []


async def test_instances_must_be_a_number(env, web) -> None:
    assert (await env.fleetctl("start", "--instances", "many", "web@.service")).code == 2


async def test_invalid_declared_count_is_refused(env, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "web@.service").write_text(HELLO + "[X-Fleet]\nInstances=lots\n")
    run = await env.fleetctl("start", "web@.service")
    assert run.code == 1 and "Instances must be a whole number" in run.err
    assert await env.registry.list_units() == []


async def test_existing_instance_that_differs_follows_replace(cluster, web) -> None:
    assert (await cluster.fleetctl("start", "web@.service")).code == 0
    web.write_text(WEB.replace("1000", "2000"))
    run = await cluster.fleetctl("start", "web@.service")
    assert "WARNING: Unit web@.service in registry differs from local unit file" in run.err
    run = await cluster.fleetctl("start", "--replace", "web@.service")
    assert run.code == 0, run
    for name in ["web@.service", *web_units(1, 2, 3)]:
        assert "2000" in (await cluster.fleetctl("cat", name)).out
    assert set((await desired(cluster.registry)).values()) == {INACTIVE, LAUNCHED}


async def test_instance_differing_from_its_registry_template_warns(cluster, web) -> None:
    assert (await cluster.fleetctl("start", "--instances", "1", "web@.service")).code == 0
    web.write_text(WEB.replace("1000", "2000"))
    assert (await cluster.fleetctl("submit", "--replace", "web@.service")).code == 0
    run = await cluster.fleetctl("start", "--instances", "1", "web@.service")
    assert run.code == 0, run
    assert (
        "WARNING: Unit web@1.service in registry differs from template web@.service. "
        "Add --replace to override." in run.err
    )
    assert "1000" in (await cluster.fleetctl("cat", "web@1.service")).out


async def test_stop_unload_destroy_act_on_all_instances(cluster, web) -> None:
    assert (await cluster.fleetctl("start", "web@.service")).code == 0
    assert (await cluster.fleetctl("submit", "web@foo.service")).code == 0  # inactive: skipped
    run = await cluster.fleetctl("stop", "web@.service")
    assert run.code == 0, run
    assert run.err.strip() == (
        "Successfully stopped units [web@1.service web@2.service web@3.service]."
    )
    assert set((await desired(cluster.registry)).values()) == {INACTIVE, LOADED}
    run = await cluster.fleetctl("unload", "web@")
    assert run.code == 0, run
    assert set((await desired(cluster.registry)).values()) == {INACTIVE}
    assert (await cluster.fleetctl("start", "web@.service")).code == 0
    run = await cluster.fleetctl("destroy", "web@.service")
    assert run.code == 0, run
    assert run.out.splitlines() == [
        f"Destroyed {n}" for n in [*web_units(1, 2, 3, "foo"), "web@.service"]
    ]
    assert await cluster.registry.list_units() == []
    assert await cluster.registry.list_states() == []


async def test_stop_of_a_template_leaves_other_units_alone(cluster, web, tmp_path) -> None:
    (tmp_path / "webx@.service").write_text(WEB)
    (tmp_path / "web.service").write_text(HELLO)
    assert (await cluster.fleetctl("start", "web@.service", "webx@.service", "web")).code == 0
    assert (await cluster.fleetctl("destroy", "web@.service")).code == 0
    assert set(await desired(cluster.registry)) == {"webx@.service", "web.service"} | {
        f"webx@{n}.service" for n in (1, 2, 3)
    }


async def test_template_with_no_instances_is_not_found(env, web) -> None:
    assert (await env.fleetctl("submit", "web@.service")).code == 0
    run = await env.fleetctl("stop", "web@.service")
    assert (run.code, run.err.strip()) == (0, "Units not found in registry")
    assert (await env.fleetctl("destroy", "--no-block", "web@.service")).out == (
        "Destroyed web@.service\n"
    )
