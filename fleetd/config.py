"""fleetd's configuration: fleet's flat `key=value` file plus FLEET_* environment overrides.

Sources, later wins: built-in defaults, the config file (default /etc/fleet/fleet.conf),
then `FLEET_<KEY>` environment variables. A bad value is a `ConfigError` naming the key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fleetd.errors import ConfigError, InvalidInput
from fleetd.model.resources import parse_size

DEFAULT_CONFIG_PATH = "/etc/fleet/fleet.conf"
#: What a reload (SIGHUP) applies while running; any other change needs a restart.
RELOADABLE = ("metadata", "capacity_cpu", "capacity_memory", "verbosity")
DEPRECATED_KEYS = frozenset({"verify_units", "authorized_keys_file", "enable_grpc", "disable_watches",
                             "token_limit", "systemd_user"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
# api_auth: what a TCP API request must prove (fleetd.api.access applies it)
API_AUTH_MODES = ("token", "cert", "token+cert", "token/cert")
CERT_MODES = ("cert", "token+cert", "token/cert")  # the ones a client certificate takes part in
ROLES = ("agent", "engine", "api")  # what a host does; each needs its own etcd permissions


def parse_duration(text: str | float) -> float:
    """'30s', '1m', '500ms', '2.5' (seconds) -> seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 500ms, 1m)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_list(text: str | list[str]) -> list[str]:
    """fleet's lenient list: 'a,b', '["a","b"]' and spaces all work."""
    if isinstance(text, list):
        return text
    return [item.strip(' "[]') for item in text.split(",") if item.strip(' "[]')]


def parse_metadata(text: str | Mapping[str, str]) -> dict[str, str]:
    """'k=v,k2=v2' (optionally quoted); pairs without '=' are ignored, later keys win."""
    if isinstance(text, Mapping):
        return dict(text)
    pairs = (item.strip().strip('"').split("=", 1) for item in text.split(","))
    return {k.strip(): v.strip() for k, v in (p for p in pairs if len(p) == 2) if k.strip()}


class FleetConfig(BaseModel):
    """Every setting fleetd reads. Field names are fleet's config keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    etcd_servers: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:2379"])
    etcd_key_prefix: str = "/_coreos.com/fleet/"
    etcd_request_timeout: float = Field(default=2.0, gt=0)
    public_ip: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)
    agent_ttl: float = Field(default=5.0, ge=2)
    fence_grace: float = Field(default=2.0, ge=0)
    mass_failure_brake: bool = True
    engine_reconcile_interval: float = Field(default=2.0, gt=0)
    unit_file_gc_grace: float = Field(default=60.0, gt=0)
    maintenance_lock_ttl: float = Field(default=600.0, ge=10)
    drain_batch: int = Field(default=4, ge=0)
    disable_engine: bool = False
    units_directory: str = "/run/fleet/units/"
    verbosity: int = Field(default=0, ge=0)
    api_socket: str = "/var/run/fleet.sock"
    api_socket_group: str = ""
    api_listen: str = ""
    api_insecure_tcp: bool = False
    # access: TLS and a bearer token and/or client certificate for the TCP API; TLS and auth
    # for etcd
    api_auth: str = "token"
    api_tls_cert_file: str = ""
    api_tls_key_file: str = ""
    api_tls_client_ca_file: str = ""
    api_token_file: str = ""
    etcd_cafile: str = ""
    etcd_certfile: str = ""
    etcd_keyfile: str = ""
    etcd_username: str = ""
    etcd_password: str = ""
    etcd_password_file: str = ""
    etcd_insecure: bool = False  # accept plain http:// etcd URLs (fleetd warns at every start)
    roles: list[str] = Field(default_factory=lambda: list(ROLES))
    systemd_bus: str = "unix:path=/run/dbus/system_bus_socket"
    machine_id_file: str = "/etc/machine-id"
    stop_units_on_shutdown: bool = False
    scheduler_policy: str = "binpack"
    capacity_cpu: float = Field(default=0.0, ge=0)
    capacity_memory: str = ""

    _lists = field_validator("etcd_servers", "roles", mode="before")(parse_list)
    _meta = field_validator("metadata", mode="before")(parse_metadata)

    @field_validator("agent_ttl", "fence_grace", "engine_reconcile_interval", "etcd_request_timeout",
                     "unit_file_gc_grace", "maintenance_lock_ttl", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("etcd_servers")
    @classmethod
    def _urls(cls, servers: list[str]) -> list[str]:
        for url in servers:
            if not re.match(r"^https?://[^/:]+:\d+/?$", url):
                raise ValueError(f"{url!r} is not an etcd URL like http://10.0.0.1:2379")
        if not servers:
            raise ValueError("at least one etcd server is needed")
        return servers

    @field_validator("roles")
    @classmethod
    def _roles(cls, roles: list[str]) -> list[str]:
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown role(s) {', '.join(unknown)}: use agent, engine, api")
        if "agent" not in roles:
            raise ValueError("every fleetd runs the agent: roles must include agent")
        return [r for r in ROLES if r in roles]

    @field_validator("scheduler_policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        if value.lower() not in ("binpack", "spread"):
            raise ValueError(f"{value!r} is not a policy: use binpack or spread")
        return value.lower()

    @field_validator("capacity_memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if value:
            try:
                parse_size(value, "capacity_memory")
            except InvalidInput as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("api_auth")
    @classmethod
    def _auth(cls, value: str) -> str:
        if value not in API_AUTH_MODES:
            raise ValueError(f"{value!r} is not one of {', '.join(API_AUTH_MODES)}")
        return value

    @field_validator("api_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value and not re.match(r"^[^\s:]*:\d+$", value):
            raise ValueError(f"{value!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _access(self) -> FleetConfig:
        """Pairs that only make sense together; each message names the keys involved."""
        for problem in _access_problems(self):
            raise ValueError(problem)
        return self


def _access_problems(cfg: FleetConfig) -> list[str]:
    problems = []
    if bool(cfg.api_tls_cert_file) != bool(cfg.api_tls_key_file):
        problems.append("api_tls_cert_file and api_tls_key_file: set both or neither")
    if cfg.api_tls_client_ca_file and not cfg.api_tls_cert_file:
        problems.append("api_tls_client_ca_file needs api_tls_cert_file and api_tls_key_file")
    if cfg.api_auth in CERT_MODES and not cfg.api_tls_client_ca_file:
        problems.append(f"api_auth={cfg.api_auth} needs api_tls_client_ca_file (the CA that signs "
                        "the clients' certificates)")
    if cfg.api_auth in ("token+cert", "token/cert") and not cfg.api_token_file:
        problems.append(f"api_auth={cfg.api_auth} needs api_token_file")
    if cfg.api_auth == "cert" and cfg.api_token_file:
        problems.append("api_auth=cert checks no token: remove api_token_file "
                        "(or use api_auth=token+cert or token/cert)")
    if bool(cfg.etcd_certfile) != bool(cfg.etcd_keyfile):
        problems.append("etcd_certfile and etcd_keyfile: set both or neither")
    etcd_tls = cfg.etcd_cafile or cfg.etcd_certfile
    if etcd_tls and any(url.startswith("http://") for url in cfg.etcd_servers):
        problems.append("etcd_cafile/etcd_certfile are set but etcd_servers has http:// URLs; "
                        "use https:// URLs")
    if cfg.etcd_password and cfg.etcd_password_file:
        problems.append("etcd_password and etcd_password_file: set one, not both")
    if (cfg.etcd_password or cfg.etcd_password_file) and not cfg.etcd_username:
        problems.append("etcd_password/etcd_password_file need etcd_username")
    return problems


def read_file(path: str) -> dict[str, str]:
    """Parse fleet's flat config file: `key=value` lines, '#' comments, no sections."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path} does not exist or is not a file")
    values: dict[str, str] = {}
    for number, raw in enumerate(file.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected key=value, got {raw!r}")
        values[key.strip()] = value.strip().strip('"')
    return values


def read_env(environ: Mapping[str, str]) -> dict[str, str]:
    fields = FleetConfig.model_fields
    return {k[6:].lower(): v for k, v in environ.items()
            if k.startswith("FLEET_") and (k[6:].lower() in fields or k[6:].lower() in DEPRECATED_KEYS)}


def load_config(path: str | None, environ: Mapping[str, str] = os.environ) -> tuple[FleetConfig, list[str]]:
    """Build the configuration; return it with the keys that were ignored (deprecated/unknown).

    A missing default file is fine; a missing file the user named is an error.
    """
    raw: dict[str, str] = {}
    if path is not None or Path(DEFAULT_CONFIG_PATH).is_file():
        raw.update(read_file(path or DEFAULT_CONFIG_PATH))
    raw.update(read_env(environ))
    ignored = sorted(k for k in raw if k not in FleetConfig.model_fields)
    known = {k: v for k, v in raw.items() if k in FleetConfig.model_fields}
    try:
        return FleetConfig.model_validate(known), ignored
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "config"
        parts.append(f"invalid value for {key}: {err['msg']}")
    return "; ".join(parts)


def reload_changes(running: FleetConfig, new: FleetConfig) -> tuple[FleetConfig, list[str], list[str]]:
    """What a reload does: the configuration to run with from now on (the running one with the
    reloadable changes of `new`), the keys it applies, and the changed keys that need a restart."""
    changed = [k for k in FleetConfig.model_fields if getattr(running, k) != getattr(new, k)]
    applied = [k for k in changed if k in RELOADABLE]
    merged = running.model_copy(update={k: getattr(new, k) for k in applied})
    return merged, applied, [k for k in changed if k not in RELOADABLE]
