"""The pure parts of `python -m bench.engine`: phases from the engine's log, targets, table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.engine import Result, engine_phases, main
from bench.report import incremental_markdown, incremental_targets, table, targets
from bench.seed import machines, unit_ops, unit_text
from fleetd.registry.keys import Keys
from fleetd.registry.kv import Put

LOG = """event='engine leadership acquired' component='engine' token=11 level='info'
event='registry loaded' component='engine' units=1000 machines=100 assignments=0 seconds=0.012 level='info'
event='plan committed' component='engine' scheduled=1000 txns=8 decide_s=0.035 commit_s=0.021 level='info'
event='plan committed' component='engine' scheduled=60 txns=1 decide_s=0.005 commit_s=0.004 level='info'
"""


def result(machines: int, units: int, seconds: float, mode: str = "cold", txns: float = 0.008) -> Result:
    return Result(machines=machines, units=units, mode=mode, mix="plain", seconds=seconds,
                  placements_per_s=round(units / seconds, 1), etcd_txns=int(units * txns),
                  etcd_txn_ops=units, etcd_requests=20, etcd_reads=4, engine_cpu_s=0.1, engine_rss_mb=50.0,
                  txns_per_placement=txns)


def test_phases_come_from_the_engines_info_lines_and_passes_add_up() -> None:
    assert engine_phases(LOG) == {"load_s": 0.012, "decide_s": 0.04, "commit_s": 0.025}
    assert engine_phases("") == {}


def test_targets_are_checked_against_the_runs_present() -> None:
    runs = [result(100, 1000, 0.09), result(100, 3000, 0.3), result(1000, 10000, 2.5),
            result(100, 1000, 0.7, mode="live", txns=0.03)]
    text = targets(runs)
    assert "| 100 x 1,000 cold <= 0.11 s (10x fleet's 1.11 s) | 0.09 s | yes |" in text
    assert "| 100 x 3,000 <= 3.2x the 1,000-unit time (linear) | 3.33x | **no** |" in text
    assert "| 1,000 x 10,000 cold <= 2 s | 2.5 s | **no** |" in text
    assert "0.7 s (slowest live run) | yes" in text
    assert "| etcd txns per placement <= 0.02 | 0.03 (highest) | **no** |" in text
    assert "100,000" not in text  # no such run, no line


def test_the_limit_targets_compare_with_the_bare_txn_time() -> None:
    near = replace(result(1000, 10000, 0.5), limit_s=0.3, limit_ratio=1.67)
    far = replace(result(5000, 100000, 9.0), limit_s=3.0, limit_ratio=3.0)
    text = targets([near, far])
    assert "| 1,000 x 10,000 cold <= 2.0x the bare-txn limit | 1.67x (0.5 s / 0.3 s) | yes |" in text
    assert "| 5,000 x 100,000 cold <= 2.0x the bare-txn limit | 3.0x (9.0 s / 3.0 s) | **no** |" in text
    assert "bare-txn" not in targets([result(1000, 10000, 0.5)])  # no limit measured, no line


def test_table_has_a_row_per_run_and_blank_cells_for_missing_figures() -> None:
    lines = table([result(100, 1000, 0.09)]).splitlines()
    assert len(lines) == 3
    assert lines[2].startswith("| 100 | 1000 | cold | plain | 0.09 |")
    assert lines[2].endswith("|  |  |  |  |  |  |")


def test_seed_writes_each_distinct_file_once_and_one_record_per_unit() -> None:
    keys = Keys("/b/")
    ops = unit_ops(keys, "resources", 1, 20)
    files = [op for op in ops if op.key.startswith(keys.files)]
    units = [op for op in ops if op.key.startswith(keys.units)]
    assert len(files) == 8 and len(units) == 20
    assert all(isinstance(op, Put) for op in ops)
    assert "CPU=" in unit_text("resources", 3) and "[X-Fleet]" not in unit_text("plain", 3)
    assert len({m.id for m in machines(50)}) == 50


def test_incremental_figures_are_checked_against_their_targets() -> None:
    r = replace(result(5000, 100000, 9.0), one_unit_ms=5.9, one_machine_ms=120.0)
    text = incremental_targets(r)
    assert "(`one_unit_ms`) | 5.9 ms | <= 20 ms | yes |" in text
    assert "(`one_machine_ms`) | 120.0 ms | <= 100 ms | **no** |" in text
    section = incremental_markdown(r, "python -m bench.engine --incremental", 5)
    assert "the median of 5 changes each" in section and "| 5000 | 100000 | cold |" in section
    assert '{"one_machine_ms": 120.0, "one_unit_ms": 5.9}' in section


@pytest.mark.parametrize("argv", [["--incremental", "--live"], ["--incremental", "--suite"]])
def test_incremental_goes_with_one_cold_case(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2  # argparse's usage error, before any etcd starts
