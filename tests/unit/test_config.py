"""fleetd configuration: fleet's keys from the file and FLEET_* env; bad values name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleetd.config import load_config, parse_duration
from fleetd.errors import ConfigError


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30.0), ("500ms", 0.5), ("1m", 60.0), ("2.5", 2.5), (" 3s ", 3.0), ("1h", 3600.0),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "fleet.conf"
    path.write_text(text)
    return str(path)


def test_file_values_and_env_override(tmp_path: Path) -> None:
    path = write(tmp_path, "# comment\netcd_servers=http://10.0.0.1:2379\nagent_ttl=5s\n"
                           'metadata="region=east, disk=ssd"\nverbosity=1\n')
    cfg, ignored = load_config(path, {"FLEET_AGENT_TTL": "7s", "HOME": "/root"})
    assert cfg.etcd_servers == ["http://10.0.0.1:2379"]
    assert cfg.agent_ttl == 7.0
    assert cfg.metadata == {"region": "east", "disk": "ssd"}
    assert cfg.verbosity == 1
    assert ignored == []


def test_fleet_list_syntax_for_etcd_servers() -> None:
    cfg, _ = load_config(None, {"FLEET_ETCD_SERVERS": '["http://a:2379","http://b:2379"]'})
    assert cfg.etcd_servers == ["http://a:2379", "http://b:2379"]


@pytest.mark.parametrize(("env", "key"), [
    ({"FLEET_AGENT_TTL": "soon"}, "agent_ttl"),
    ({"FLEET_ETCD_SERVERS": "localhost"}, "etcd_servers"),
    ({"FLEET_VERBOSITY": "loud"}, "verbosity"),
    ({"FLEET_DISABLE_ENGINE": "maybe"}, "disable_engine"),
    ({"FLEET_ENGINE_RECONCILE_INTERVAL": "0"}, "engine_reconcile_interval"),
    ({"FLEET_API_LISTEN": "nowhere"}, "api_listen"),
    ({"FLEET_SCHEDULER_POLICY": "random"}, "scheduler_policy"),
    ({"FLEET_CAPACITY_CPU": "-1"}, "capacity_cpu"),
    ({"FLEET_CAPACITY_MEMORY": "lots"}, "capacity_memory"),
])
def test_bad_values_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(None, env)


def test_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.conf"), {})


def test_line_without_equals_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"fleet.conf:2"):
        load_config(write(tmp_path, "verbosity=1\nnonsense\n"), {})


def test_deprecated_and_unknown_keys_are_reported_not_fatal(tmp_path: Path) -> None:
    _, ignored = load_config(write(tmp_path, "verify_units=true\nfavourite_colour=blue\n"), {})
    assert ignored == ["favourite_colour", "verify_units"]


def test_scheduling_keys() -> None:
    cfg, _ = load_config(None, {"FLEET_SCHEDULER_POLICY": "Spread", "FLEET_CAPACITY_CPU": "1.5",
                                "FLEET_CAPACITY_MEMORY": "2G"})
    assert (cfg.scheduler_policy, cfg.capacity_cpu, cfg.capacity_memory) == ("spread", 1.5, "2G")
    assert load_config(None, {})[0].scheduler_policy == "binpack"


# access keys (issue 5) -----------------------------------------------------------------------

TLS = {"FLEET_API_TLS_CERT_FILE": "/c.pem", "FLEET_API_TLS_KEY_FILE": "/k.pem"}
CLIENT_CA = {"FLEET_API_TLS_CLIENT_CA_FILE": "/ca.pem"}


@pytest.mark.parametrize(("env", "keys"), [
    ({"FLEET_API_TLS_CERT_FILE": "/c.pem"}, "api_tls_cert_file and api_tls_key_file"),
    ({"FLEET_API_TLS_KEY_FILE": "/k.pem"}, "api_tls_cert_file and api_tls_key_file"),
    ({"FLEET_API_TLS_CLIENT_CA_FILE": "/ca.pem"}, "api_tls_client_ca_file needs"),
    ({"FLEET_API_AUTH": "certificate"}, "invalid value for api_auth: .*'certificate' is not one "
                                        "of token, cert, token\\+cert, token/cert"),
    *(({**TLS, "FLEET_API_AUTH": mode}, re.escape(f"api_auth={mode} needs api_tls_client_ca_file"))
      for mode in ("cert", "token+cert", "token/cert")),
    *(({**TLS, **CLIENT_CA, "FLEET_API_AUTH": mode}, re.escape(f"api_auth={mode} needs api_token_file"))
      for mode in ("token+cert", "token/cert")),
    ({**TLS, **CLIENT_CA, "FLEET_API_AUTH": "cert", "FLEET_API_TOKEN_FILE": "/t"},
     "api_auth=cert checks no token: remove api_token_file"),
    ({"FLEET_ETCD_SERVERS": "https://e:2379", "FLEET_ETCD_CERTFILE": "/c.pem"},
     "etcd_certfile and etcd_keyfile"),
    ({"FLEET_ETCD_CAFILE": "/ca.pem"}, "etcd_servers has http:// URLs"),
    ({"FLEET_ETCD_PASSWORD_FILE": "/pw"}, "need etcd_username"),
    ({"FLEET_ETCD_USERNAME": "u", "FLEET_ETCD_PASSWORD": "p", "FLEET_ETCD_PASSWORD_FILE": "/pw"},
     "etcd_password and etcd_password_file"),
])
def test_access_keys_that_need_each_other_name_them(env: dict[str, str], keys: str) -> None:
    with pytest.raises(ConfigError, match=keys):
        load_config(None, env)


def test_etcd_tls_and_auth_keys_with_https_servers() -> None:
    cfg, ignored = load_config(None, {
        "FLEET_ETCD_SERVERS": "https://10.0.0.1:2379,https://10.0.0.2:2379",
        "FLEET_ETCD_CAFILE": "/etc/fleet/ca.pem", "FLEET_ETCD_CERTFILE": "/etc/fleet/c.pem",
        "FLEET_ETCD_KEYFILE": "/etc/fleet/c.key", "FLEET_ETCD_USERNAME": "fleet",
        "FLEET_ETCD_PASSWORD_FILE": "/etc/fleet/etcd-password",
    })
    assert cfg.etcd_servers == ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
    assert (cfg.etcd_cafile, cfg.etcd_username) == ("/etc/fleet/ca.pem", "fleet")
    assert ignored == []


@pytest.mark.parametrize(("mode", "token"), [
    ("token", True), ("cert", False), ("token+cert", True), ("token/cert", True)])
def test_every_api_auth_mode_loads_with_what_it_needs(mode: str, token: bool) -> None:
    env = {**TLS, **CLIENT_CA, "FLEET_API_AUTH": mode, **({"FLEET_API_TOKEN_FILE": "/t"} if token else {})}
    assert load_config(None, env)[0].api_auth == mode
    assert load_config(None, {})[0].api_auth == "token"


def test_api_tls_and_token_keys(tmp_path: Path) -> None:
    cfg, _ = load_config(write(tmp_path, "api_listen=0.0.0.0:49153\napi_tls_cert_file=/c.pem\n"
                                         "api_tls_key_file=/k.pem\napi_token_file=/t\n"), {})
    assert (cfg.api_listen, cfg.api_tls_cert_file, cfg.api_token_file) == ("0.0.0.0:49153", "/c.pem", "/t")
    assert cfg.api_insecure_tcp is False


def test_roles_default_to_all_and_keep_one_order() -> None:
    assert load_config(None, {})[0].roles == ["agent", "engine", "api"]
    assert load_config(None, {"FLEET_ROLES": "api, agent"})[0].roles == ["agent", "api"]
    assert load_config(None, {"FLEET_ROLES": "agent"})[0].roles == ["agent"]


@pytest.mark.parametrize(("roles", "message"), [
    ("agent,scheduler", r"unknown role\(s\) scheduler"),
    ("engine,api", "roles must include agent"),
])
def test_bad_roles_are_refused_naming_the_key(roles: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"invalid value for roles: .*{message}"):
        load_config(None, {"FLEET_ROLES": roles})
