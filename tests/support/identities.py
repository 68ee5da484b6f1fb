# SPDX-License-Identifier: Apache-2.0
"""Test helpers that act as a platform team would: apply manifests, read what wio wrote."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

from cryptography import x509
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.waiting import wait_for
from wio.clock import rfc3339
from wio.models.revocation import parse_shard

GROUP, VERSION = "identity.wio.dev", "v1alpha1"


def create_identity(
    kube: client.ApiClient, namespace: str, name: str, spec: dict[str, Any]
) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkloadIdentity",
        "metadata": {"name": name},
        "spec": spec,
    }
    return client.CustomObjectsApi(kube).create_namespaced_custom_object(  # type: ignore[no-any-return]
        GROUP, VERSION, namespace, "workloadidentities", body
    )


def get_identity(kube: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(kube).get_namespaced_custom_object(  # type: ignore[no-any-return]
        GROUP, VERSION, namespace, "workloadidentities", name
    )


def patch_identity(
    kube: client.ApiClient, namespace: str, name: str, patch: dict[str, Any]
) -> None:
    client.CustomObjectsApi(kube).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "workloadidentities", name, patch
    )


def delete_identity(kube: client.ApiClient, namespace: str, name: str) -> None:
    client.CustomObjectsApi(kube).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "workloadidentities", name
    )


def apply_policy(kube: client.ApiClient, name: str, spec: dict[str, Any]) -> None:
    api = client.CustomObjectsApi(kube)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "IdentityPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }
    try:
        api.create_cluster_custom_object(GROUP, VERSION, "identitypolicies", body)
    except ApiException as err:
        if err.status != 409:
            raise
        current = api.get_cluster_custom_object(GROUP, VERSION, "identitypolicies", name)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        api.replace_cluster_custom_object(GROUP, VERSION, "identitypolicies", name, body)


def delete_policy(kube: client.ApiClient, name: str) -> None:
    try:
        client.CustomObjectsApi(kube).delete_cluster_custom_object(
            GROUP, VERSION, "identitypolicies", name
        )
    except ApiException as err:
        if err.status != 404:
            raise


def condition(body: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def wait_condition(
    kube: client.ApiClient,
    namespace: str,
    name: str,
    kind: str,
    status: str,
    *,
    timeout: float = 30,
    reason: str | None = None,
    get: Callable[[client.ApiClient, str, str], dict[str, Any]] = get_identity,
) -> dict[str, Any]:
    """The object (a WorkloadIdentity unless ``get`` reads another kind) once condition
    ``kind`` has ``status`` (and ``reason``) for its current generation."""

    def probe() -> dict[str, Any] | None:
        body = get(kube, namespace, name)
        cond = condition(body, kind)
        if (
            cond
            and cond["status"] == status
            and (reason is None or cond["reason"] == reason)
            and cond.get("observedGeneration") == body["metadata"]["generation"]
        ):
            return body
        return None

    return wait_for(probe, timeout=timeout, what=f"{namespace}/{name} {kind}={status} {reason}")


def read_secret(
    kube: client.ApiClient, namespace: str, name: str
) -> tuple[client.V1Secret, dict[str, bytes]]:
    secret = client.CoreV1Api(kube).read_namespaced_secret(name, namespace)
    data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
    return secret, data


def leaf(data: dict[str, bytes]) -> x509.Certificate:
    return x509.load_pem_x509_certificates(data["tls.crt"])[0]


def spiffe_ids(cert: x509.Certificate) -> list[str]:
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(sans.get_values_for_type(x509.UniformResourceIdentifier))


def trust_configmap(kube: client.ApiClient, namespace: str, timeout: float = 10) -> dict[str, str]:
    """The namespace's trust bundle; wio publishes it shortly after the first issuance."""

    def read() -> dict[str, str]:
        api = client.CoreV1Api(kube)
        return dict(api.read_namespaced_config_map("wio-trust-bundle", namespace).data)

    return wait_for(read, timeout=timeout, what=f"the trust bundle ConfigMap in {namespace}")


def revocation_shards(
    kube: client.ApiClient, namespace: str, name: str = "wio-revocations"
) -> list[client.V1ConfigMap]:
    """The revocation list's shards (``<name>-NN``) in the operator's namespace."""
    listed = client.CoreV1Api(kube).list_namespaced_config_map(
        namespace, label_selector="app.kubernetes.io/managed-by=wio"
    )
    return [cm for cm in listed.items if re.fullmatch(re.escape(name) + r"-\d\d", cm.metadata.name)]


def revocations(
    kube: client.ApiClient, namespace: str, name: str = "wio-revocations"
) -> list[dict[str, Any]]:
    """Every entry of the durable revocation list, as ``{"kind", "id", "namespace", ...}``."""
    found = []
    for shard in revocation_shards(kube, namespace, name):
        for entry in parse_shard((shard.data or {}).get("revocations.json", "").encode()):
            found.append(
                {
                    "kind": entry.kind,
                    "id": entry.id,
                    "namespace": entry.namespace,
                    "spiffeID": entry.spiffe_id,
                    "reason": entry.reason,
                    "revokedAt": rfc3339(entry.revoked_at),
                    "expiresAt": rfc3339(entry.expires_at),
                    "keyFingerprint": entry.key_fingerprint,
                    "upstreamPending": entry.upstream_pending,
                }
            )
    return found


def published_revocations(kube: client.ApiClient, namespace: str, kind: str) -> set[str]:
    """The IDs of ``kind`` the namespace's trust bundle lists as revoked."""
    doc = json.loads(trust_configmap(kube, namespace)["revocations.json"])
    return set(doc["expires"][kind])


def events_for(kube: client.ApiClient, namespace: str, name: str) -> list[client.CoreV1Event]:
    listed = client.CoreV1Api(kube).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    return list(listed.items)
