# SPDX-License-Identifier: Apache-2.0
"""The per-namespace trust ConfigMaps: reading what is published, and writing one.

Storage only: ``wio.service.trust`` decides what the content is and when to publish. Each
ConfigMap carries ``ca.crt``, ``bundle.spiffe.json``, ``jwks.json`` and ``revocations.json``,
and the hash of that content as an annotation, so an unchanged bundle costs no write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wio.k8s.client import KubeClient, configmap_path, list_watched
from wio.names import CONTENT_HASH_ANNOTATION, MANAGED_BY, MANAGER

#: ConfigMap data key → the content argument it is written from.
DATA_KEYS = {
    "ca.crt": "ca_bundle_pem",
    "bundle.spiffe.json": "spiffe_bundle_json",
    "jwks.json": "jwks_json",
    "revocations.json": "revocations_json",
}


@dataclass(frozen=True)
class Published:
    """One namespace's trust ConfigMap as found: its content hash and SPIFFE bundle."""

    namespace: str
    content_hash: str
    spiffe_bundle_json: str | None


def trust_configmap(
    namespace: str, name: str, content: Mapping[str, bytes], content_hash: str
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY: MANAGER},
            "annotations": {CONTENT_HASH_ANNOTATION: content_hash},
        },
        "data": {key: content[arg].decode("utf-8") for key, arg in DATA_KEYS.items()},
    }


class TrustConfigMaps:
    def __init__(self, kube: KubeClient, *, name: str, namespaces: Sequence[str] = ()) -> None:
        self._kube = kube
        self._name = name
        self._namespaces = tuple(namespaces)

    async def published(self) -> list[Published]:
        """Every trust ConfigMap wio wrote, so a restart rewrites nothing that is current."""
        found = []
        for body in await list_watched(
            self._kube, self._namespaces, configmap_path, f"{MANAGED_BY}={MANAGER}"
        ):
            meta = body.get("metadata") or {}
            if meta.get("name") != self._name:
                continue
            found.append(
                Published(
                    namespace=meta.get("namespace", ""),
                    content_hash=(meta.get("annotations") or {}).get(CONTENT_HASH_ANNOTATION, ""),
                    spiffe_bundle_json=(body.get("data") or {}).get("bundle.spiffe.json"),
                )
            )
        return found

    async def write(self, namespace: str, content: Mapping[str, bytes], content_hash: str) -> None:
        body = trust_configmap(namespace, self._name, content, content_hash)
        await self._kube.apply(configmap_path(namespace, self._name), body)
