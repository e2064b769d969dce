"""Tier 1-2: which units `fleetd --stop-at-most-once` stops when fleetd is gone."""

from __future__ import annotations

from pathlib import Path

from fleetd.stop_at_most_once import at_most_once_units


def test_only_at_most_once_units_are_picked(tmp_path: Path) -> None:
    plain = "[Service]\nExecStart=/bin/true\n"
    (tmp_path / "plain.service").write_text(plain)
    (tmp_path / "once.service").write_text(plain + "[X-Fleet]\nAtMostOnce=true\n")
    (tmp_path / "off.service").write_text(plain + "[X-Fleet]\nAtMostOnce=no\n")
    (tmp_path / "broken.service").write_text("[Service\n")
    (tmp_path / "not a unit").write_text(plain + "[X-Fleet]\nAtMostOnce=true\n")
    assert at_most_once_units(str(tmp_path)) == ["once.service"]
    assert at_most_once_units(str(tmp_path / "missing")) == []
