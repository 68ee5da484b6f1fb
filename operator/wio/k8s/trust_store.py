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

from wio.errors import ApiConflict, NameTaken
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
    """Reads and writes the trust ConfigMaps, and only wio's own: a tenant's ConfigMap that
    happens to have the name is never taken over (``NameTaken``)."""

    def __init__(self, kube: KubeClient, *, name: str, namespaces: Sequence[str] = ()) -> None:
        self._kube = kube
        self._name = name
        self._namespaces = tuple(namespaces)
        # The resourceVersion of each of wio's ConfigMaps as last seen or written.
        self._versions: dict[str, str | None] = {}

    async def published(self) -> list[Published]:
        """Every trust ConfigMap wio wrote, so a restart rewrites nothing that is current."""
        found = []
        for body in await list_watched(
            self._kube, self._namespaces, configmap_path, f"{MANAGED_BY}={MANAGER}"
        ):
            meta = body.get("metadata") or {}
            if meta.get("name") != self._name:
                continue
            namespace = meta.get("namespace", "")
            self._versions[namespace] = meta.get("resourceVersion")
            found.append(
                Published(
                    namespace=namespace,
                    content_hash=(meta.get("annotations") or {}).get(CONTENT_HASH_ANNOTATION, ""),
                    spiffe_bundle_json=(body.get("data") or {}).get("bundle.spiffe.json"),
                )
            )
        return found

    async def write(self, namespace: str, content: Mapping[str, bytes], content_hash: str) -> None:
        """Create the namespace's ConfigMap, or update wio's own at the version last seen."""
        body = trust_configmap(namespace, self._name, content, content_hash)
        for _ in range(3):
            creating = namespace not in self._versions
            try:
                answer = await self._send(namespace, body)
            except ApiConflict:
                # Taken by someone (a create), or changed since wio last wrote it (an update):
                # look again, by listing wio's own (wio may not read ConfigMaps one by one).
                if not await self._relearn(namespace) and creating:
                    raise NameTaken(
                        f"ConfigMap {namespace}/{self._name} exists and is not wio's; wio does "
                        "not take it over, so verifiers there get no trust bundle from it"
                    ) from None
                continue
            self._versions[namespace] = (answer.get("metadata") or {}).get("resourceVersion")
            return
        raise ApiConflict(f"ConfigMap {namespace}/{self._name} keeps changing; will retry")

    async def _send(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        if namespace not in self._versions:
            body["metadata"].pop("resourceVersion", None)
            return await self._kube.create(configmap_path(namespace), body, metadata_only=True)
        # A merge patch at the version last seen (a precondition), not server-side apply:
        # the API server decodes apply patches as YAML, which for a bundle carrying a large
        # revocation list costs it many times the CPU of JSON.
        patch = {
            "metadata": {
                "resourceVersion": self._versions[namespace],
                "annotations": body["metadata"]["annotations"],
            },
            "data": body["data"],
        }
        return await self._kube.merge_patch(configmap_path(namespace, self._name), patch)

    async def _relearn(self, namespace: str) -> bool:
        """Whether wio's own ConfigMap of that name is there now (its version recorded)."""
        self._versions.pop(namespace, None)
        for item in await self._kube.list(
            configmap_path(namespace), label_selector=f"{MANAGED_BY}={MANAGER}", metadata_only=True
        ):
            meta = item.get("metadata") or {}
            if meta.get("name") == self._name:
                self._versions[namespace] = meta.get("resourceVersion")
                return True
        return False
