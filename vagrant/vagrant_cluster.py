#!/usr/bin/env python3
"""vagrant_cluster.py: `make vagrant-test`, the Vagrant cluster booted under KVM and checked.

    vagrant/vagrant_cluster.py test    preflight, box, `vagrant up` of 3 VMs, the checks, destroy

Preflight: /dev/kvm is usable; the missing ones of libvirt-daemon-system, qemu-system-x86,
vagrant, vagrant-libvirt (and the box builder's tools) are installed; libvirtd answers (started
if it does not); the box fleetd/debian12 is there (built by vagrant_box.py if not, unless
FLEET_BOX names another); fleetd's dependencies are in vagrant/.wheels (pip download, once per
dependency list), so the VMs need no network. Then, as an operator would, in vagrant/:
`vagrant up` (3 VMs, 1 vCPU and 1 GiB each, provisioned by vagrant/provision.sh); `fleetctl
list-machines` on node1 shows 3 machines; `fleetctl start units/web@.service` gives one instance
per VM, each answering HTTP on its VM's address; the dashboard answers on the forwarded port;
with node2 made the least-loaded VM (its web instance destroyed) hello.service lands there, and
`vagrant halt node2` moves it to another VM within MOVE_LIMIT seconds; `vagrant up node2` brings
node2 back as a machine; `vagrant destroy -f`, then no domain, volume or network of ours is left
in libvirt. Every step prints its time; the first check that fails prints one line
(`vagrant-test: error: ...`), the VMs are destroyed all the same (FLEET_KEEP=1 keeps them) and
the exit status is 1. Output of the commands: vagrant/.vagrant/vagrant-test.log.
Environment: FLEET_ADDRESS_TIMEOUT (s a VM may wait for its address, default 240; 900 under
software emulation), FLEET_LIBVIRT_DRIVER (kvm or qemu; default: kvm if a probe boots the box's
kernel under KVM within FLEET_KVM_PROBE_TIMEOUT s, default 60, else qemu),
FLEET_KVM_DEVICE (default /dev/kvm), FLEET_BOX, FLEET_KEEP.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vagrant_box  # noqa: E402
from vagrant_steps import Failed, Steps, main  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NODES = ("node1", "node2", "node3")
SUBNET = "192.168.56"
PACKAGES = ("libvirt-daemon-system", "qemu-system-x86", "vagrant", "vagrant-libvirt", "dnsmasq-base",
            *vagrant_box.HOST_PACKAGES)
VIRSH = ("virsh", "-c", "qemu:///system")
OUR_NETWORKS = ("fleetd-mgmt", "fleetd-private")
OUR_VOLUME_PREFIXES = ("fleetd_", "fleetd-VAGRANTSLASH-")
MOVE_LIMIT = 20.0   # s from `vagrant halt node2` returning to hello.service active elsewhere
SETTLE = 120.0      # s for fleetd to list every machine, for units to become active


def node_ip(name: str) -> str:
    return f"{SUBNET}.{10 + int(name.removeprefix('node'))}"


# ---------------------------------------------------------------- pure decisions

@dataclass(frozen=True)
class Line:
    """One line of `vagrant up` output and when it was read (monotonic seconds)."""

    at: float
    text: str


WAITING = re.compile(r"==> (\S+): Waiting for domain to get an IP address")
GOT = re.compile(r"(\S+): (SSH address: |Waiting for machine to boot)")


def overdue(lines: list[Line], now: float, timeout: float) -> str | None:
    """The first VM that has waited for its address longer than timeout, or None."""
    waiting: dict[str, float] = {}
    for line in lines:
        if m := WAITING.search(line.text):
            waiting.setdefault(m.group(1), line.at)
        elif (m := GOT.search(line.text)) and m.group(1).lstrip("=> ") in waiting:
            waiting.pop(m.group(1).lstrip("=> "))
    late = [name for name, since in waiting.items() if now - since > timeout]
    return late[0] if late else None


BOILERPLATE = ("An error occurred", "Any errors that occurred", "The error will be shown")


def vagrant_error(output: str) -> str:
    """The line of vagrant's output that says what went wrong (not a backtrace, not boilerplate)."""
    lines = [line.strip() for line in output.splitlines() if line.strip() and ".rb:" not in line]
    errors = [line for line in lines if "error" in line.lower() and not line.startswith(BOILERPLATE)]
    return (errors or lines or ["(no output)"])[-1]


def machine_count(listing: str) -> int:
    """Rows of `fleetctl list-machines --no-legend`."""
    return len([row for row in listing.splitlines() if row.strip()])


def unit_places(listing: str) -> dict[str, tuple[str, str]]:
    """`fleetctl list-units --no-legend --fields unit,machine,active` -> {unit: (ip, active)}."""
    places = {}
    for row in listing.splitlines():
        cols = row.split()
        if len(cols) == 3:
            places[cols[0]] = (cols[1].rpartition("/")[2], cols[2])
    return places


def leftovers(domains: str, volumes: str, networks: str) -> list[str]:
    """What of ours `virsh list --all --name`, `vol-list default` and `net-list --all --name` show."""
    found = [f"domain {d}" for d in domains.split() if d.startswith("fleetd_")]
    found += [f"volume {v}" for v in (row.split()[0] for row in volumes.splitlines()[2:] if row.split())
              if v.startswith(OUR_VOLUME_PREFIXES)]
    return found + [f"network {n}" for n in networks.split() if n in OUR_NETWORKS]


# Debian 12's python3 (CPython 3.11, glibc 2.36, x86_64): what the wheels are for
GUEST_PYTHON = ("--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3",
                "--abi", "none", *(a for p in ("manylinux_2_36_x86_64", "manylinux_2_28_x86_64",
                                               "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")
                                   for a in ("--platform", p)))


def wheels_stamp(requirements: list[str]) -> str:
    return hashlib.sha256("\n".join(["cp311-manylinux-x86_64", *requirements]).encode()).hexdigest()


# ---------------------------------------------------------------- preflight

def kvm_device() -> Path:
    return Path(os.environ.get("FLEET_KVM_DEVICE", "/dev/kvm"))


def check_kvm(steps: Steps) -> None:
    kvm = kvm_device()
    if not kvm.exists():
        raise Failed(f"no {kvm}: this machine cannot run KVM virtual machines; the local nspawn "
                     "cluster is the way here (vagrant/local-cluster up, or make demo)")
    if not os.access(kvm, os.R_OK | os.W_OK):
        raise Failed(f"{kvm} is there but this user cannot open it (run as root or join group kvm)")
    steps.say(f"{kvm} is usable")


def installed(package: str) -> bool:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return "install ok installed" in proc.stdout


def install_missing(steps: Steps) -> None:
    missing = [p for p in PACKAGES if not installed(p)]
    if not missing:
        steps.say(f"packages there: {' '.join(PACKAGES)}")
        return
    with steps.step(f"apt-get install {' '.join(missing)}"):
        steps.run("apt-get update", ["apt-get", "update", "-qq"], timeout=600)
        steps.run("apt-get install", ["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600",
                                      *missing], env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=1800)


def libvirtd_answers() -> bool:
    return subprocess.run([*VIRSH, "version"], capture_output=True, stdin=subprocess.DEVNULL).returncode == 0


def libvirtd_start_commands(systemd: bool) -> list[list[str]]:
    """How to start libvirtd: by systemd where it is PID 1, else the daemons themselves."""
    if systemd:
        return [["systemctl", "start", "libvirtd.service"]]
    return [["virtlogd", "-d"], ["libvirtd", "-d"]]


def start_libvirtd(steps: Steps) -> None:
    if libvirtd_answers():
        steps.say("libvirtd is running")
        return
    with steps.step("start libvirtd"):
        for argv in libvirtd_start_commands(Path("/run/systemd/system").is_dir()):
            try:
                steps.run("start libvirtd", argv, timeout=60)
            except Failed as failure:
                if argv[0] != "virtlogd":  # virtlogd may run already: libvirtd says if it matters
                    raise Failed(f"libvirtd is not running and could not be started ({failure})") from None
        deadline = time.monotonic() + 20
        while not libvirtd_answers():
            if time.monotonic() > deadline:
                raise Failed("libvirtd is not running and could not be started: it was started but "
                             f"`{' '.join(VIRSH)} version` still fails after 20 s")
            time.sleep(0.5)


def box_image() -> Path | None:
    """The disk of the fleetd/debian12 box that `vagrant box add` unpacked, if there."""
    home = Path(os.environ.get("VAGRANT_HOME", Path.home() / ".vagrant.d"))
    found = sorted(home.glob("boxes/fleetd-VAGRANTSLASH-debian12/*/libvirt/box.img"))
    return found[-1] if found else None


def kvm_boots(image: Path, limit: float) -> bool:
    """Whether KVM gets the box's kernel to print `Linux version` on its serial console in time."""
    proc = subprocess.Popen(["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host,-arch-capabilities",
                             "-m", "256", "-nodefaults", "-nographic", "-serial", "stdio", "-snapshot",
                             "-drive", f"file={image},if=virtio,format=qcow2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    seen = threading.Event()

    def read() -> None:
        for line in proc.stdout or ():
            if b"Linux version" in line:
                seen.set()

    threading.Thread(target=read, daemon=True).start()
    seen.wait(limit)
    proc.kill()
    proc.wait()
    return seen.is_set()


def choose_driver(steps: Steps) -> str:
    """kvm, unless KVM opens but cannot boot the box (a nested /dev/kvm can be like that): qemu."""
    if os.environ.get("FLEET_LIBVIRT_DRIVER"):
        return os.environ["FLEET_LIBVIRT_DRIVER"]
    image = box_image()
    if box_name() != vagrant_box.BOX or image is None:
        return "kvm"
    limit = float(os.environ.get("FLEET_KVM_PROBE_TIMEOUT", "60"))
    steps.say(f"probe: does KVM boot the box's kernel (`Linux version` on its console within {limit:.0f} s)?")
    if kvm_boots(image, limit):
        steps.say("probe: yes, the VMs run under KVM")
        return "kvm"
    steps.say("KVM opens but does not boot the box's kernel here (no `Linux version` within the "
              "probe's time): the VMs run under QEMU's software emulation (slower); "
              "FLEET_LIBVIRT_DRIVER=kvm forces KVM")
    return "qemu"


def box_name() -> str:
    return os.environ.get("FLEET_BOX") or vagrant_box.BOX


def ensure_box(steps: Steps) -> None:
    if box_name() != vagrant_box.BOX:
        steps.say(f"FLEET_BOX={box_name()}: vagrant downloads it itself if needed")
        return
    vagrant_box.ensure_box(Steps("vagrant-box", vagrant_box.log_path(), steps.started))


def runtime_requirements() -> list[str]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def ensure_wheels(steps: Steps) -> None:
    """fleetd's dependencies (and setuptools, which builds it) as cp311 wheels in vagrant/.wheels."""
    wheels = HERE / ".wheels"
    reqs = [*runtime_requirements(), "setuptools>=68"]
    if (wheels / ".stamp").is_file() and (wheels / ".stamp").read_text().strip() == wheels_stamp(reqs):
        steps.say(f"wheels there: {wheels}")
        return
    with steps.step(f"pip download fleetd's dependencies into {wheels}"):
        steps.run("pip download", [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
                                   *GUEST_PYTHON, "-d", str(wheels), *reqs], timeout=900)
        (wheels / ".stamp").write_text(wheels_stamp(reqs) + "\n")


# ---------------------------------------------------------------- vagrant

@dataclass
class Cluster:
    """The vagrant commands of one run, all with the same environment, in vagrant/."""

    steps: Steps
    env: dict[str, str]
    ssh_config: Path

    def vagrant(self, step: str, *args: str, timeout: float = 900) -> str:
        return self.steps.run(step, ["vagrant", *args], env=self.env, timeout=timeout)

    def ssh(self, node: str, command: str, step: str, timeout: float = 120) -> str:
        """Run command on node as the vagrant user (ssh with `vagrant ssh-config`: no vagrant startup)."""
        return self.steps.run(step, ["ssh", "-F", str(self.ssh_config), node, command], timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_cluster(steps: Steps, driver: str) -> Cluster:
    env = {"VAGRANT_DEFAULT_PROVIDER": "libvirt", "VAGRANT_CHECKPOINT_DISABLE": "1", "FLEET_NODES": "3",
           "FLEET_BOX": box_name(), "FLEET_DASHBOARD_PORT": str(free_port()), "VAGRANT_CWD": str(HERE),
           "FLEET_LIBVIRT_DRIVER": driver, "FLEET_BOOT_TIMEOUT": "300" if driver == "kvm" else "1500"}
    return Cluster(steps, env, HERE / ".vagrant" / "ssh-config")


def address_timeout(driver: str = "kvm") -> float:
    """How long a VM may wait for its address: software emulation boots several times slower."""
    return float(os.environ.get("FLEET_ADDRESS_TIMEOUT", "240" if driver == "kvm" else "900"))


def watch_up(proc: subprocess.Popen[str], lines: list[Line], log: Path) -> None:
    with log.open("a") as out:
        for text in proc.stdout or ():
            lines.append(Line(time.monotonic(), text))
            out.write(text)
            out.flush()


def vagrant_up(cluster: Cluster, *nodes: str) -> None:
    """`vagrant up`, stopped with a one-line error when a VM waits too long for its address."""
    lines: list[Line] = []
    driver = cluster.env.get("FLEET_LIBVIRT_DRIVER", "kvm")
    proc = subprocess.Popen(["vagrant", "up", *nodes], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, **cluster.env}, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    reader = threading.Thread(target=watch_up, args=(proc, lines, cluster.steps.log), daemon=True)
    reader.start()
    while proc.poll() is None:
        late = overdue(list(lines), time.monotonic(), address_timeout(driver))
        if late:
            os.killpg(proc.pid, 15)
            proc.wait()
            raise Failed(f"{late} did not get an address within {address_timeout(driver):.0f} s "
                         f"(its console: /var/log/libvirt/qemu/fleetd_{late}-console.log)")
        time.sleep(0.5)
    reader.join(5)
    if proc.returncode != 0:
        raise Failed(f"vagrant up failed: {vagrant_error(''.join(line.text for line in lines))} "
                     f"(log: {cluster.steps.log})")


def boot(cluster: Cluster) -> None:
    driver = cluster.env["FLEET_LIBVIRT_DRIVER"]
    with cluster.steps.step(f"vagrant up ({len(NODES)} VMs, libvirt driver {driver}, provisioned by "
                            "provision.sh)"):
        vagrant_up(cluster)
        cluster.ssh_config.write_text(cluster.vagrant("ssh-config", "ssh-config"))


# ---------------------------------------------------------------- checks

def poll(what: str, limit: float, probe: Callable[[], object]) -> object:
    """probe() until it returns something true; Failed naming `what` after limit seconds."""
    deadline = time.monotonic() + limit
    while True:
        try:
            got = probe()
        except Failed:
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise Failed(f"{what} (waited {limit:.0f} s)")
        time.sleep(1)


def fleetctl(cluster: Cluster, args: str, step: str) -> str:
    return cluster.ssh("node1", f"cd /vagrant && fleetctl {args}", step)


def check_machines(cluster: Cluster) -> None:
    with cluster.steps.step("vagrant ssh node1 -c 'fleetctl list-machines': 3 machines"):
        poll("fleetctl list-machines does not show 3 machines", SETTLE, lambda: machine_count(
            fleetctl(cluster, "list-machines --no-legend", "list-machines")) == len(NODES))
        print(cluster.vagrant("vagrant ssh", "ssh", "node1", "-c", "fleetctl list-machines"), end="")


def places(cluster: Cluster) -> dict[str, tuple[str, str]]:
    return unit_places(fleetctl(cluster, "list-units --no-legend --fields unit,machine,active", "list-units"))


def http_get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    jar = urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    opener = urllib.request.build_opener(jar, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=10) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except OSError as error:
        raise Failed(f"GET {url.partition('?')[0]}: {error}") from None


def web_everywhere(cluster: Cluster) -> dict[str, str] | None:
    """{instance: ip} once three web@ instances are active on three VMs, else None."""
    web = {u: ip for u, (ip, active) in places(cluster).items()
           if u.startswith("web@") and active == "active"}
    return web if len(web) == 3 and set(web.values()) == {node_ip(n) for n in NODES} else None


def check_web(cluster: Cluster) -> dict[str, str]:
    with cluster.steps.step("fleetctl start units/web@.service: one instance per VM, each answering HTTP"):
        fleetctl(cluster, "start units/web@.service", "fleetctl start web@")
        web = poll("web@1..3 are not active on 3 VMs", SETTLE, lambda: web_everywhere(cluster))
        for unit, ip in sorted(web.items()):
            status, body = http_get(f"http://{ip}:8080/")
            if status != 200 or not body.startswith(unit.removesuffix(".service")):
                raise Failed(f"http://{ip}:8080/ answered {status} {body.strip()!r}, not {unit}'s page")
            cluster.steps.say(f"  http://{ip}:8080/ -> {body.strip()}")
    return web


def check_dashboard(cluster: Cluster) -> None:
    port = cluster.env["FLEET_DASHBOARD_PORT"]
    with cluster.steps.step(f"dashboard through the forwarded port https://127.0.0.1:{port}/"):
        token = cluster.ssh("node1", "sudo cat /etc/fleet/api.token", "api token").strip()
        cert = cluster.ssh("node1", "sudo cat /etc/fleet/api.crt", "api certificate")
        status, body = http_get(f"https://127.0.0.1:{port}/?token={token}", ssl.create_default_context(
            cadata=cert))
        if status != 200 or "<html" not in body.lower():
            raise Failed(f"the dashboard on the forwarded port {port} answered {status}, not its page")


def hello_on_node2(cluster: Cluster, web: dict[str, str]) -> None:
    """node2 made the least-loaded VM (its web instance destroyed): hello.service lands there."""
    on_node2 = next(u for u, ip in web.items() if ip == node_ip("node2"))
    fleetctl(cluster, f"destroy {on_node2}", "fleetctl destroy")
    fleetctl(cluster, "start units/hello.service", "fleetctl start hello")
    ip = poll("hello.service is not active", SETTLE, lambda: (lambda p: p[0] if p[1] == "active" else None)(
        places(cluster).get("hello.service", ("", ""))))
    if ip != node_ip("node2"):
        raise Failed(f"hello.service runs on {ip}, not on node2 ({node_ip('node2')}), the least-loaded VM")


def hello_elsewhere(cluster: Cluster) -> str | None:
    ip, active = places(cluster).get("hello.service", ("", ""))
    return ip if active == "active" and ip not in ("", node_ip("node2")) else None


def check_move(cluster: Cluster, web: dict[str, str]) -> None:
    with cluster.steps.step(f"vagrant halt node2: its unit moves to another VM within {MOVE_LIMIT:.0f} s"):
        hello_on_node2(cluster, web)
        cluster.steps.say(f"  hello.service runs on node2 ({node_ip('node2')}); halting node2")
        cluster.vagrant("vagrant halt", "halt", "node2")
        halted = time.monotonic()
        ip = poll(f"hello.service did not move off node2 within {MOVE_LIMIT:.0f} s of `vagrant halt node2`",
                  MOVE_LIMIT, lambda: hello_elsewhere(cluster))
        cluster.steps.say(f"  hello.service active on {ip} {time.monotonic() - halted:.1f} s after the halt")


def check_back(cluster: Cluster) -> None:
    with cluster.steps.step("vagrant up node2: node2 is a machine again"):
        vagrant_up(cluster, "node2")
        poll("fleetctl list-machines does not show node2 again", SETTLE, lambda: node_ip("node2") in fleetctl(
            cluster, "list-machines --no-legend", "list-machines"))


# ---------------------------------------------------------------- teardown

def libvirt_listing(cluster: Cluster) -> tuple[str, str, str]:
    def virsh(*args: str) -> str:
        proc = subprocess.run([*VIRSH, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        return proc.stdout if proc.returncode == 0 else ""
    return (virsh("list", "--all", "--name"), virsh("vol-list", "default"),
            virsh("net-list", "--all", "--name"))


def remove_leftover(cluster: Cluster, what: str) -> None:
    kind, name = what.split(" ", 1)
    commands = {"domain": [["destroy", name], ["undefine", name, "--remove-all-storage"]],
                "volume": [["vol-delete", name, "--pool", "default"]],
                "network": [["net-destroy", name], ["net-undefine", name]]}[kind]
    for args in commands:
        subprocess.run([*VIRSH, *args], capture_output=True, stdin=subprocess.DEVNULL)


def teardown(cluster: Cluster, failed: bool) -> None:
    with cluster.steps.step("vagrant destroy -f; nothing of ours left in libvirt"):
        try:
            cluster.vagrant("vagrant destroy", "destroy", "-f")
        except Failed:
            if not failed:
                raise
        left = leftovers(*libvirt_listing(cluster))
        box_volumes = [w for w in left if w.startswith("volume fleetd-VAGRANTSLASH-")]
        for what in left if failed else box_volumes:  # the box's copy in the pool: uploaded per run
            remove_leftover(cluster, what)
        left = leftovers(*libvirt_listing(cluster))
        if left:
            raise Failed(f"left in libvirt after vagrant destroy: {', '.join(left)}")


def checks(cluster: Cluster) -> None:
    boot(cluster)
    check_machines(cluster)
    web = check_web(cluster)
    check_dashboard(cluster)
    check_move(cluster, web)
    check_back(cluster)


def test() -> None:
    steps = Steps("vagrant-test", HERE / ".vagrant" / "vagrant-test.log")
    steps.log.write_text("")
    check_kvm(steps)
    install_missing(steps)
    start_libvirtd(steps)
    ensure_box(steps)
    ensure_wheels(steps)
    cluster = new_cluster(steps, choose_driver(steps))
    failure = None
    try:
        checks(cluster)
    except Failed as error:
        failure = error
    if os.environ.get("FLEET_KEEP") == "1":
        steps.say(f"FLEET_KEEP=1: the VMs stay (cd vagrant && vagrant destroy -f); failure: {failure}")
    else:
        teardown(cluster, failed=failure is not None)
    if failure:
        raise failure
    steps.say("all checks passed")


def cli() -> None:
    if sys.argv[1:] != ["test"]:
        print(__doc__.split("\n\n")[0] if sys.argv[1:2] in (["-h"], ["--help"]) else
              "usage: vagrant/vagrant_cluster.py test", file=sys.stderr)
        sys.exit(0 if sys.argv[1:2] in (["-h"], ["--help"]) else 2)
    test()


if __name__ == "__main__":
    main("vagrant-test", cli)
