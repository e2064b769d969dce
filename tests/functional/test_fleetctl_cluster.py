"""Real cluster, through the fleetctl command: `-o json` against the tables, shell completion of
live unit and machine names in bash and zsh, `fleetctl ssh` and `--tunnel` against the hosts' sshd.

SSH is authenticated as fleet's own functional tests did it: an ssh-agent holding the cluster's
key (SSH_AUTH_SOCK), `--ssh-username root`, and the cluster's known_hosts file with fleet's
--strict-host-key-checking left on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import LocalCluster

REPO = Path(__file__).resolve().parents[2]
WEB = """[Unit]
Description=fleetctl cluster test web server

[Service]
ExecStart=/usr/bin/python3 -m http.server 18080

[X-Fleet]
Publish=18080/tcp
"""


@pytest.fixture(scope="module")
def agent(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SSH_AUTH_SOCK of an ssh-agent (started here, stopped after) holding the cluster's key."""
    sock = tmp_path_factory.mktemp("agent") / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        subprocess.run(["ssh-add", "-q", cluster.ssh_identity()], check=True, timeout=10,
                       env={**os.environ, "SSH_AUTH_SOCK": str(sock)})
        yield str(sock)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def fleetctl(cluster: LocalCluster, *args: str, agent: str = "", host: str = "h1",
             check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    """This checkout's fleetctl against `host`'s API socket, with root's ssh settings."""
    full = {**os.environ, "FLEETCTL_ENDPOINT": cluster.endpoint(host), "SSH_AUTH_SOCK": agent,
            "FLEETCTL_SSH_USERNAME": "root",
            "FLEETCTL_KNOWN_HOSTS_FILE": str(cluster.state / "ssh" / "known_hosts"), **env}
    done = subprocess.run([str(cluster.fleetctl_bin), *args], capture_output=True, text=True,
                          timeout=90, env=full, stdin=subprocess.DEVNULL)
    if check:
        assert done.returncode == 0, f"fleetctl {args}: {done.returncode}\n{done.stdout}{done.stderr}"
    return done


def rows(text: str) -> list[list[str]]:
    return [re.split(r"\t+", line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def web(cluster: LocalCluster, tmp_path: Path) -> str:
    """web.service started (and active in systemd) on one host; its machine id."""
    path = tmp_path / "web.service"
    path.write_text(WEB)
    fleetctl(cluster, "start", str(path))
    (record,) = json.loads(fleetctl(cluster, "list-units", "-o", "json").stdout)
    return str(record["machine"])


def test_json_output_matches_the_tables(cluster: LocalCluster, web: str) -> None:
    units = json.loads(fleetctl(cluster, "list-units", "-o", "json").stdout)
    table = fleetctl(cluster, "list-units", "--full", "--no-legend",
                     "--fields=unit,machine,active,sub,hash").stdout
    assert [[u["unit"], f'{u["machine"]}/{u["ip"]}', u["active"], u["sub"], u["hash"]]
            for u in units] == rows(table) == [
        ["web.service", f"{web}/{units[0]['ip']}", "active", "running", units[0]["hash"]]]

    files = json.loads(fleetctl(cluster, "list-unit-files", "-o", "json").stdout)
    table = fleetctl(cluster, "list-unit-files", "--full", "--no-legend",
                     "--fields=unit,hash,dstate,state,target,desc").stdout
    assert [[f["unit"], f["hash"], f["dstate"], f["state"], f'{f["target"]}/{f["ip"]}', f["desc"]]
            for f in files] == [r[:5] + [" ".join(r[5:])] for r in rows(table)]
    assert files[0]["target"] == web and files[0]["global"] is False

    machines = json.loads(fleetctl(cluster, "list-machines", "-o", "json").stdout)
    table = fleetctl(cluster, "list-machines", "--full", "--no-legend", "--fields=machine,ip").stdout
    assert [[m["machine"], m["ip"]] for m in machines] == rows(table)
    assert sorted(m["machine"] for m in machines) == sorted(
        cluster.machine_id(h) for h in cluster.running_hosts())

    published = json.loads(fleetctl(cluster, "endpoints", "-o", "json").stdout)
    table = fleetctl(cluster, "endpoints", "--full", "--no-legend").stdout
    assert [[e["unit"], e["machine"], e["ip"], str(e["port"]), e["proto"]]
            for e in published] == rows(table) == [
        ["web.service", web, units[0]["ip"], "18080", "tcp"]]

    status = fleetctl(cluster, "status", "-o", "json", "web.service")
    records = json.loads(status.stdout)
    text = "".join(r.get("data", "") for r in records)
    assert "web.service" in text and "active (running)" in text
    assert {"unit": "web.service", "machine": web, "exit": 0} in records


def _empty_dir(script: Path) -> Path:
    """Where completion runs: no local file there may stand in for a live unit name."""
    cwd = script.parent / "empty"
    cwd.mkdir(exist_ok=True)
    return cwd


def _bash_complete(cluster: LocalCluster, script: Path, *words: str) -> list[str]:
    line = (f'source {script}; COMP_WORDS=(fleetctl {" ".join(words)}); '
            f'COMP_CWORD={len(words)}; _fleetctl; printf "%s\\n" "${{COMPREPLY[@]}}"')
    env = {**os.environ, "FLEETCTL_ENDPOINT": cluster.endpoint("h2"),
           "PATH": f"{cluster.fleetctl_bin.parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env,
                          cwd=_empty_dir(script), timeout=60)
    return sorted(w for w in done.stdout.split() if w)


def _zsh_complete(cluster: LocalCluster, script: Path, *words: str) -> list[str]:
    # drive the completion function directly: compadd records what it is offered
    line = (f"compdef() {{ }}; _files() {{ }}; compadd() {{ [[ $1 == -- ]] && shift; "
            f"print -l -- \"$@\"; }}; source {script}; words=(fleetctl {' '.join(words)}); "
            f"CURRENT={len(words) + 1}; PREFIX={words[-1] if words else ''!r}; _fleetctl")
    env = {**os.environ, "FLEETCTL_ENDPOINT": cluster.endpoint("h2"),
           "PATH": f"{cluster.fleetctl_bin.parent}:{os.environ['PATH']}"}
    done = subprocess.run(["zsh", "-f", "-c", line], capture_output=True, text=True, env=env,
                          cwd=_empty_dir(script), timeout=60)
    assert done.returncode == 0, done.stderr
    prefix = words[-1] if words else ""
    return sorted(w for w in done.stdout.split() if w.startswith(prefix))


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_offers_live_unit_and_machine_names(cluster: LocalCluster, web: str,
                                                       tmp_path: Path, shell: str) -> None:
    if shutil.which(shell) is None:  # make deps installs both; CI must fail, never skip
        pytest.fail(f"{shell} is not installed (make deps installs it)")
    script = tmp_path / f"fleetctl.{shell}"
    script.write_text(fleetctl(cluster, "completion", shell).stdout)
    complete = _bash_complete if shell == "bash" else _zsh_complete
    machines = sorted(cluster.machine_id(h) for h in cluster.running_hosts())
    assert complete(cluster, script, "stop", "we") == ["web.service"]
    assert complete(cluster, script, "ssh", web[:6]) == [web]
    assert complete(cluster, script, "ssh", "") == sorted([*machines, "web.service"])
    assert complete(cluster, script, "--endpoint", "x", "list-m") == ["list-machines"]
    assert complete(cluster, script, "--tu") == ["--tunnel"]


def test_ssh_runs_commands_on_a_machine_and_on_a_units_host(cluster: LocalCluster, agent: str,
                                                            web: str) -> None:
    for host in cluster.running_hosts():
        mid = cluster.machine_id(host)
        done = fleetctl(cluster, "ssh", mid[:10], "cat", "/etc/machine-id", agent=agent)
        assert done.stdout.strip() == mid
    done = fleetctl(cluster, "ssh", "--unit", "web", "--", "systemctl", "is-active", "web.service",
                    agent=agent)
    assert done.stdout.strip() == "active"
    assert fleetctl(cluster, "ssh", web, "exit 3", agent=agent, check=False).returncode == 3


def test_ssh_checks_host_keys_unless_told_not_to(cluster: LocalCluster, agent: str,
                                                 tmp_path: Path) -> None:
    mid = cluster.machine_id("h2")
    empty = str(tmp_path / "fresh" / "known_hosts")
    refused = fleetctl(cluster, "ssh", "--known-hosts-file", empty, mid, "true", agent=agent,
                       check=False)
    assert refused.returncode != 0 and "Host key verification failed" in refused.stderr
    done = fleetctl(cluster, "--strict-host-key-checking=false", "--known-hosts-file", empty,
                    "ssh", mid, "hostname", agent=agent)
    assert done.stdout.strip() == "h2"


def test_tunnel_carries_the_api_to_the_tunnel_hosts_socket(cluster: LocalCluster,
                                                           agent: str) -> None:
    # the default endpoint, unix:///var/run/fleet.sock, is h3's own socket as seen from h3
    assert not Path("/var/run/fleet.sock").exists(), "this machine must not run its own fleetd"
    done = fleetctl(cluster, "--tunnel", cluster.ip("h3"), "list-machines", "-o", "json",
                    agent=agent, FLEETCTL_ENDPOINT="unix:///var/run/fleet.sock")
    assert sorted(m["machine"] for m in json.loads(done.stdout)) == sorted(
        cluster.machine_id(h) for h in cluster.running_hosts())
    leftovers = subprocess.run(["pgrep", "-f", f"ssh .* -- {cluster.ip('h3')}$"],
                               capture_output=True, text=True)
    assert leftovers.stdout == "", "the tunnel's ssh outlived fleetctl"


@pytest.fixture
def h2_named_on_h1(cluster: LocalCluster) -> Iterator[str]:
    """https://h2:PORT, h2's API by the name in its certificate, which only h1 can resolve."""
    assert subprocess.run(["getent", "hosts", "h2"], capture_output=True).returncode != 0, \
        "this machine resolves h2: the endpoint would not need the tunnel"
    cluster.host_exec("h1", "sh", "-c", f"echo '{cluster.ip('h2')} h2' >> /etc/hosts")
    try:
        yield cluster.api_url("h2").replace(cluster.ip("h2"), "h2")
    finally:
        cluster.host_exec("h1", "sh", "-c", "sed -i '/ h2$/d' /etc/hosts; "
                          "[ -s /etc/hosts ] || rm -f /etc/hosts")  # the hosts have none


def test_tunnel_to_an_https_endpoint_checks_its_certificate(cluster: LocalCluster, agent: str,
                                                            h2_named_on_h1: str) -> None:
    tls = {"FLEETCTL_ENDPOINT": h2_named_on_h1, "FLEETCTL_CA_FILE": cluster.api_ca_file(),
           "FLEETCTL_TOKEN": cluster.api_token()}
    direct = fleetctl(cluster, "list-machines", agent=agent, check=False, **tls)
    assert direct.returncode == 1 and direct.stdout == ""
    done = fleetctl(cluster, "--tunnel", f"{cluster.ip('h1')}:22", "list-machines", "--full",
                    "--no-legend", "--fields=machine", agent=agent, **tls)
    assert cluster.machine_id("h2") in done.stdout.split()
    untrusted = fleetctl(cluster, "--tunnel", cluster.ip("h1"), "list-machines", agent=agent,
                         check=False, **{**tls, "FLEETCTL_CA_FILE": ""})
    assert untrusted.returncode == 1 and "certificate verify failed" in untrusted.stderr


def test_tunnel_failure_is_one_clear_line(cluster: LocalCluster, agent: str) -> None:
    done = fleetctl(cluster, "--tunnel", f"{cluster.ip('h1')}:2", "list-units", agent=agent,
                    check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Error: cannot open SSH tunnel to {cluster.ip('h1')}:2: ssh: connect to host "
        f"{cluster.ip('h1')} port 2: Connection refused"]


def test_ssh_through_the_tunnel_hops_via_the_tunnel_host(cluster: LocalCluster,
                                                          agent: str) -> None:
    mid = cluster.machine_id("h3")
    done = fleetctl(cluster, "--tunnel", cluster.ip("h1"), "ssh", mid, "cat /etc/machine-id;",
                    "echo $SSH_CONNECTION", agent=agent,
                    FLEETCTL_ENDPOINT="unix:///var/run/fleet.sock")
    machine_id, connection = done.stdout.splitlines()
    assert machine_id == mid
    # sshd on h3 saw the connection come from h1 (the -W hop), not from this machine
    assert connection.split()[0] == cluster.ip("h1")
