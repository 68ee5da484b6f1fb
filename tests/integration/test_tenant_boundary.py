# SPDX-License-Identifier: Apache-2.0
"""What a tenant who may create wio's objects can make wio do to things that are not theirs.

Each test is an attempt a hostile tenant would make, against the real API server: point a
WorkloadIdentity or ScopedCredential at a Secret wio did not create for it (overwrite it, or
delete it by deleting the object), make two identities fight over one Secret, or patch an
identity's status to get access tokens in another namespace's name. wio must refuse each with a
condition that says why, and touch nothing that is not its own.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt as pyjwt
from kubernetes import client

from tests.integration.conftest import OPERATOR_NAMESPACE, TRUST_DOMAIN
from tests.support.cluster import gone
from tests.support.identities import (
    GROUP,
    VERSION,
    condition,
    create_identity,
    delete_identity,
    delete_policy,
    get_identity,
    read_secret,
    revocations,
    trust_configmap,
    wait_condition,
)
from tests.support.operator import InProcessOperator
from tests.support.scoped import (
    create_credential,
    credential_gone,
    delete_credential,
    get_credential,
    grant,
    ready_identity,
    wait_credential,
)
from tests.support.waiting import wait_for

TOKEN_GRANT = {"minTTL": "10s", "maxTTL": "1h", "audiences": ["orders-api"], "scopes": ["x:*"]}


def _foreign_secret(kube: client.ApiClient, namespace: str, name: str, **kind: Any) -> Any:
    """A Secret another controller made: no wio labels, no wio owner."""
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, labels={"app": "someone-else"}),
        type=kind.get("type", "Opaque"),
        data={"tls.crt": base64.b64encode(b"theirs").decode(), "tls.key": "dGhlaXJz"},
    )
    return client.CoreV1Api(kube).create_namespaced_secret(
        namespace, body, field_manager="other-controller"
    )


def _wait_gone(kube: client.ApiClient, namespace: str, name: str) -> None:
    """Until the WorkloadIdentity's finalizer has run and it is gone."""
    objects = client.CustomObjectsApi(kube)
    read = objects.get_namespaced_custom_object
    args = (GROUP, VERSION, namespace, "workloadidentities", name)
    wait_for(lambda: gone(read, *args), timeout=15, what=f"{name}'s finalizer")


def _unchanged(kube: client.ApiClient, namespace: str, name: str, before: Any) -> None:
    after = client.CoreV1Api(kube).read_namespaced_secret(name, namespace)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.data == before.data
    assert not after.metadata.owner_references


def test_an_identity_never_takes_over_a_secret_it_did_not_create(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    before = _foreign_secret(kube, namespace, "shared-tls", type="kubernetes.io/tls")
    create_identity(
        kube, namespace, "grabby", {"serviceAccountName": "grabby", "secretName": "shared-tls"}
    )
    body = wait_condition(kube, namespace, "grabby", "Ready", "False", reason="SecretConflict")
    message = condition(body, "Ready")["message"]  # type: ignore[index]
    assert "spec.secretName" in message
    assert "already exists and was not created by wio" in message
    _unchanged(kube, namespace, "shared-tls", before)
    assert not (body.get("status") or {}).get("serialNumber")


def test_deleting_an_identity_never_deletes_a_secret_it_did_not_create(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    before = _foreign_secret(kube, namespace, "precious")
    # Denied by the built-in defaults (no policy allows DNS names), so nothing is issued.
    create_identity(
        kube,
        namespace,
        "wrecker",
        {
            "serviceAccountName": "wrecker",
            "secretName": "precious",
            "x509": {"dnsNames": ["a.example.org"]},
        },
    )
    wait_condition(kube, namespace, "wrecker", "PolicyDenied", "True")
    delete_identity(kube, namespace, "wrecker")
    _wait_gone(kube, namespace, "wrecker")
    _unchanged(kube, namespace, "precious", before)


def test_a_second_identity_naming_the_same_secret_is_refused_and_the_first_keeps_it(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    first = ready_identity(
        kube, namespace, "first", {"serviceAccountName": "first", "secretName": "one"}
    )
    create_identity(
        kube, namespace, "second", {"serviceAccountName": "second", "secretName": "one"}
    )
    body = wait_condition(kube, namespace, "second", "Ready", "False", reason="SecretConflict")
    assert "WorkloadIdentity first" in condition(body, "Ready")["message"]  # type: ignore[index]
    secret, _ = read_secret(kube, namespace, "one")
    assert secret.metadata.annotations["identity.wio.dev/serial"] == first["serialNumber"]
    # The first stays Ready with the serial its Secret holds; deleting the second leaves it.
    delete_identity(kube, namespace, "second")
    _wait_gone(kube, namespace, "second")
    secret, _ = read_secret(kube, namespace, "one")
    assert secret.metadata.annotations["identity.wio.dev/serial"] == first["serialNumber"]
    assert get_identity(kube, namespace, "first")["status"]["serialNumber"] == first["serialNumber"]


def test_a_scoped_credential_never_takes_over_or_deletes_a_secret_it_does_not_own(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    name = f"scoped-{namespace}"
    grant(kube, namespace, name, tokens=TOKEN_GRANT)
    try:
        ready_identity(kube, namespace, "payments")
        before = _foreign_secret(kube, namespace, "opaque")
        identity_secret, _ = read_secret(kube, namespace, "payments-identity")
        for cred, target in (("on-foreign", "opaque"), ("on-identity", "payments-identity")):
            create_credential(
                kube,
                namespace,
                cred,
                {
                    "identityRef": "payments",
                    "token": {"audience": "orders-api", "scopes": ["x:read"]},
                    "secretName": target,
                },
            )
            wait_credential(kube, namespace, cred, "Ready", "False", reason="SecretConflict")
            delete_credential(kube, namespace, cred)
            wait_for(
                lambda c=cred: credential_gone(kube, namespace, c), timeout=15, what=f"{cred} gone"
            )
        _unchanged(kube, namespace, "opaque", before)
        after, data = read_secret(kube, namespace, "payments-identity")
        assert after.metadata.resource_version == identity_secret.metadata.resource_version
        assert "token" not in data
    finally:
        delete_policy(kube, name)


def test_a_patched_identity_status_cannot_name_another_namespace_in_a_token(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    name = f"scoped-{namespace}"
    grant(kube, namespace, name, tokens=TOKEN_GRANT)
    try:
        ready_identity(kube, namespace, "payments")
        victim = f"spiffe://{TRUST_DOMAIN}/ns/kube-system/sa/admin"
        # Whoever may patch workloadidentities/status in this namespace tries to choose the
        # subject of the access tokens minted for this identity.
        client.CustomObjectsApi(kube).patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            "workloadidentities",
            "payments",
            {"status": {"spiffeID": victim}},
        )
        create_credential(
            kube,
            namespace,
            "impostor",
            {"identityRef": "payments", "token": {"audience": "orders-api", "scopes": ["x:read"]}},
        )
        status = wait_credential(kube, namespace, "impostor", "Ready", "True")["status"]
        _, data = read_secret(kube, namespace, "impostor-credential")
        token = data["token"].decode()
        jwks = json.loads(trust_configmap(kube, namespace)["jwks.json"])
        kid = pyjwt.get_unverified_header(token)["kid"]
        key = pyjwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid))
        claims = pyjwt.decode(token, key=key, algorithms=["ES256"], audience="orders-api")
        own = f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/payments"
        assert claims["sub"] == own
        assert claims["client_id"] == own
        assert status["spiffeID"] == own
        assert get_credential(kube, namespace, "impostor")["status"]["spiffeID"] != victim
    finally:
        delete_policy(kube, name)


def test_a_secret_forged_with_wio_labels_is_not_adopted_or_deleted(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    """Labels can be written by anyone who may write Secrets: without wio's ownerReference to
    this very object, a Secret carrying wio's labels is someone else's."""
    secret_name = "forged"
    core = client.CoreV1Api(kube)
    forged = core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=secret_name,
                labels={
                    "app.kubernetes.io/managed-by": "wio",
                    "identity.wio.dev/workloadidentity": "victim",
                },
            ),
            type="Opaque",
            data={"note": base64.b64encode(b"not wio's").decode()},
        ),
    )
    create_identity(
        kube, namespace, "victim", {"serviceAccountName": "victim", "secretName": secret_name}
    )
    wait_condition(kube, namespace, "victim", "Ready", "False", reason="SecretConflict")
    delete_identity(kube, namespace, "victim")
    _wait_gone(kube, namespace, "victim")
    after = core.read_namespaced_secret(secret_name, namespace)
    assert after.metadata.resource_version == forged.metadata.resource_version


def test_a_tenant_configmap_with_the_trust_bundle_name_is_left_alone(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    core = client.CoreV1Api(kube)
    name = operator.config.trust_configmap
    theirs = core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"ca.crt": "theirs"}),
    )
    ready_identity(kube, namespace, "web")
    # The identity works (its Secret carries the bundle); the tenant's ConfigMap is refused.
    _, data = read_secret(kube, namespace, "web-identity")
    assert data["ca.crt"]
    wait_for(
        lambda: namespace in operator.runtime.trust.refused,
        timeout=10,
        what="the trust publisher to refuse the tenant's ConfigMap",
    )
    after = core.read_namespaced_config_map(name, namespace)
    assert after.metadata.resource_version == theirs.metadata.resource_version
    assert after.data == {"ca.crt": "theirs"}


def test_a_patched_status_cannot_hide_a_credential_from_revocation_or_aim_the_delete(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    """Whoever may patch workloadidentities/status clears the serial and points secretName
    at another Secret, then deletes the identity: wio still deletes only its own Secret and
    still lists what that Secret held."""
    first = ready_identity(kube, namespace, "hider")
    before = _foreign_secret(kube, namespace, "precious")
    client.CustomObjectsApi(kube).patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "workloadidentities",
        "hider",
        {"status": {"serialNumber": None, "notAfter": None, "secretName": "precious"}},
    )
    delete_identity(kube, namespace, "hider")
    _wait_gone(kube, namespace, "hider")
    _unchanged(kube, namespace, "precious", before)
    assert gone(client.CoreV1Api(kube).read_namespaced_secret, "hider-identity", namespace)
    listed = {(r["kind"], r["id"]) for r in revocations(kube, OPERATOR_NAMESPACE)}
    assert ("x509", first["serialNumber"]) in listed
