# SPDX-License-Identifier: Apache-2.0
"""Test helpers for ScopedCredentials and the operator's HTTP endpoints, used as a platform
team or a resource server would: manifests in, Secrets, conditions and HTTP answers out.

HTTP goes through ``urllib`` and tokens are checked with PyJWT: never wio's own code.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.identities import (
    GROUP,
    VERSION,
    apply_policy,
    create_identity,
    read_secret,
    wait_condition,
)

PLURAL = "scopedcredentials"


def create_credential(
    kube: client.ApiClient, namespace: str, name: str, spec: dict[str, Any]
) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ScopedCredential",
        "metadata": {"name": name},
        "spec": spec,
    }
    return client.CustomObjectsApi(kube).create_namespaced_custom_object(  # type: ignore[no-any-return]
        GROUP, VERSION, namespace, PLURAL, body
    )


def get_credential(kube: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(kube).get_namespaced_custom_object(  # type: ignore[no-any-return]
        GROUP, VERSION, namespace, PLURAL, name
    )


def patch_credential(
    kube: client.ApiClient, namespace: str, name: str, patch: dict[str, Any]
) -> None:
    client.CustomObjectsApi(kube).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, patch
    )


def delete_credential(kube: client.ApiClient, namespace: str, name: str) -> None:
    client.CustomObjectsApi(kube).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )


def credential_gone(kube: client.ApiClient, namespace: str, name: str) -> bool:
    try:
        get_credential(kube, namespace, name)
    except ApiException as err:
        if err.status == 404:
            return True
        raise
    return False


def wait_credential(
    kube: client.ApiClient,
    namespace: str,
    name: str,
    kind: str,
    status: str,
    *,
    timeout: float = 30,
    reason: str | None = None,
) -> dict[str, Any]:
    """The ScopedCredential once condition ``kind`` has ``status`` for its current generation."""
    return wait_condition(
        kube, namespace, name, kind, status, timeout=timeout, reason=reason, get=get_credential
    )


def secret_names(kube: client.ApiClient, namespace: str) -> set[str]:
    return {s.metadata.name for s in client.CoreV1Api(kube).list_namespaced_secret(namespace).items}


def label_namespace(kube: client.ApiClient, namespace: str) -> None:
    """Give the namespace the label the tests' IdentityPolicies select it by."""
    client.CoreV1Api(kube).patch_namespace(
        namespace, {"metadata": {"labels": {"wio-test": namespace}}}
    )


def grant(kube: client.ApiClient, namespace: str, name: str, **grants: Any) -> None:
    """An IdentityPolicy for ``namespace`` with the given token/vault/jwt grants and short TTLs."""
    label_namespace(kube, namespace)
    spec: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {"wio-test": namespace}},
        "x509": {"minTTL": "10s", "maxTTL": "24h"},
        "jwt": {"minTTL": "10s", "maxTTL": "1h"},
        "signers": ["default", "openbao"],
    }
    spec.update(grants)
    apply_policy(kube, name, spec)


def ready_identity(
    kube: client.ApiClient, namespace: str, name: str, spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A WorkloadIdentity, waited for until Ready; returns its status."""
    create_identity(kube, namespace, name, spec or {"serviceAccountName": name})
    return dict(wait_condition(kube, namespace, name, "Ready", "True")["status"])


def secret_token(kube: client.ApiClient, namespace: str, secret: str) -> str:
    _, data = read_secret(kube, namespace, secret)
    return data["token"].decode()


# -- HTTP -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def http(
    url: str,
    *,
    method: str = "GET",
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> HttpAnswer:
    """One request with the standard library; HTTP errors are answers, not exceptions."""
    data = body
    all_headers = dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return HttpAnswer(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as err:
        return HttpAnswer(err.code, dict(err.headers), err.read().decode())


def introspect(base_url: str, token: str, caller: str | None) -> HttpAnswer:
    """POST ``token`` to the introspection endpoint, authenticated with JWT-SVID ``caller``."""
    headers = {"Authorization": f"Bearer {caller}"} if caller is not None else {}
    return http(f"{base_url}/introspect", method="POST", form={"token": token}, headers=headers)
