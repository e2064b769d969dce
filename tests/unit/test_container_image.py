"""Tier 1: vagrant/container-image.py writes a well-formed OCI archive of the demo image.

The archive is read back as podman would: index.json names localhost/fleet-demo:latest and
points at a manifest whose config and layer digests and sizes match their blobs, and whose
config lists the layer's own digest. The layer holds the busybox given and the applets and
scripts the example units run. A dynamic busybox is refused with a clear line. (That podman
loads and runs it is tests/functional/test_containers.py.)
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "vagrant" / "container-image.py"


def fake_elf(interpreter: bool) -> bytes:
    """A 64-bit ELF header with one program header: PT_INTERP (dynamic) or PT_LOAD (static)."""
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)      # e_phoff: right after the header
    struct.pack_into("<HH", header, 0x36, 56, 1)  # e_phentsize, e_phnum
    program = bytearray(56)
    struct.pack_into("<I", program, 0, 3 if interpreter else 1)
    return bytes(header + program) + b"busybox body"


def build(tmp_path: Path, interpreter: bool = False) -> subprocess.CompletedProcess[str]:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(fake_elf(interpreter))
    return subprocess.run([sys.executable, str(SCRIPT), "--busybox", str(busybox),
                           str(tmp_path / "image.tar")], capture_output=True, text=True)


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def read(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        handle = tar.extractfile(name)
        assert handle is not None, name
        return handle.read()


def blob(archive: bytes, descriptor: dict[str, object]) -> bytes:
    data = read(archive, f"blobs/sha256/{str(descriptor['digest']).removeprefix('sha256:')}")
    assert "sha256:" + hashlib.sha256(data).hexdigest() == descriptor["digest"]
    assert len(data) == descriptor["size"]
    return data


def test_archive_is_an_oci_layout_of_the_demo_image(tmp_path: Path) -> None:
    assert build(tmp_path).returncode == 0
    archive = (tmp_path / "image.tar").read_bytes()
    assert json.loads(read(archive, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(read(archive, "index.json"))["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "localhost/fleet-demo:latest"
    manifest = json.loads(blob(archive, entry))
    config = json.loads(blob(archive, manifest["config"]))
    (layer_descriptor,) = manifest["layers"]
    layer = blob(archive, layer_descriptor)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["os"] == "linux" and config["config"]["Env"] == ["PATH=/bin"]


def test_layer_holds_busybox_its_applets_and_the_example_scripts(tmp_path: Path) -> None:
    assert build(tmp_path).returncode == 0
    archive = (tmp_path / "image.tar").read_bytes()
    (entry,) = json.loads(read(archive, "index.json"))["manifests"]
    (layer_descriptor,) = json.loads(blob(archive, entry))["layers"]
    layer = blob(archive, layer_descriptor)
    files = members(layer)
    assert read(layer, "bin/busybox") == fake_elf(False)
    for applet in ("sh", "httpd", "wget", "base64", "timeout"):
        assert files[f"bin/{applet}"].issym() and files[f"bin/{applet}"].linkname == "busybox"
    for script in ("bin/web-serve", "bin/web-check"):
        assert read(layer, script).startswith(b"#!/bin/sh\n") and files[script].mode == 0o755
    assert files["tmp"].mode == 0o1777


def test_the_same_busybox_gives_the_same_bytes(tmp_path: Path) -> None:
    assert build(tmp_path).returncode == 0
    first = (tmp_path / "image.tar").read_bytes()
    assert build(tmp_path).returncode == 0
    assert (tmp_path / "image.tar").read_bytes() == first


def test_a_dynamic_busybox_is_refused(tmp_path: Path) -> None:
    proc = build(tmp_path, interpreter=True)
    assert proc.returncode == 1
    assert "is not a statically linked busybox (install busybox-static)" in proc.stderr
    assert not (tmp_path / "image.tar").exists()
