"""The benchmark commands run, print their JSON line, and record into their own section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import placement
from bench.record import record


def test_placement_prints_the_ratios_as_the_last_json_line(capsys: pytest.CaptureFixture[str],
                                                           tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    assert placement.main(["--json", "--units", "40", "--record", str(out)]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("binpack_batch_ratio", "binpack_online_ratio", "spread_batch_ratio"):
        assert figures[key] >= 1.0
    assert figures["binpack_batch_ratio"] < figures["spread_batch_ratio"]
    assert "<!-- bench:placement -->" in out.read_text()


def test_record_replaces_only_its_own_section(tmp_path: Path) -> None:
    path = tmp_path / "b.md"
    path.write_text("# B\n\nintro\n")
    record(path, "one", "first")
    record(path, "two", "second")
    record(path, "one", "again")
    text = path.read_text()
    assert text.count("<!-- bench:one -->") == 1 and "again" in text and "first" not in text
    assert text.startswith("# B\n\nintro\n") and "second" in text
