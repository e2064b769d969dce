"""`fleetctl --help` and every verb's `--help`, run as the installed fleetctl command: every verb
is listed, each verb's help exits 0 and names each of its flags."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from fleetctl import cli

FLEETCTL = Path(sys.executable).parent / "fleetctl"
PARSER = cli.build_parser({})
VERBS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices


def _help(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FLEETCTL), *args, "--help"], capture_output=True, text=True,
                          timeout=60)


def test_top_level_help_lists_every_verb_and_global_flag() -> None:
    done = _help()
    assert done.returncode == 0, done.stderr
    for verb in VERBS:
        assert f"    {verb} " in done.stdout or f"    {verb}\n" in done.stdout, verb
    for flag in [*cli.GLOBAL_FLAGS, "debug", "version"]:
        assert f"--{flag}" in done.stdout, flag
    assert "FLEETCTL_TUNNEL" in done.stdout


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_each_verbs_help_names_its_flags(verb: str) -> None:
    done = _help(verb)
    assert done.returncode == 0, done.stderr
    for action in VERBS[verb]._actions:
        if action.help is argparse.SUPPRESS:
            continue
        for option in action.option_strings:
            assert option in done.stdout, (verb, option)
