#!/usr/bin/env python3
"""vagrant_box.py: build the Vagrant box fleetd/debian12 (provider libvirt) from Debian's packages.

    vagrant/vagrant_box.py            build and add the box unless `vagrant box list` has it
    vagrant/vagrant_box.py --force    build and add it again (replaces the one there)

No box is downloaded: debootstrap puts Debian 12 into a directory, with a kernel, GRUB,
systemd, systemd-networkd (DHCP on every en*/eth* interface), openssh-server, sudo and rsync,
plus what vagrant/provision.sh would install (python3, python3-venv, podman, busybox-static,
etcd-server, etcd-client, openssl), so provisioning needs no network. The user vagrant
(password vagrant, sudo without a password) accepts Vagrant's well-known insecure key, which
`vagrant up` replaces as usual. Every VM makes its own machine id and ssh host keys at first boot.
That directory becomes an ext4 partition of an 8 GiB disk (qcow2) with GRUB in its MBR and the
gap after it (no loop device, no mount: mkfs.ext4 -d); the box is that disk, metadata.json and a
Vagrantfile. Steps print their time; a failing step says
which one in one line, with its log. Needs root.
Environment: FLEET_BOX_MIRROR (default: this machine's Debian mirror), FLEET_BOX_WORKDIR
(default /var/tmp/fleetd-box; emptied first, removed after), FLEET_BOX_LOG (default
/var/tmp/fleetd-box.log).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vagrant_steps import Failed, Steps, main  # noqa: E402

BOX = "fleetd/debian12"
SUITE = "bookworm"
DISK_GIB = 8
HOST_PACKAGES = ("debootstrap", "qemu-utils", "e2fsprogs", "fdisk", "vagrant")
# GRUB's core image: enough to read the ext4 partition, whose /boot/grub holds the rest
GRUB_MODULES = ("biosdisk", "part_msdos", "ext2", "normal", "linux", "search", "search_fs_uuid",
                "configfile", "serial", "terminal")
CORE_MAX = 2047 * 512  # core.img goes between the MBR and the partition (sector 2048)
PACKAGES = (
    "systemd", "systemd-sysv", "udev", "dbus", "systemd-resolved", "kmod", "linux-image-amd64",
    "grub-pc-bin", "openssh-server", "sudo", "rsync", "iproute2", "procps",
    "netbase", "openssl", "python3", "python3-venv", "busybox-static", "etcd-server", "etcd-client",
)
# podman by apt inside the new root: debootstrap cannot configure containers-common in its pass
CHROOT_PACKAGES = ("podman",)
DISABLED_UNITS = ("etcd.service", "podman.socket", "podman.service", "podman-restart.service",
                  "podman-auto-update.timer")
INSECURE_KEYS = ("/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub",
                 "/opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub")


def log_path() -> Path:
    return Path(os.environ.get("FLEET_BOX_LOG", "/var/tmp/fleetd-box.log"))


def debian_mirror() -> str:
    """The mirror this machine's apt uses (the box is built from the same one)."""
    if os.environ.get("FLEET_BOX_MIRROR"):
        return os.environ["FLEET_BOX_MIRROR"]
    for path, key in (("/etc/apt/sources.list.d/debian.sources", "URIs:"),
                      ("/etc/apt/sources.list", "deb")):
        try:
            for line in Path(path).read_text().splitlines():
                if line.split()[:1] == [key] and len(line.split()) > 1:
                    return line.split()[1] if key == "URIs:" else line.split()[-3]
        except (OSError, IndexError):
            continue
    return "http://deb.debian.org/debian"


def insecure_key() -> str:
    for pattern in INSECURE_KEYS:
        for path in sorted(glob.glob(pattern)):
            return Path(path).read_text().strip()
    raise Failed("Vagrant's insecure public key (keys/vagrant.pub) was not found: is vagrant installed?")


# ---------------------------------------------------------------- files written into the root

def box_files(key: str, root_uuid: str, kernel: str, initrd: str) -> dict[str, tuple[str, int]]:
    """Path in the image -> (content, mode): everything the box configures by file."""
    dhcp = "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n"
    hostkeys = ("[Unit]\nDescription=Make this VM's own ssh host keys (first boot)\n"
                "Before=ssh.service\nConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\n"
                "[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n\n"
                "[Install]\nWantedBy=ssh.service\n")
    grub = ("set timeout=0\nserial --unit=0 --speed=115200\nterminal_input console serial\n"
            "terminal_output console serial\nmenuentry 'Debian 12' {\n"
            f"  search --no-floppy --fs-uuid --set=root {root_uuid}\n"
            f"  linux /boot/{kernel} root=UUID={root_uuid} ro console=tty0 console=ttyS0,115200n8\n"
            f"  initrd /boot/{initrd}\n}}\n")
    return {
        "etc/hostname": ("debian12\n", 0o644),
        "etc/hosts": ("127.0.0.1 localhost\n127.0.1.1 debian12\n::1 localhost ip6-localhost\n", 0o644),
        "etc/fstab": (f"UUID={root_uuid} / ext4 errors=remount-ro 0 1\n", 0o644),
        "etc/machine-id": ("", 0o444),  # empty: systemd makes a new id at first boot
        "etc/systemd/network/99-fleetd-box-dhcp.network": (dhcp, 0o644),
        "etc/systemd/system/ssh-hostkeys.service": (hostkeys, 0o644),
        "etc/ssh/sshd_config.d/10-vagrant.conf": ("UseDNS no\n", 0o644),
        "etc/sudoers.d/vagrant": ("vagrant ALL=(ALL) NOPASSWD: ALL\nDefaults:vagrant !requiretty\n", 0o440),
        "home/vagrant/.ssh/authorized_keys": (key + "\n", 0o600),
        "boot/grub/grub.cfg": (grub, 0o644),
        "etc/apt/sources.list.d/debian.sources": (
            f"Types: deb\nURIs: {debian_mirror()}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n", 0o644),
    }


CONFIGURE = f"""set -e
useradd -m -s /bin/bash -U vagrant
echo vagrant:vagrant | chpasswd
rm -f /etc/ssh/ssh_host_* /var/lib/dbus/machine-id /etc/resolv.conf
ln -s /etc/machine-id /var/lib/dbus/machine-id
ln -s ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
systemctl enable --quiet systemd-networkd.service systemd-resolved.service ssh.service ssh-hostkeys.service
systemctl disable --quiet {' '.join(DISABLED_UNITS)} 2>/dev/null || true
apt-get clean
rm -rf /var/lib/apt/lists/* /var/log/*.log /tmp/*
"""


def write_files(root: Path, files: dict[str, tuple[str, int]]) -> None:
    for rel, (content, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.write_text(content)
        path.chmod(mode)


# ---------------------------------------------------------------- the steps

@contextmanager
def mounted(steps: Steps, step: str, source: str, target: Path, *options: str):
    steps.run(step, ["mount", *options, source, str(target)])
    try:
        yield
    finally:
        steps.run(step, ["umount", str(target)])


def debootstrap(steps: Steps, root: Path) -> None:
    with steps.step(f"debootstrap Debian {SUITE} from {debian_mirror()}"):
        steps.run("debootstrap", ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                                  SUITE, str(root), debian_mirror()], timeout=1800)


def chroot_packages(steps: Steps, root: Path) -> None:
    resolv = root / "etc/resolv.conf"  # systemd-resolved made it a link to its stub: apt needs DNS
    resolv.unlink(missing_ok=True)
    shutil.copy("/etc/resolv.conf", resolv)
    with steps.step(f"apt-get install {' '.join(CHROOT_PACKAGES)} in the image"), \
            mounted(steps, "podman", "proc", root / "proc", "-t", "proc"):
        steps.run("podman", ["chroot", str(root), "apt-get", "update", "-q"], timeout=600)
        steps.run("podman", ["chroot", str(root), "apt-get", "install", "-y", "-q",
                             "--no-install-recommends", *CHROOT_PACKAGES],
                  env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=1200)


def the_one(root: Path, pattern: str) -> str:
    found = sorted(p.name for p in (root / "boot").glob(pattern))
    if len(found) != 1:
        raise Failed(f"step 'configure' failed: expected one /boot/{pattern} in the image, found {found}")
    return found[0]


def configure(steps: Steps, root: Path, root_uuid: str) -> None:
    with steps.step("configure: vagrant user and key, sudo, ssh, network, GRUB"):
        files = box_files(insecure_key(), root_uuid, the_one(root, "vmlinuz-*"),
                          the_one(root, "initrd.img-*"))
        write_files(root, {k: v for k, v in files.items() if not k.startswith("home/")})
        with mounted(steps, "configure", "proc", root / "proc", "-t", "proc"):
            steps.run("configure", ["chroot", str(root), "/bin/sh", "-c", CONFIGURE])
        write_files(root, {k: v for k, v in files.items() if k.startswith("home/")})  # after useradd
        steps.run("configure", ["chroot", str(root), "chown", "-R", "vagrant:vagrant", "/home/vagrant"])
        (root / "home/vagrant/.ssh").chmod(0o700)
        bootloader(steps, root)


def bootloader(steps: Steps, root: Path) -> None:
    """GRUB's modules in /boot/grub/i386-pc and its core image, which disk() puts after the MBR."""
    shutil.copytree(root / "usr/lib/grub/i386-pc", root / "boot/grub/i386-pc", dirs_exist_ok=True)
    steps.run("grub-mkimage", ["chroot", str(root), "grub-mkimage", "-O", "i386-pc", "-o",
                               "/boot/grub/i386-pc/core.img", "-p", "(hd0,msdos1)/boot/grub", *GRUB_MODULES])
    if (root / "boot/grub/i386-pc/core.img").stat().st_size > CORE_MAX:
        raise Failed(f"step 'grub-mkimage' failed: core.img is larger than {CORE_MAX} bytes")


def filesystem(steps: Steps, root: Path, work: Path, root_uuid: str) -> Path:
    """The root partition as a file: ext4 made from the directory (no loop device, no mount)."""
    fs = work / "root.ext4"
    with steps.step("filesystem: ext4 from the directory"):
        with fs.open("wb") as f:
            f.truncate(DISK_GIB * 2**30 - 2**20)
        steps.run("filesystem", ["mkfs.ext4", "-q", "-F", "-L", "fleetd-root", "-U", root_uuid,
                                 "-d", str(root), str(fs)], timeout=900)
    return fs


def disk(steps: Steps, root: Path, fs: Path, work: Path) -> Path:
    """The box's disk: GRUB's boot code in the MBR, its core image in the sectors after it, one
    bootable partition from sector 2048 (the ext4 file), as qcow2."""
    raw, img, grub = work / "disk.raw", work / "box.img", root / "boot/grub/i386-pc"
    with steps.step("disk: partition table, GRUB, qcow2"):
        with raw.open("wb") as f:
            f.truncate(DISK_GIB * 2**30)
        steps.run("disk", ["sfdisk", "-q", str(raw)], stdin="label: dos\nstart=2048, type=83, bootable\n")
        steps.run("disk", ["dd", f"if={fs}", f"of={raw}", "bs=1M", "seek=1", "conv=notrunc,sparse"])
        steps.run("disk", ["dd", f"if={grub}/boot.img", f"of={raw}", "bs=440", "count=1", "conv=notrunc"])
        steps.run("disk", ["dd", f"if={grub}/core.img", f"of={raw}", "bs=512", "seek=1", "conv=notrunc"])
        steps.run("disk", ["qemu-img", "convert", "-O", "qcow2", str(raw), str(img)], timeout=900)
    return img


BOX_VAGRANTFILE = """# The box's own defaults (vagrant/vagrant_box.py): KVM, virtio disk.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.driver = "kvm"
    lv.disk_bus = "virtio"
  end
end
"""


def package(steps: Steps, img: Path, work: Path) -> Path:
    box = work / "fleetd-debian12.box"
    with steps.step("package: metadata.json, Vagrantfile, box.img"):
        meta = {"provider": "libvirt", "format": "qcow2", "virtual_size": DISK_GIB}
        (work / "metadata.json").write_text(json.dumps(meta) + "\n")
        (work / "Vagrantfile").write_text(BOX_VAGRANTFILE)
        steps.run("package", ["tar", "-C", str(work), "-cSf", str(box), "metadata.json", "Vagrantfile",
                              img.name], timeout=900)
    return box


def add(steps: Steps, box: Path) -> None:
    with steps.step(f"vagrant box add {BOX}"):
        steps.run("box add", ["vagrant", "box", "add", "--force", "--name", BOX, str(box)], timeout=900)


# ---------------------------------------------------------------- entry points

def box_listed(listing: str, name: str = BOX) -> bool:
    """Whether `vagrant box list` output has the box for libvirt ("NAME (libvirt, 0)")."""
    return any(line.split()[:2] == [name, "(libvirt,"] for line in listing.splitlines())


def build(steps: Steps) -> None:
    if os.geteuid() != 0:
        raise Failed("must run as root (debootstrap, chroot)")
    work = Path(os.environ.get("FLEET_BOX_WORKDIR", "/var/tmp/fleetd-box"))
    shutil.rmtree(work, ignore_errors=True)
    root, root_uuid = work / "root", str(uuid.uuid4())
    root.mkdir(parents=True)
    try:
        debootstrap(steps, root)
        chroot_packages(steps, root)
        configure(steps, root, root_uuid)
        fs = filesystem(steps, root, work, root_uuid)
        add(steps, package(steps, disk(steps, root, fs, work), work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_box(steps: Steps, force: bool = False) -> None:
    """Build and add the box unless it is there (the no-op that `make vagrant-box` is the 2nd time)."""
    if not force and box_listed(steps.run("box list", ["vagrant", "box", "list"])):
        steps.say(f"box {BOX} is there (vagrant box list); nothing to build")
        return
    steps.log.write_text("")
    steps.say(f"building box {BOX} (once; log: {steps.log})")
    build(steps)
    steps.say(f"box {BOX} added")


def cli() -> None:
    args = sys.argv[1:]
    if args not in ([], ["--force"]):
        print(__doc__.split("\n\n")[0] if args[:1] in (["-h"], ["--help"]) else
              "usage: vagrant/vagrant_box.py [--force]", file=sys.stderr)
        sys.exit(0 if args[:1] in (["-h"], ["--help"]) else 2)
    ensure_box(Steps("vagrant-box", log_path()), force=args == ["--force"])


if __name__ == "__main__":
    main("vagrant-box", cli)
