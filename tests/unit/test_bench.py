"""The benchmark commands run, print their JSON line, and record into their own section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import placement
from bench.agent_figures import (
    Timeline,
    cpu_seconds,
    json_line,
    latencies,
    markdown,
    parse_show,
    percentile,
    spread,
    status_kib,
    unit_names,
    unit_text,
)
from bench.destroy import markdown as destroy_markdown
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


# bench.agent: its pure parts (the bench itself needs a real host; the suite never runs it) ---


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert [percentile(values, q) for q in (0, 50, 90, 100)] == [1.0, 5.0, 9.0, 10.0]
    assert spread("x", [3.0, 1.0, 2.0]) == {"x_ms_p50": 2.0, "x_ms_p90": 3.0, "x_ms_max": 3.0}


def test_proc_and_systemctl_figures_are_parsed() -> None:
    stat = "42 (python3 -m x) S 1 42 42 0 -1 4194560 900 0 0 0 150 50 0 0 20 0 8 0 1000 1 1"
    assert cpu_seconds(stat, 100) == 2.0
    assert status_kib("Name:\tpython3\nVmRSS:\t   61416 kB\n", "VmRSS") == 61416
    shown = parse_show("Id=a.service\nActiveEnterTimestampMonotonic=3000\n\n"
                       "ActiveEnterTimestampMonotonic=5000\nId=b.service\n")
    assert shown["b.service"]["ActiveEnterTimestampMonotonic"] == "5000"


def test_latency_steps_from_systemd_to_the_bus_to_etcd() -> None:
    unit = unit_names(1)[0]
    timeline = Timeline()
    timeline.signal(unit, "activating", 1.0)
    timeline.signal(unit, "active", 1.012)
    timeline.state(unit, "put", '{"active":"activating"}', 7, 1.011)
    timeline.state(unit, "put", '{"active":"active"}', 8, 1.020)
    timeline.state("other.service", "put", '{"active":"active"}', 9, 1.030)
    shown = {unit: {"InactiveExitTimestampMonotonic": "1000000", "ActiveEnterTimestampMonotonic": "1010000"}}
    figures = latencies(timeline, shown)
    assert figures["systemd_start_ms_p50"] == 10.0
    assert figures["signal_after_active_ms_p50"] == 2.0
    assert figures["etcd_after_signal_ms_p50"] == 8.0
    assert figures["above_systemd_ms_p50"] == 10.0
    assert figures["start_to_etcd_ms_max"] == 20.0
    assert timeline.revisions == {7, 8}


def test_agent_figures_are_recorded_in_their_own_section_and_end_in_one_json_line(tmp_path: Path) -> None:
    figures = {"units": 200, "idle_seconds": 60, "rss_mib": 58.1, "rss_empty_mib": 57.0,
               "idle_cpu_percent": 0.4, "idle_etcd_revisions": 0, "state_txns": 12, "launch_seconds": 2.5,
               **spread("above_systemd", [9.0, 11.0]), **spread("systemd_start", [2.0])}
    text = markdown(figures, "python -m bench.agent --units 200 --idle-seconds 60", "a test machine")
    assert json.loads(text.split("```json\n")[1].split("```")[0]) == figures
    assert json.loads(json_line(figures)) == figures and "\n" not in json_line(figures)
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\n<!-- bench:placement -->\nkept\n<!-- /bench:placement -->\n")
    record(path, "agent", text)
    recorded = path.read_text()
    assert "kept" in recorded and "<!-- bench:agent -->" in recorded
    assert "python -m bench.agent --units 200" in recorded and "a test machine" in recorded


def test_bench_units_are_exec_sleepers_pinned_by_machine_id() -> None:
    text = unit_text("bench-agent-0007.service", "ab" * 16)
    assert "Type=exec" in text and "ExecStart=/bin/sleep infinity" in text
    assert f"MachineID={'ab' * 16}" in text


def test_destroy_figures_are_recorded_in_their_own_section(tmp_path: Path) -> None:
    figures = {"units": 5000, "seconds": 2.5, "units_per_s": 2000, "target_seconds": 30.0,
               "met": True, "etcd_data": "tmpfs"}
    text = destroy_markdown(figures, "python -m bench.destroy --units 5000", "a test machine")
    assert json.loads(text.split("```json\n")[1].split("```")[0]) == figures
    assert "**2.5 s** for 5000 units" in text and "target < 30 s: met" in text
    path = tmp_path / "benchmarks.md"
    record(path, "destroy", text)
    assert "<!-- bench:destroy -->" in path.read_text()
