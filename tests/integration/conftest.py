# SPDX-License-Identifier: Apache-2.0
"""Session-wide real control plane and OpenBao; a fresh namespace per test.

The control plane (etcd, kube-apiserver, kube-controller-manager) and OpenBao start once per
session from ``wio.devcluster`` and stop at its end; every process dies with the test run,
even when pytest itself is killed (see ``wio.devcluster.processes``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.support.cluster import REPO, api_client, install_crds, missing_prerequisite
from wio.devcluster import Binaries, ControlPlane, OpenBao, Unavailable, find_binaries


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    try:
        return find_binaries(build=True)
    except Unavailable as err:
        missing_prerequisite(str(err))
        raise  # unreachable: missing_prerequisite always raises


@pytest.fixture(scope="session")
def control_plane(binaries: Binaries) -> Iterator[ControlPlane]:
    with ControlPlane(binaries) as cluster:
        print(f"\ncontrol plane started in {cluster.startup_seconds:.1f}s")
        yield cluster


@pytest.fixture(scope="session")
def openbao(binaries: Binaries) -> Iterator[OpenBao]:
    with OpenBao(binaries.bao) as bao:
        yield bao


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    api = api_client(control_plane.kubeconfig)
    yield api
    api.close()


@pytest.fixture(scope="session")
def crds(kube: client.ApiClient) -> list[str]:
    """wio's own CRDs from crds/, installed once per session."""
    return install_crds(kube, sorted((REPO / "crds").glob("*.yaml")))


@pytest.fixture
def namespace(kube: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting for completion)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def manifests() -> Path:
    return Path(__file__).parent / "manifests"
