# SPDX-License-Identifier: Apache-2.0
"""The local control plane (etcd, kube-apiserver, kube-controller-manager) and OpenBao dev server,
and optionally a real node (kube-scheduler, containerd and a kubelet) for the e2e tier.

One implementation serves the integration tests and ``make run``; ``python -m wio.devcluster``
is its command line. It is a development aid: the operator proper never imports it.
"""

from wio.devcluster.binaries import (
    Binaries,
    NodeBinaries,
    Unavailable,
    find_binaries,
    find_node_binaries,
)
from wio.devcluster.cluster import ControlPlane
from wio.devcluster.node import Node, why_node_unavailable
from wio.devcluster.openbao import OpenBao

__all__ = [
    "Binaries",
    "ControlPlane",
    "Node",
    "NodeBinaries",
    "OpenBao",
    "Unavailable",
    "find_binaries",
    "find_node_binaries",
    "why_node_unavailable",
]
