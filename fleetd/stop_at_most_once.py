"""Stop this host's AtMostOnce units when fleetd itself is gone (fleet.service's ExecStopPost).

While fleetd runs, its agent stops AtMostOnce units as soon as it cannot prove it holds its
lease. When fleetd stops for any reason (a crash, a kill, a hang ended by systemd's watchdog,
or `systemctl stop fleet`), nothing keeps that promise, so `fleetd --stop-at-most-once` runs
after it: it reads the unit files fleetd installed (the units directory) and stops, with
systemctl, those whose `[X-Fleet]` says AtMostOnce=true. fleetd starts them again when it
comes back and they are still assigned here. Other units keep running, as in fleet.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from fleetd.errors import InvalidInput
from fleetd.model.names import validate_name
from fleetd.model.requirements import parse_requirements
from fleetd.model.unitfile import UnitFile


def at_most_once_units(directory: str) -> list[str]:
    """Names of the unit files in `directory` that are AtMostOnce (unreadable files are skipped)."""
    found = []
    for path in sorted(Path(directory).glob("*")):
        try:
            validate_name(path.name)
            if parse_requirements(path.name, UnitFile.parse(path.read_text())).at_most_once:
                found.append(path.name)
        except (InvalidInput, OSError, UnicodeDecodeError):
            continue
    return found


def stop_at_most_once(directory: str) -> int:
    """Stop them all with one systemctl call; return its exit status (0 if there were none)."""
    names = at_most_once_units(directory)
    if not names:
        print(f"fleetd: no AtMostOnce units in {directory}")
        return 0
    print(f"fleetd: fleetd is gone; stopping AtMostOnce units: {' '.join(names)}")
    return subprocess.run(["systemctl", "stop", "--", *names], check=False).returncode
