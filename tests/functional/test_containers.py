"""Real cluster: units that run as podman containers (units/web-container@.service and
units/web-container-check.service), driven through fleetctl like an operator would.

Every host has podman and the demo image localhost/fleet-demo:latest, which `up` built from
busybox-static and fleet-images.service loaded at boot. Checked against each host's own
systemd and podman (`podman ps -a`, `podman images`), the published endpoints, the answers of
the containers from another host, the consumer container's journal, and etcd itself.
"""

from __future__ import annotations

from cluster import LocalCluster
from test_examples import as_json, fetch, journal, unit_path
from test_units import MOVE_TIMEOUT, active_on

IMAGE = "localhost/fleet-demo:latest"
PORT = 8081
WEB = "web-container@.service"
CHECK = "web-container-check.service"
ENDPOINT_KEYS = "/_coreos.com/fleet/endpoints/"


def containers(cluster: LocalCluster, host: str) -> list[str]:
    """Names of every container podman on `host` knows, running or not (`podman ps -a`)."""
    out = cluster.host_exec(host, "podman", "ps", "-a", "--format", "{{.Names}}").stdout
    return sorted(out.split())


def homes(cluster: LocalCluster, count: int) -> dict[int, str]:
    """Instance number -> the one host whose systemd runs web-container@N, once all do."""
    def found() -> dict[int, str] | None:
        where = {i: active_on(cluster, f"web-container@{i}.service") for i in range(1, count + 1)}
        return {i: hs[0] for i, hs in where.items()} if all(len(hs) == 1 for hs in where.values()) else None
    return cluster.wait_until(found, MOVE_TIMEOUT, f"{count} web-container instances active")


def published(cluster: LocalCluster) -> list[tuple[str, str, int]]:
    return sorted((r["unit"], r["ip"], r["port"]) for r in as_json(cluster, "endpoints"))


def wait_published(cluster: LocalCluster, where: dict[int, str]) -> None:
    want = sorted((f"web-container@{i}.service", cluster.ip(h), PORT) for i, h in where.items())
    cluster.wait_until(lambda: published(cluster) == want, MOVE_TIMEOUT,
                       f"fleetctl endpoints listing {want}")


def wait_answers(cluster: LocalCluster, where: dict[int, str]) -> None:
    """Each instance's container answers on its host's address, from another host."""
    for i, host in where.items():
        client = next(h for h in cluster.running_hosts() if h != host)
        url = f"http://{cluster.ip(host)}:{PORT}/"
        cluster.wait_until(lambda c=client, u=url, w=f"web-container@{i} on {host}":
                           fetch(cluster, c, u) == w, MOVE_TIMEOUT, f"{url} answering")


def checked_lines(cluster: LocalCluster, where: dict[int, str]) -> list[str]:
    """The lines web-check prints when it reaches every instance in `where`."""
    lines = [f"web-check: web-container@{i}.service at {cluster.ip(h)}:{PORT} says: "
             f"web-container@{i} on {h}" for i, h in sorted(where.items())]
    return [*lines, f"web-check: {len(where)} endpoint(s), {len(where)} answered"]


def wait_checked(cluster: LocalCluster, where: dict[int, str]) -> None:
    """The consumer container's latest round reached exactly the instances in `where`."""
    want = checked_lines(cluster, where)

    def latest_round() -> list[str] | None:
        (host,) = active_on(cluster, CHECK)
        lines = [ln for ln in journal(cluster, host, CHECK).splitlines() if ln.startswith("web-check: ")]
        return lines[-len(want):] if lines[-len(want):] == want else None

    cluster.wait_until(latest_round, MOVE_TIMEOUT, f"web-check printing {want}")


def endpoint_keys(cluster: LocalCluster) -> list[str]:
    return cluster.etcdctl("get", "--prefix", "--keys-only", ENDPOINT_KEYS).stdout.split()


def test_every_host_has_podman_with_the_demo_image(cluster: LocalCluster) -> None:
    for host in cluster.hosts():
        images = cluster.host_exec(host, "podman", "images", "--format", "{{.Repository}}:{{.Tag}}")
        assert IMAGE in images.stdout.split(), f"{host}: {images.stdout!r}"
        driver = cluster.host_exec(host, "podman", "info", "--format", "{{.Store.GraphDriverName}}")
        assert driver.stdout.strip() == "vfs"  # nested in nspawn: see docs/units.md, "Containers"
        assert containers(cluster, host) == []


def test_three_instances_run_one_container_per_host_and_destroy_leaves_nothing(
        cluster: LocalCluster) -> None:
    cluster.fleetctl("start", "--instances", "3", unit_path(WEB))
    where = homes(cluster, 3)
    assert sorted(where.values()) == ["h1", "h2", "h3"]
    for i, host in where.items():
        assert containers(cluster, host) == [f"web-container-{i}"]
    wait_published(cluster, where)
    wait_answers(cluster, where)

    cluster.fleetctl("start", unit_path(CHECK))
    wait_checked(cluster, where)

    cluster.fleetctl("destroy", WEB, CHECK)
    assert as_json(cluster, "list-unit-files") == []
    for host in cluster.hosts():
        cluster.wait_until(lambda h=host: containers(cluster, h) == [], MOVE_TIMEOUT,
                           f"`podman ps -a` empty on {host}")
    cluster.wait_until(lambda: endpoint_keys(cluster) == [], MOVE_TIMEOUT,
                       "no endpoint left in etcd")
    assert published(cluster) == []


def test_an_instance_on_a_powered_off_host_moves_to_the_host_that_had_none(
        cluster: LocalCluster) -> None:
    cluster.fleetctl("start", "--instances", "2", unit_path(WEB))
    cluster.fleetctl("start", unit_path(CHECK))
    where = homes(cluster, 2)
    (spare,) = set(cluster.hosts()) - set(where.values())
    wait_published(cluster, where)
    wait_checked(cluster, where)

    gone = where[1]
    cluster.stop_host(gone)
    moved = {**where, 1: spare}
    assert homes(cluster, 2) == moved
    assert "web-container-1" in containers(cluster, spare)
    wait_published(cluster, moved)  # the powered-off host's endpoint went with its lease
    wait_answers(cluster, moved)
    wait_checked(cluster, moved)


def test_a_killed_instance_leaves_no_container_and_no_endpoint(cluster: LocalCluster) -> None:
    cluster.fleetctl("start", "--instances", "1", unit_path(WEB))
    (host,) = homes(cluster, 1).values()
    wait_published(cluster, {1: host})
    cluster.host_exec(host, "systemctl", "kill", "--signal=KILL", "web-container@1.service")
    cluster.wait_until(lambda: cluster.host_exec(
        host, "systemctl", "is-active", "web-container@1.service", check=False).stdout.strip()
        in ("failed", "inactive"), MOVE_TIMEOUT, "web-container@1 no longer active")
    assert containers(cluster, host) == []  # ExecStopPost removed what --rm had no time to
    leftovers = cluster.host_exec(host, "sh", "-c", "cat /proc/[0-9]*/comm | grep -xE 'conmon|httpd'",
                                  check=False)
    assert leftovers.stdout == "", "no container process outlives its unit"
    cluster.wait_until(lambda: published(cluster) == [], MOVE_TIMEOUT, "the endpoint withdrawn")


def test_provision_builds_the_demo_image_where_there_is_none(cluster: LocalCluster) -> None:
    """The Vagrant VMs' path: `provision.sh containers` makes the image from the host's own
    busybox-static when its image directory lacks it, and podman loads what it made."""
    host = cluster.hosts()[0]
    provision = ["bash", "/opt/fleet/vagrant/provision.sh", "containers"]
    try:
        cluster.host_exec(host, "env", "FLEET_NO_START=1", "FLEET_IMAGE_DIR=/tmp/vm-images",
                          *provision)
        loaded = cluster.host_exec(host, "podman", "load", "-i", "/tmp/vm-images/fleet-demo.tar")
        assert f"Loaded image: {IMAGE}" in loaded.stdout
    finally:  # the host's own configuration again: its image directory is the cluster's
        cluster.host_exec(host, "env", "FLEET_NO_START=1", *provision)
        cluster.host_exec(host, "rm", "-rf", "/tmp/vm-images")
