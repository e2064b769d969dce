"""docs/openapi.json is the document fleetd serves (regenerate it with
`.venv/bin/python -m fleetd.api.openapi > docs/openapi.json`)."""

from __future__ import annotations

from pathlib import Path

from fleetd.api import openapi

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_docs_openapi_json_is_current() -> None:
    assert DOC.read_text() == openapi.pretty_json(), (
        "docs/openapi.json is stale: run `.venv/bin/python -m fleetd.api.openapi > docs/openapi.json`")
