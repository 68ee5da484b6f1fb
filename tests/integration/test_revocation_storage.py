# SPDX-License-Identifier: Apache-2.0
"""The durable revocation list against the real API server and its 1 MiB object limit.

The first release kept every revocation in one ConfigMap: with a few thousand unexpired
entries the API server refused the write (``Too long``) and finalizers waited for good. These
tests store 20,000 (the design's target) in the sharded form, show the single-list form of
the same entries is refused, and migrate a first-release list at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator

import pytest
from kubernetes import client

from tests.support.identities import revocation_shards
from wio.clock import SystemClock, rfc3339
from wio.devcluster import ControlPlane
from wio.errors import ApiRejected
from wio.k8s.access import from_kubeconfig
from wio.k8s.client import KubeClient, configmap_path
from wio.k8s.revocations import DATA_KEY, RevocationStore
from wio.models.revocation import Revocation, parse_shard
from wio.names import MANAGED_BY, MANAGER

pytestmark = pytest.mark.integration

API_OBJECT_LIMIT = 1024 * 1024


def _entries(count: int, now: dt.datetime) -> list[Revocation]:
    """Realistic entries: 128-bit serials, a SPIFFE ID each, a key fingerprint, 24-hour TTL."""
    return [
        Revocation(
            "x509",
            f"{(i * 0x9E3779B97F4A7C15) % (1 << 128):032x}",
            f"team-{i % 50:02d}",
            f"spiffe://example.org/ns/team-{i % 50:02d}/sa/service-{i:05d}",
            now,
            now + dt.timedelta(hours=24),
            "Deleted",
            key_fingerprint="sha256:" + f"{i:064x}",
        )
        for i in range(count)
    ]


@contextlib.asynccontextmanager
async def _client(control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    api = KubeClient(from_kubeconfig(control_plane.kubeconfig))
    try:
        yield api
    finally:
        await api.close()


def _store(api: KubeClient, namespace: str) -> RevocationStore:
    return RevocationStore(api, namespace=namespace, name="wio-revocations", clock=SystemClock())


@pytest.mark.asyncio
async def test_twenty_thousand_revocations_are_stored_where_one_list_is_refused(
    kube: client.ApiClient, namespace: str, control_plane: ControlPlane
) -> None:
    async with _client(control_plane) as kube_client:
        await _store_twenty_thousand(kube, namespace, kube_client)


async def _store_twenty_thousand(
    kube: client.ApiClient, namespace: str, kube_client: KubeClient
) -> None:
    now = SystemClock().now().replace(microsecond=0)
    entries = _entries(20_000, now)
    # The first release's form of the same entries: one object, refused by the API server.
    legacy = {
        "revocations": [
            {
                "kind": e.kind,
                "id": e.id,
                "spiffeID": e.spiffe_id,
                "keyFingerprint": e.key_fingerprint,
                "revokedAt": rfc3339(e.revoked_at),
                "expiresAt": rfc3339(e.expires_at),
                "reason": e.reason,
            }
            for e in entries
        ]
    }
    with pytest.raises(ApiRejected):
        await kube_client.apply(
            configmap_path(namespace, "one-list"),
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "one-list", "namespace": namespace},
                "data": {DATA_KEY: json.dumps(legacy)},
            },
        )

    store = _store(kube_client, namespace)
    # As concurrent finalizers do: batches arriving together share writes.
    await asyncio.gather(*(store.add(entries[i : i + 500]) for i in range(0, 20_000, 500)))

    shards = revocation_shards(kube, namespace)
    assert 1 < len(shards) <= store.shard_count
    sizes = [len(json.dumps(s.data).encode()) for s in shards]
    assert max(sizes) < API_OBJECT_LIMIT // 4, sizes
    stored = {e.key for s in shards for e in parse_shard(s.data[DATA_KEY].encode())}
    assert stored == {e.key for e in entries}

    restarted = _store(kube_client, namespace)
    await restarted.load()
    assert len(restarted.current) == 20_000


@pytest.mark.asyncio
async def test_a_first_release_list_is_moved_into_shards_and_deleted_at_start(
    kube: client.ApiClient, namespace: str, control_plane: ControlPlane
) -> None:
    async with _client(control_plane) as kube_client:
        await _migrate_first_release(kube, namespace, kube_client)


async def _migrate_first_release(
    kube: client.ApiClient, namespace: str, kube_client: KubeClient
) -> None:
    now = SystemClock().now().replace(microsecond=0)
    entries = _entries(300, now)
    legacy = [
        {
            "kind": e.kind,
            "id": e.id,
            "spiffeID": e.spiffe_id,
            "revokedAt": rfc3339(e.revoked_at),
            "expiresAt": rfc3339(e.expires_at),
            "reason": e.reason,
        }
        for e in entries
    ]
    core = client.CoreV1Api(kube)
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="wio-revocations", labels={MANAGED_BY: MANAGER}),
            data={DATA_KEY: json.dumps({"revocations": legacy})},
        ),
    )
    store = _store(kube_client, namespace)
    await store.load()
    names = {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}
    assert "wio-revocations" not in names
    stored = {
        (e.id, e.namespace)
        for s in revocation_shards(kube, namespace)
        for e in parse_shard(s.data[DATA_KEY].encode())
    }
    assert stored == {(e.id, e.namespace) for e in entries}
