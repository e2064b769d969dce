"""--tunnel and the global SSH flags: tables for the pure planning (fleetctl.tunnel, sshcmd), and
the process adapter (fleetctl.sshtunnel) driven end to end with a stand-in `ssh` on PATH that
forwards the local unix socket to fleetd's socket the way OpenSSH's `-L` does. The real ssh
client against real sshd hosts is tests/functional/test_fleetctl_cluster.py."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest
import test_fleetctl as base
from yarl import URL

from fleetctl import cli, sshcmd
from fleetctl.client import Endpoint, parse_endpoint
from fleetctl.tunnel import TunnelError, parse_tunnel, plan

env = base.env  # the served-API fixture (not the real cluster of tests/conftest.py)


@pytest.mark.parametrize("text, result", [
    ("h1", ("h1", 22)),
    ("h1:2222", ("h1", 2222)),
    ("10.0.0.1:22", ("10.0.0.1", 22)),
    ("[fd00::1]", ("fd00::1", 22)),
    ("[fd00::1]:2200", ("fd00::1", 2200)),
    ("fd00::1", ("fd00::1", 22)),
    ("h1:", None), (":22", None), ("h1:x", None), ("h1:70000", None), ("[fd00::1", None),
    ("[fd00::1]x", None),
])
def test_parse_tunnel(text, result):
    try:
        got = parse_tunnel(text)
    except TunnelError as exc:
        assert result is None and "use HOST[:PORT]" in str(exc)
        return
    assert got == result


CHECKED = ["-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=ask", "-o",
           'UserKnownHostsFile="/k/known_hosts"']
OPTS = sshcmd.SshOptions(known_hosts="/k/known_hosts")


@pytest.mark.parametrize("opts, args", [
    (OPTS, CHECKED),
    (sshcmd.SshOptions(user="core", strict=False, timeout=0.2, interactive=False),
     ["-o", "ConnectTimeout=1", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
      "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-l", "core"]),
    (sshcmd.SshOptions(known_hosts="/k/known_hosts", jump=("gw", 2222)),
     [*CHECKED, "-o", "ProxyCommand=ssh -o ConnectTimeout=10 -o StrictHostKeyChecking=ask -o "
      "'UserKnownHostsFile=\"/k/known_hosts\"' -p 2222 -W %h:%p -- gw"]),
])
def test_ssh_option_args(opts, args):
    assert sshcmd.option_args(opts) == args


FORWARD = ["-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=15"]


@pytest.mark.parametrize("endpoint, forward, moved", [
    ("unix:///var/run/fleet.sock", "/p/fleet.sock:/var/run/fleet.sock",
     Endpoint("unix:///var/run/fleet.sock (through --tunnel gw:2222)", URL("http://fleetd/fleet/v1"),
              "/p/fleet.sock")),
    ("http://10.0.0.5:8080", "/p/fleet.sock:10.0.0.5:8080",
     Endpoint("http://10.0.0.5:8080 (through --tunnel gw:2222)", URL("http://10.0.0.5:8080/fleet/v1"),
              "/p/fleet.sock")),
    ("https://api.example:49153", "127.0.0.1:4000:api.example:49153",
     Endpoint("https://api.example:49153 (through --tunnel gw:2222)",
              URL("https://127.0.0.1:4000/fleet/v1"), None, "api.example")),
    ("https://[fd00::5]", "127.0.0.1:4000:[fd00::5]:443", None),
])
def test_tunnel_plan(endpoint, forward, moved):
    planned = plan(("gw", 2222), parse_endpoint(endpoint), OPTS, "/p", 4000)
    assert planned.argv == ("ssh", *CHECKED, "-p", "2222", *FORWARD, "-L", forward, "--", "gw")
    if moved is not None:
        assert planned.endpoint == moved


def test_global_ssh_flags_and_their_environment():
    parser = cli.build_parser(cli.env_defaults({
        "FLEETCTL_TUNNEL": "gw:2200", "FLEETCTL_STRICT_HOST_KEY_CHECKING": "false",
        "FLEETCTL_SSH_USER": "old", "FLEETCTL_SSH_TIMEOUT": "4"}))
    args = parser.parse_args(["list-units"])
    assert (args.tunnel, args.strict_host_key_checking, args.ssh_username, args.ssh_timeout) == (
        "gw:2200", False, "old", 4.0)
    args = parser.parse_args(["--strict-host-key-checking", "--ssh-username", "core",
                              "list-units", "--tunnel=other", "--known-hosts-file=/k"])
    assert (args.tunnel, args.strict_host_key_checking, args.ssh_username, args.known_hosts_file) \
        == ("other", True, "core", "/k")
    assert cli.env_defaults({"FLEETCTL_SSH_USERNAME": "new", "FLEETCTL_SSH_USER": "old"})[
        "ssh_username"] == "new"
    assert cli.main(["--strict-host-key-checking=maybe", "list-units"], environ={}) == 2


# a stand-in for OpenSSH: `-L LOCAL_SOCKET:REMOTE_SOCKET` relayed with asyncio, or failing as told
FAKE_SSH = r'''#!PYTHON
import asyncio, os, sys
argv = sys.argv[1:]
with open(os.environ["FAKE_SSH_LOG"], "a") as log:
    log.write(" ".join(argv) + "\n")
mode = os.environ.get("FAKE_SSH_MODE", "forward")
if mode == "refuse":
    sys.stderr.write("debug noise\nssh: connect to host gw port 22: Connection refused\n")
    sys.exit(255)
if mode == "hang":
    import time; time.sleep(60)
local, remote = argv[argv.index("-L") + 1].split(":", 1)

async def pipe(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()

async def client(reader, writer):
    r2, w2 = await asyncio.open_unix_connection(remote)
    await asyncio.gather(pipe(reader, w2), pipe(r2, writer))

async def main():
    server = await asyncio.start_unix_server(client, local)
    async with server:
        await server.serve_forever()
asyncio.run(main())
'''


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "ssh"
    script.write_text(FAKE_SSH.replace("PYTHON", sys.executable))
    script.chmod(0o755)
    log = tmp_path / "ssh.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    return log


async def test_tunnel_carries_the_api_and_is_torn_down(env, fake_ssh, tmp_path):
    known = tmp_path / "kh" / "known_hosts"
    run = await env.fleetctl("--tunnel", "gw:2222", "--known-hosts-file", str(known),
                             "list-machines", "--no-legend")
    assert (run.code, run.out, run.err) == (0, "", "")
    argv = shlex.split(fake_ssh.read_text())
    served = env.environ["FLEETCTL_ENDPOINT"].removeprefix("unix://")
    assert argv[argv.index("-L") + 1].endswith(f"/fleet.sock:{served}")
    assert argv[-2:] == ["--", "gw"] and argv[argv.index("-p") + 1] == "2222"
    assert known.parent.is_dir()
    local = argv[argv.index("-L") + 1].split(":")[0]
    assert not Path(local).parent.exists()  # the private directory went with the tunnel
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _is_fake_ssh(p, fake_ssh)]


def _is_fake_ssh(pid: str, log: Path) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"FAKE_SSH_LOG={log}".encode() in environ


@pytest.mark.parametrize("mode, message", [
    ("refuse", "Error: cannot open SSH tunnel to gw:22: ssh: connect to host gw port 22: "
               "Connection refused"),
    ("hang", "Error: timed out while initiating SSH connection"),
])
async def test_tunnel_failures_are_one_line(env, fake_ssh, monkeypatch, mode, message):
    monkeypatch.setenv("FAKE_SSH_MODE", mode)
    run = await env.fleetctl("--tunnel", "gw", "--ssh-timeout", "1",
                             "--strict-host-key-checking=false", "list-units")
    assert (run.code, run.out, run.err) == (1, "", message + "\n")
