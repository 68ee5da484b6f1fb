# SPDX-License-Identifier: Apache-2.0
"""Workload binding: a WorkloadIdentity for a service account needs the right to mint that
account's tokens, enforced by the ValidatingAdmissionPolicy in deploy/workload-binding.yaml.

A tenant who may create WorkloadIdentities in a namespace, impersonated against the real API
server, gets one for the service account it may create tokens for, and is refused, with a
message naming the field and the missing right, for one it may not. Nothing is written then.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.cluster import REPO
from tests.support.identities import GROUP, VERSION
from tests.support.waiting import wait_for

POLICY = REPO / "deploy" / "workload-binding.yaml"
TENANT = "alice@example.org"


@pytest.fixture(scope="module")
def workload_binding(kube: client.ApiClient, crds: list[str]) -> Iterator[None]:
    """The policy and its binding of deploy/workload-binding.yaml, as they are."""
    api = client.AdmissionregistrationV1Api(kube)
    docs = [d for d in yaml.safe_load_all(POLICY.read_text()) if d]
    policy = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicy")
    binding = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding")
    api.create_validating_admission_policy(policy)
    api.create_validating_admission_policy_binding(binding)
    yield
    api.delete_validating_admission_policy_binding(binding["metadata"]["name"])
    api.delete_validating_admission_policy(policy["metadata"]["name"])


@pytest.fixture
def tenant(kube: client.ApiClient, namespace: str) -> client.ApiClient:
    """A client acting as a tenant who may create WorkloadIdentities in ``namespace`` and
    create tokens for the service account "web" only (RBAC ``resourceNames``)."""
    rbac = client.RbacAuthorizationV1Api(kube)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "tenant"},
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "resources": ["workloadidentities"],
                    "verbs": ["create", "get", "update", "patch"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["serviceaccounts/token"],
                    "resourceNames": ["web"],
                    "verbs": ["create"],
                },
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "tenant"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant"},
            "subjects": [{"kind": "User", "name": TENANT, "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    impersonating = copy.copy(kube.configuration)
    as_tenant = client.ApiClient(impersonating)
    as_tenant.set_default_header("Impersonate-User", TENANT)
    return as_tenant


def _identity(name: str, account: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkloadIdentity",
        "metadata": {"name": name},
        "spec": {"serviceAccountName": account},
    }


def _create(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> ApiException | None:
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "workloadidentities", body
        )
    except ApiException as err:
        return err
    return None


def _enforced(tenant: client.ApiClient, namespace: str) -> ApiException:
    """The API server compiles a new policy asynchronously: probe, each time under a new
    name, until it refuses the tenant an identity for "db"; the refusal."""
    attempts = iter(range(1000))

    def refused() -> ApiException | None:
        err = _create(tenant, namespace, _identity(f"probe-{next(attempts)}", "db"))
        return err if err is not None and err.status == 403 else None

    return wait_for(refused, timeout=15, what="the workload-binding policy to take effect")


def test_an_identity_needs_the_right_to_mint_its_service_accounts_tokens(
    kube: client.ApiClient, namespace: str, workload_binding: None, tenant: client.ApiClient
) -> None:
    refused = _enforced(tenant, namespace)
    assert _create(tenant, namespace, _identity("db", "db")).status == 403  # type: ignore[union-attr]
    message = str(refused.body)
    assert "spec.serviceAccountName" in message
    assert 'service account \\"db\\"' in message or 'service account "db"' in message
    assert "create serviceaccounts/token" in message
    assert TENANT in message
    listed = client.CustomObjectsApi(kube).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "workloadidentities"
    )
    assert "db" not in [item["metadata"]["name"] for item in listed["items"]]
    # The account it may mint tokens for is fine.
    assert _create(tenant, namespace, _identity("web", "web")) is None


def test_moving_an_identity_to_another_service_account_needs_that_right_too(
    kube: client.ApiClient, namespace: str, workload_binding: None, tenant: client.ApiClient
) -> None:
    _enforced(tenant, namespace)
    assert _create(tenant, namespace, _identity("web", "web")) is None
    objects = client.CustomObjectsApi(tenant)
    with pytest.raises(ApiException) as refused:
        objects.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "workloadidentities",
            "web",
            {"spec": {"serviceAccountName": "db"}},
        )
    assert refused.value.status in (403, 422)
    # Changes that keep the service account need nothing more.
    objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "workloadidentities",
        "web",
        {"metadata": {"labels": {"team": "web"}}},
    )
