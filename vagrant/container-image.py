#!/usr/bin/env python3
"""container-image.py: write the clusters' demo container image as an OCI archive, offline.

    python3 vagrant/container-image.py --busybox /bin/busybox OUT.tar

No machine of ours reaches an image registry, so the image is made from a Debian package that
is already there: the static busybox of `busybox-static` (the local cluster takes it from its
base image, the Vagrant VMs from their own /bin). The archive is an OCI image layout in one tar
(`podman load -i OUT.tar` reads it) holding one image, localhost/fleet-demo:latest, with one
layer:

    /bin/busybox and a link per applet the examples use (sh, httpd, wget, base64, sed, ...)
    /bin/web-serve  PORT TEXT...   answer GET / with TEXT on PORT (busybox httpd), until SIGTERM
    /bin/web-check  PREFIX [SECS]  call every endpoint fleetd publishes for the units whose name
                                   starts with PREFIX, read from etcd; again every SECS seconds
    /etc/passwd, /etc/group, /tmp

The same inputs give the same bytes (fixed times, owners and order), so the image id is stable.
Standard library only: it runs on the machine that builds the local cluster and in the VMs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import platform
import struct
import sys
import tarfile
from pathlib import Path

IMAGE = "localhost/fleet-demo:latest"
APPLETS = ("sh", "httpd", "wget", "base64", "sed", "grep", "cut", "tr", "printf", "echo",
           "sleep", "cat", "mkdir", "kill", "hostname", "ls", "env", "true", "false", "test",
           "timeout", "ssl_client")  # ssl_client: wget's TLS for https:// etcd URLs
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"  # uncompressed: quicker to make and load
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
                 "s390x": "s390x", "riscv64": "riscv64"}
PT_INTERP = 3  # ELF program header type of the dynamic loader's path

WEB_SERVE = """#!/bin/sh
# web-serve PORT TEXT...: answer every GET / on PORT with TEXT, with busybox httpd.
# httpd runs as a child: a signal handler of this shell (PID 1 of the container) ends it on
# SIGTERM, which PID 1 would otherwise ignore, so `podman stop` is quick.
set -eu
port=$1; shift
mkdir -p /tmp/www
printf '%s\\n' "$*" >/tmp/www/index.html
httpd -f -v -p "$port" -h /tmp/www &
child=$!
trap 'kill "$child"; exit 0' TERM INT
echo "web-serve: serving \\"$*\\" on port $port"
wait "$child"
"""

WEB_CHECK = """#!/bin/sh
# web-check PREFIX [SECONDS]: discovery from inside a container. Reads every endpoint record
# fleetd publishes for the units whose name starts with PREFIX (etcd key
# ${FLEET_ETCD_PREFIX}endpoints/<unit>/<machine>, JSON) through etcd's HTTP gateway at the
# first of FLEET_ETCD_ENDPOINTS that answers (https:// too; as etcd user FLEET_ETCD_USER with
# FLEET_ETCD_PASSWORD when they are set), calls http://IP:PORT/ of each, and prints
#   web-check: <unit> at <ip>:<port> says: <body>       (or: ... did not answer)
#   web-check: <n> endpoint(s), <m> answered
# With SECONDS, does it again every SECONDS seconds until SIGTERM. (`timeout`, not wget's own
# -T: busybox 1.35's static wget crashes with -T.)
set -u
prefix=${FLEET_ETCD_PREFIX:-/_coreos.com/fleet/}endpoints/$1
every=${2:-}
b64() { printf "$1" | base64 | tr -d '\\n'; }
field() { sed -n "s/.*\\"$1\\":\\"\\{0,1\\}\\([^\\",}]*\\).*/\\1/p"; }

post() {  # post URL DATA [TOKEN]: busybox wget checks no certificate, so none is given
  if [ -n "${3:-}" ]; then
    timeout 3 wget -q -O- --no-check-certificate --header "Authorization: $3" --post-data "$2" "$1"
  else
    timeout 3 wget -q -O- --no-check-certificate --post-data "$2" "$1"
  fi
}

token() {  # an etcd auth token for FLEET_ETCD_USER at endpoint $1 (nothing without a user)
  [ -n "${FLEET_ETCD_USER:-}" ] || return 0
  post "$1/v3/auth/authenticate" \
    "{\\"name\\":\\"$FLEET_ETCD_USER\\",\\"password\\":\\"${FLEET_ETCD_PASSWORD:-}\\"}" | field token
}

records() {
  body="{\\"key\\":\\"$(b64 "$prefix")\\",\\"range_end\\":\\"$(b64 "$prefix\\\\377")\\"}"
  for ep in $(echo "${FLEET_ETCD_ENDPOINTS:-http://127.0.0.1:2379}" | tr ',' ' '); do
    out=$(post "$ep/v3/kv/range" "$body" "$(token "$ep")") || continue
    echo "$out" | grep -o '"value":"[^"]*"' | cut -d'"' -f4 |
      while read -r v; do echo "$v" | base64 -d; echo; done
    return 0
  done
  echo "web-check: no etcd endpoint answered (${FLEET_ETCD_ENDPOINTS:-})" >&2
  return 1
}

check_once() {
  found=0; answered=0
  for rec in $(records | tr -d ' '); do
    unit=$(echo "$rec" | field unit); ip=$(echo "$rec" | field ip); port=$(echo "$rec" | field port)
    found=$((found + 1))
    if said=$(timeout 3 wget -q -O- "http://$ip:$port/"); then
      answered=$((answered + 1)); echo "web-check: $unit at $ip:$port says: $said"
    else
      echo "web-check: $unit at $ip:$port did not answer"
    fi
  done
  echo "web-check: $found endpoint(s), $answered answered"
}

trap 'exit 0' TERM INT
check_once
[ -n "$every" ] || exit 0
while true; do sleep "$every" & wait $!; check_once; done
"""

PASSWD = "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def is_static_elf(data: bytes) -> bool:
    """A 64-bit little-endian ELF executable without a dynamic loader (no PT_INTERP header)."""
    if data[:6] != b"\x7fELF\x02\x01":
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    types = (struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum))
    return PT_INTERP not in types


def _entry(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def layer_tar(busybox: bytes) -> bytes:
    """The image's one layer: an uncompressed tar of its whole file system."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777)):
            tar.addfile(_entry(d, tarfile.DIRTYPE, mode))
        files = {"bin/busybox": (busybox, 0o755), "bin/web-serve": (WEB_SERVE.encode(), 0o755),
                 "bin/web-check": (WEB_CHECK.encode(), 0o755),
                 "etc/passwd": (PASSWD.encode(), 0o644), "etc/group": (GROUP.encode(), 0o644)}
        for name, (data, mode) in files.items():
            tar.addfile(_entry(name, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
        for applet in APPLETS:
            tar.addfile(_entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox"))
    return buf.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest(data), "size": len(data)}


def as_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def image_blobs(busybox: bytes) -> tuple[bytes, list[bytes]]:
    """(manifest, [config, layer, manifest]): every blob of the image, the manifest last."""
    layer = layer_tar(busybox)
    config = as_json({
        "architecture": ARCHITECTURES.get(platform.machine(), platform.machine()), "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
    })
    manifest = as_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": descriptor(OCI_CONFIG, config),
                        "layers": [descriptor(OCI_LAYER, layer)]})
    return manifest, [config, layer, manifest]


def oci_archive(busybox: bytes) -> bytes:
    """The OCI image layout (oci-layout, index.json, blobs/sha256/*) as one tar."""
    manifest, blobs = image_blobs(busybox)
    index = {"schemaVersion": 2, "manifests": [{
        **descriptor(OCI_MANIFEST, manifest),
        "annotations": {"org.opencontainers.image.ref.name": IMAGE}}]}
    files = {"oci-layout": as_json({"imageLayoutVersion": "1.0.0"}), "index.json": as_json(index)}
    files.update({f"blobs/sha256/{digest(b).removeprefix('sha256:')}": b for b in blobs})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            tar.addfile(_entry(d, tarfile.DIRTYPE, 0o755))
        for name, data in files.items():
            tar.addfile(_entry(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return buf.getvalue()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=f"Write {IMAGE} as an OCI archive.")
    parser.add_argument("--busybox", type=Path, default=Path("/bin/busybox"),
                        help="a statically linked busybox (Debian: busybox-static)")
    parser.add_argument("out", type=Path, help="the archive to write (for `podman load -i`)")
    args = parser.parse_args(argv)
    try:
        busybox = args.busybox.read_bytes()
    except OSError as e:
        parser.exit(1, f"container-image.py: cannot read {args.busybox}: {e.strerror}\n")
    if not is_static_elf(busybox):
        parser.exit(1, f"container-image.py: {args.busybox} is not a statically linked busybox "
                       "(install busybox-static)\n")
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_bytes(oci_archive(busybox))
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
