"""fleetctl: the command-line client of fleetd's HTTP API (fleet's user-facing contract)."""

from __future__ import annotations

from importlib import metadata


def _version() -> str:
    try:
        return metadata.version("fleetd")
    except metadata.PackageNotFoundError:
        return "0.1.0"


__version__ = _version()
