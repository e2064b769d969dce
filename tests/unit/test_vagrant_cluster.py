"""Tier 1: `make vagrant-test` and `make vagrant-box` (vagrant/vagrant_cluster.py, vagrant_box.py)
without VMs: their decisions as tables, and each one-line failure a user can meet, with fake
commands on PATH: no /dev/kvm, libvirtd not startable, a box build step failing, a VM that does
not get an address in time. (The real run is `make vagrant-test`, not part of `make test`.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

VAGRANT_DIR = Path(__file__).resolve().parents[2] / "vagrant"
sys.path.insert(0, str(VAGRANT_DIR))
import vagrant_box  # noqa: E402
import vagrant_cluster  # noqa: E402
from vagrant_steps import Failed, Steps  # noqa: E402

L = vagrant_cluster.Line


@pytest.mark.parametrize("lines, now, late", [
    ([], 100.0, None),
    ([L(0, "==> node1: Waiting for domain to get an IP address...\n")], 5.0, None),
    ([L(0, "==> node1: Waiting for domain to get an IP address...\n")], 11.0, "node1"),
    ([L(0, "==> node1: Waiting for domain to get an IP address...\n"),
      L(3, "==> node1: Waiting for machine to boot. This may take a few minutes...\n")], 50.0, None),
    ([L(0, "==> node1: Waiting for domain to get an IP address...\n"),
      L(1, "==> node2: Waiting for domain to get an IP address...\n"),
      L(4, "    node1: SSH address: 192.168.123.10:22\n")], 12.0, "node2"),
])
def test_overdue_names_the_vm_that_waited_too_long_for_its_address(lines, now, late):
    assert vagrant_cluster.overdue(lines, now, timeout=10) == late


def test_listings_are_read_as_fleetctl_prints_them():
    machines = "0a1b2c3d...\t192.168.56.11\tnode=1,zone=a\n4e5f...\t192.168.56.12\tnode=2,zone=b\n"
    assert vagrant_cluster.machine_count(machines) == 2
    units = ("hello.service\t0a1b2c3d.../192.168.56.12\tactive\n"
             "web@1.service\t4e5f6a7b.../192.168.56.11\tactivating\n")
    assert vagrant_cluster.unit_places(units) == {"hello.service": ("192.168.56.12", "active"),
                                                  "web@1.service": ("192.168.56.11", "activating")}


def test_a_vagrant_failure_is_quoted_by_its_error_line():
    output = ("==> node1: An error occurred. The error will be shown after all tasks complete.\n"
              "An error occurred while executing multiple actions in parallel.\n"
              "Call to virDomainCreateWithFlags failed: internal error: qemu unexpectedly closed\n"
              "qemu-system-x86_64: kvm.c:3183: kvm_buf_set_msrs: Assertion failed.\n"
              "/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/lib/vagrant/batch_action.rb:86"
              ":in `run'\n")
    assert vagrant_cluster.vagrant_error(output) == (
        "Call to virDomainCreateWithFlags failed: internal error: qemu unexpectedly closed")
    assert vagrant_cluster.vagrant_error("Bringing machine 'node1' up\nsomething odd\n") == "something odd"


def test_leftovers_are_ours_only():
    volumes = (" Name  Path\n------------\n fleetd_node1.img  /var/lib/libvirt/images/fleetd_node1.img\n"
               " fleetd-VAGRANTSLASH-debian12_vagrant_box_image_0_box.img  /x\n other.img  /y\n")
    assert vagrant_cluster.leftovers("fleetd_node2\nsomeone_else\n", volumes,
                                     "default\nfleetd-mgmt\nfleetd-private\n") == [
        "domain fleetd_node2", "volume fleetd_node1.img",
        "volume fleetd-VAGRANTSLASH-debian12_vagrant_box_image_0_box.img",
        "network fleetd-mgmt", "network fleetd-private"]
    assert vagrant_cluster.leftovers("", " Name Path\n----\n", "default\n") == []


def test_box_listing_and_libvirtd_start():
    assert vagrant_box.box_listed("fleetd/debian12 (libvirt, 0)\ndebian/bookworm64 (libvirt, 12)\n")
    assert not vagrant_box.box_listed("fleetd/debian12 (virtualbox, 0)\n")
    assert not vagrant_box.box_listed("There are no installed boxes! Use `vagrant box add` to add some.\n")
    assert vagrant_cluster.libvirtd_start_commands(True) == [["systemctl", "start", "libvirtd.service"]]
    assert vagrant_cluster.libvirtd_start_commands(False) == [["virtlogd", "-d"], ["libvirtd", "-d"]]


# ---------------------------------------------------------------- the one-line failures

FAKES = {
    "dpkg-query": "echo 'install ok installed'",
    "virsh": 'exit "${FAKE_VIRSH_RC:-0}"',
    "systemctl": "echo 'Failed to start libvirtd.service: Unit libvirtd.service not found.' >&2; exit 5",
    "virtlogd": "exit 0",
    "libvirtd": "echo 'error: Unable to obtain pidfile. Check /var/log/messages or run without --daemon' >&2;"
                " exit 1",
    "vagrant": 'case "$1 $2" in "box list") echo "${FAKE_BOXES:-There are no installed boxes!}";; '
               '"up "*|up) echo "==> node1: Waiting for domain to get an IP address..."; exec sleep 60;;'
               ' esac',
    "debootstrap": "echo 'I: Retrieving InRelease'; echo 'E: Failed getting release file' >&2; exit 1",
}


@pytest.fixture
def fakes(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    kvm = tmp_path / "kvm"
    kvm.write_text("")
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FLEET_KVM_DEVICE": str(kvm),
            "FLEET_BOX_WORKDIR": str(tmp_path / "box"), "FLEET_BOX_LOG": str(tmp_path / "box.log")}


def vagrant_test(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(VAGRANT_DIR / "vagrant_cluster.py"), "test"], env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_no_kvm_says_so_and_points_at_the_local_cluster(fakes, tmp_path: Path):
    line = error_line(vagrant_test({**fakes, "FLEET_KVM_DEVICE": str(tmp_path / "no-kvm")}))
    assert line == (f"vagrant-test: error: no {tmp_path / 'no-kvm'}: this machine cannot run KVM virtual "
                    "machines; the local nspawn cluster is the way here (vagrant/local-cluster up, or make "
                    "demo)")


def test_libvirtd_that_cannot_be_started_is_one_line(fakes):
    line = error_line(vagrant_test({**fakes, "FAKE_VIRSH_RC": "1"}))
    assert line.startswith("vagrant-test: error: libvirtd is not running and could not be started (")
    assert "Unable to obtain pidfile" in line or "libvirtd.service not found" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="the box is built as root (debootstrap, chroot)")
def test_a_box_build_that_fails_names_its_step(fakes, tmp_path: Path):
    proc = vagrant_test(fakes)
    line = error_line(proc)
    assert line == ("vagrant-test: error: step 'debootstrap' failed: E: Failed getting release file "
                    f"(log: {tmp_path / 'box.log'})")
    assert "debootstrap Debian bookworm" in proc.stdout
    assert not (tmp_path / "box").exists()  # its work directory is removed
    direct = subprocess.run([sys.executable, str(VAGRANT_DIR / "vagrant_box.py")], env=fakes,
                            capture_output=True, text=True, timeout=60)
    assert error_line(direct).startswith("vagrant-box: error: step 'debootstrap' failed: E: Failed getting")


def test_a_vm_without_an_address_in_time_stops_vagrant_up(fakes, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FLEET_ADDRESS_TIMEOUT", "1")
    monkeypatch.setenv("PATH", fakes["PATH"])
    cluster = vagrant_cluster.Cluster(Steps("t", tmp_path / "t.log"), {}, tmp_path / "ssh-config")
    began = time.monotonic()
    with pytest.raises(Failed) as failure:
        vagrant_cluster.vagrant_up(cluster)
    assert str(failure.value) == ("node1 did not get an address within 1 s "
                                  "(its console: /var/log/libvirt/qemu/fleetd_node1-console.log)")
    assert time.monotonic() - began < 10  # the fake `vagrant up` (sleep 60) was stopped
    assert "Waiting for domain to get an IP address" in (tmp_path / "t.log").read_text()
