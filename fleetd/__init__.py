"""fleetd: a cluster scheduler and unit manager for systemd hosts (a successor to CoreOS fleet)."""

__version__ = "0.1.0"
