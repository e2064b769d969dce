"""Where the tests find the local cluster's Python face: it lives in nemesis/cluster.py.

Not a copy: test modules keep `from cluster import LocalCluster`, and get the one module.
"""

from nemesis.cluster import (  # noqa: F401
    FLEETCTL,
    REPO,
    STATE,
    TOOL,
    ClusterError,
    LocalCluster,
    wait_until,
)
