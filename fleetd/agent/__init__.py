"""The agent: runs on every host and makes its systemd match the units assigned to it."""
