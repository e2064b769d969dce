"""`python -m fleetd`: the daemon's entry point."""

from fleetd.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
