"""Driving a host's systemd: the port, the D-Bus adapter and an in-memory fake."""
