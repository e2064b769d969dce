"""Real cluster: the hosts' TCP API takes a client certificate as the credential
(api_auth=token/cert), and `vagrant/local-cluster env --mtls` is all a user needs for it.

The export line is eval'ed by bash exactly as the help says, in an environment without any
FLEETCTL_* variable, and this checkout's fleetctl runs with it: no token anywhere. The same
four variables are the ones fleet's Go fleetctl reads (FLEETCTL_<FLAG>, see
test_go_fleetctl_replay for its requests). A certificate the hosts do not trust is refused in
the handshake, and the host's journal says so.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from cluster import LocalCluster

MTLS_VARIABLES = ["FLEETCTL_CA_FILE", "FLEETCTL_CERT_FILE", "FLEETCTL_ENDPOINT", "FLEETCTL_KEY_FILE"]


def with_mtls_line(cluster: LocalCluster, script: str) -> subprocess.CompletedProcess[str]:
    """bash: `eval "$(vagrant/local-cluster env --mtls)"`, then `script` ($FLEETCTL is this
    checkout's fleetctl), with no FLEETCTL_* variable (no token) inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCTL_")}
    env["FLEETCTL"] = str(cluster.fleetctl_bin)
    return subprocess.run(["bash", "-c", f'eval "$({shlex.quote(str(cluster.tool))} env --mtls)" '
                           f"&& {script}"], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_env_mtls_prints_one_export_line_with_a_client_certificate(cluster: LocalCluster) -> None:
    line = cluster.run_tool("env", "--mtls").stdout
    words = shlex.split(line)
    assert line.count("\n") == 1 and words[0] == "export", line
    exported = dict(word.split("=", 1) for word in words[1:])
    assert sorted(exported) == MTLS_VARIABLES  # and no FLEETCTL_TOKEN / FLEETCTL_TOKEN_FILE
    assert exported["FLEETCTL_ENDPOINT"] == cluster.api_url(cluster.running_hosts()[0])
    assert exported["FLEETCTL_CA_FILE"] == cluster.api_ca_file()
    verified = subprocess.run(["openssl", "verify", "-CAfile", exported["FLEETCTL_CA_FILE"],
                               "-purpose", "sslclient", exported["FLEETCTL_CERT_FILE"]],
                              capture_output=True, text=True, timeout=30)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert cluster.run_tool("env", "--mtls").stdout == line  # issued once per cluster


def test_fleetctl_lists_the_machines_with_the_mtls_line_alone(cluster: LocalCluster) -> None:
    done = with_mtls_line(cluster, '"$FLEETCTL" list-machines --no-legend --full --fields=machine')
    assert (done.returncode, done.stderr) == (0, ""), done.stdout + done.stderr
    assert sorted(done.stdout.split()) == sorted(cluster.machine_id(h)
                                                 for h in cluster.running_hosts())


def test_an_untrusted_certificate_is_refused_and_the_host_logs_why(cluster: LocalCluster,
                                                                   tmp_path: Path) -> None:
    cert, key = tmp_path / "stranger.crt", tmp_path / "stranger.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=stranger", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=30)
    done = with_mtls_line(cluster, f"FLEETCTL_CERT_FILE={cert} FLEETCTL_KEY_FILE={key} "
                                   '"$FLEETCTL" list-machines')
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert "fleetd may have refused the client certificate" in done.stderr, done.stderr
    host = cluster.running_hosts()[0]

    def logged() -> bool:
        journal = cluster.host_exec(host, "journalctl", "-u", "fleet.service", "--no-pager",
                                    "-o", "cat", "-n", "300").stdout
        return any("TLS handshake refused" in line and "self-signed certificate" in line
                   for line in journal.splitlines())

    cluster.wait_until(logged, 20, f"{host}'s fleetd to log the refused handshake")
