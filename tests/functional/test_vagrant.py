"""The Vagrant cluster's files: `vagrant validate` accepts vagrant/Vagrantfile for 1, 3 and 5
nodes, and vagrant/provision.sh (shared with the local cluster) writes the fleet.conf,
/etc/fleet/environment and fleet.service drop-in its inputs ask for, read back with fleetd's own
config parser. No VM boots here: `make vagrant-test` boots the cluster under KVM for real (it
takes minutes, so it is not part of `make test`; tests/unit/test_vagrant_cluster.py covers its
failure paths). `make deps` installs Debian's vagrant and vagrant-libvirt; without them the
validate tests skip, or fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from fleetd.config import load_config

VAGRANT_DIR = Path(__file__).resolve().parents[2] / "vagrant"
PROVISION = VAGRANT_DIR / "provision.sh"


def vagrant_bin() -> str:
    found = shutil.which("vagrant")
    if found is None:
        message = "vagrant is not installed (make deps installs Debian's vagrant and vagrant-libvirt)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    return found


def validate(nodes: str | None, dotfiles: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FLEET_NODES"}
    env["VAGRANT_DEFAULT_PROVIDER"] = "libvirt"
    env["VAGRANT_CHECKPOINT_DISABLE"] = "1"
    env["VAGRANT_DOTFILE_PATH"] = str(dotfiles)  # not vagrant/.vagrant in the checkout
    if nodes is not None:
        env["FLEET_NODES"] = nodes
    return subprocess.run([vagrant_bin(), "validate"], cwd=VAGRANT_DIR, env=env, capture_output=True,
                          text=True, timeout=180, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("nodes", [None, "", "1", "5"])
def test_vagrant_validate_accepts_the_vagrantfile(nodes: str | None, tmp_path: Path):
    proc = validate(nodes, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout


@pytest.mark.parametrize("nodes", ["0", "51", "three"])
def test_vagrant_validate_refuses_a_bad_node_count(nodes: str, tmp_path: Path):
    proc = validate(nodes, tmp_path)
    assert proc.returncode != 0
    assert "FLEET_NODES must be a number from 1 to 50" in proc.stdout + proc.stderr


def test_provision_script_parses():
    proc = subprocess.run(["bash", "-n", str(PROVISION)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def provision_fleet(root: Path, **inputs: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "DESTDIR": str(root), **inputs}
    return subprocess.run(["bash", str(PROVISION), "fleet"], env=env, capture_output=True, text=True,
                          timeout=30)


def test_provision_fleet_writes_what_its_inputs_say(tmp_path: Path):
    (tmp_path / "etc" / "fleet").mkdir(parents=True)
    for name in ("api.crt", "api.key", "api.token", "api-ca.crt"):
        (tmp_path / "etc" / "fleet" / name).write_text("x\n")
        (tmp_path / "etc" / "fleet" / name).chmod(0o644)
    proc = provision_fleet(
        tmp_path, FLEET_ETCD_ENDPOINTS="http://192.168.56.11:2379,http://192.168.56.12:2379",
        FLEET_PUBLIC_IP="192.168.56.12", FLEET_METADATA="node=2,zone=b", FLEET_HOST="node2",
        FLEET_MACHINE_ID="0123456789abcdef0123456789abcdef", FLEET_API_SOCKET_GROUP="fleet",
        FLEET_API_LISTEN="192.168.56.12:49153", FLEET_API_TLS_CERT="/etc/fleet/api.crt",
        FLEET_API_TLS_KEY="/etc/fleet/api.key", FLEET_API_TOKEN_FILE="/etc/fleet/api.token",
        FLEET_API_TLS_CLIENT_CA="/etc/fleet/api-ca.crt", FLEET_API_AUTH="token/cert",
        FLEET_EXTRA_CONF="verbosity=1 engine_reconcile_interval=1",
        FLEET_PYTHON="/opt/fleetd/bin/python3")
    assert proc.returncode == 0, proc.stderr
    cfg, ignored = load_config(str(tmp_path / "etc" / "fleet" / "fleet.conf"), environ={})
    assert ignored == []
    assert cfg.etcd_servers == ["http://192.168.56.11:2379", "http://192.168.56.12:2379"]
    assert (cfg.public_ip, cfg.metadata) == ("192.168.56.12", {"node": "2", "zone": "b"})
    assert (cfg.api_listen, cfg.api_socket_group) == ("192.168.56.12:49153", "fleet")
    assert (cfg.api_tls_cert_file, cfg.api_tls_key_file, cfg.api_token_file) == (
        "/etc/fleet/api.crt", "/etc/fleet/api.key", "/etc/fleet/api.token")
    assert (cfg.api_tls_client_ca_file, cfg.api_auth) == ("/etc/fleet/api-ca.crt", "token/cert")
    assert (cfg.verbosity, cfg.engine_reconcile_interval) == (1, 1.0)
    for secret in ("api.key", "api.token"):  # fleetd refuses group/other-readable secrets
        assert stat.S_IMODE((tmp_path / "etc" / "fleet" / secret).stat().st_mode) == 0o600
    environment = (tmp_path / "etc" / "fleet" / "environment").read_text().splitlines()
    assert environment == ["FLEET_PUBLIC_IP=192.168.56.12",
                           "FLEET_ETCD_ENDPOINTS=http://192.168.56.11:2379,http://192.168.56.12:2379",
                           "FLEET_MACHINE_ID=0123456789abcdef0123456789abcdef", "FLEET_HOST=node2"]
    unit_dir = tmp_path / "etc" / "systemd" / "system"
    assert (unit_dir / "fleet.service").read_text() == (VAGRANT_DIR / "fleet.service").read_text()
    dropin = (unit_dir / "fleet.service.d" / "10-provision.conf").read_text().splitlines()
    assert "ExecStart=/opt/fleetd/bin/python3 -m fleetd --config /etc/fleet/fleet.conf" in dropin
    assert dropin.index("ExecStart=") < dropin.index(
        "ExecStart=/opt/fleetd/bin/python3 -m fleetd --config /etc/fleet/fleet.conf")


def test_provision_fleet_local_cluster_style_keeps_the_system_python(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "machine-id").write_text("fedcba9876543210fedcba9876543210\n")
    proc = provision_fleet(tmp_path, FLEET_ETCD_ENDPOINTS="http://10.213.1.1:12379",
                           FLEET_PUBLIC_IP="10.213.1.11", FLEET_HOST="h1",
                           FLEET_PYTHONPATH="/opt/fleet-hostlib:/opt/fleet")
    assert proc.returncode == 0, proc.stderr
    cfg, _ = load_config(str(tmp_path / "etc" / "fleet" / "fleet.conf"), environ={})
    assert (cfg.api_listen, cfg.metadata, cfg.api_token_file) == ("", {}, "")
    environment = (tmp_path / "etc" / "fleet" / "environment").read_text()
    assert "FLEET_MACHINE_ID=fedcba9876543210fedcba9876543210\n" in environment
    dropin = (tmp_path / "etc/systemd/system/fleet.service.d/10-provision.conf").read_text()
    assert "Environment=PYTHONPATH=/opt/fleet-hostlib:/opt/fleet\n" in dropin
    assert "ExecStart" not in dropin


@pytest.mark.parametrize("missing", ["FLEET_ETCD_ENDPOINTS", "FLEET_PUBLIC_IP"])
def test_provision_fleet_names_a_missing_input(tmp_path: Path, missing: str):
    inputs = {"FLEET_ETCD_ENDPOINTS": "http://10.0.0.1:2379", "FLEET_PUBLIC_IP": "10.0.0.2"}
    del inputs[missing]
    proc = provision_fleet(tmp_path, **inputs)
    assert proc.returncode != 0
    assert f"fleet needs {missing}" in proc.stderr
    assert not (tmp_path / "etc" / "fleet" / "fleet.conf").exists()


def test_provision_fleet_refuses_a_missing_token_file(tmp_path: Path):
    proc = provision_fleet(tmp_path, FLEET_ETCD_ENDPOINTS="http://10.0.0.1:2379",
                           FLEET_PUBLIC_IP="10.0.0.2", FLEET_API_LISTEN="10.0.0.2:49153",
                           FLEET_API_TOKEN_FILE="/etc/fleet/api.token")
    assert proc.returncode != 0
    assert "/etc/fleet/api.token does not exist" in proc.stderr
