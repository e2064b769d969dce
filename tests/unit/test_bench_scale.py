"""bench.scale's arithmetic and its section of docs/benchmarks.md (the run itself needs the
local cluster: `make scale`)."""

from __future__ import annotations

import pytest

from bench import scale


def test_summary_names_and_rounds_the_distribution() -> None:
    figures = scale.summary("start_to_active", [float(i) for i in range(1, 101)])
    assert figures == {"start_to_active_p50_s": pytest.approx(50.5, abs=0.5),
                       "start_to_active_p99_s": pytest.approx(99.0, abs=1.0),
                       "start_to_active_max_s": 100.0}


def test_markdown_holds_the_command_and_both_rows() -> None:
    result = {"date": "2026-12-08", "hosts": 50, "units": 2000, "lose": 5, "moved_units": 200,
              **scale.summary("start_to_active", [1.0, 2.0]),
              **scale.summary("loss_to_replaced", [6.0, 7.0])}
    text = scale.markdown(result, "python -m bench.scale --hosts 50")
    assert "`python -m bench.scale --hosts 50`" in text
    assert "| start to active | " in text and "| host loss to replacement (200 units) |" in text


@pytest.mark.parametrize("argv", [["--lose", "0"], ["--hosts", "10", "--lose", "5"]])
def test_a_loss_the_brake_would_hold_is_refused_before_anything_starts(argv: list[str]) -> None:
    with pytest.raises(SystemExit, match="--lose must be"):
        scale.main(argv)
