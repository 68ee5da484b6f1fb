# SPDX-License-Identifier: Apache-2.0
"""The local control plane (etcd, kube-apiserver, kube-controller-manager) and OpenBao dev server.

One implementation serves the integration tests and ``make run``; ``python -m wio.devcluster``
is its command line. It is a development aid: the operator proper never imports it.
"""

from wio.devcluster.binaries import Binaries, Unavailable, find_binaries
from wio.devcluster.cluster import ControlPlane
from wio.devcluster.openbao import OpenBao

__all__ = ["Binaries", "ControlPlane", "OpenBao", "Unavailable", "find_binaries"]
