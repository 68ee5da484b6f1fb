# SPDX-License-Identifier: Apache-2.0
"""The real API server refuses bad WorkloadIdentity manifests, and writes nothing for them.

Every refusal comes from crds/workloadidentities.yaml (OpenAPI schema and CEL rules) alone: no
operator runs here. Each case changes one thing in a valid manifest and names the field path and
the plain message the user sees. Requests use strict field validation, as ``kubectl`` does.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.cluster import gone

pytestmark = pytest.mark.usefixtures("crds")

GROUP = "identity.wio.dev"
VERSION = "v1alpha1"
PLURAL = "workloadidentities"
CRD = f"{PLURAL}.{GROUP}"
NAME = "payments"
DELETE = object()  # a change that removes the field

VALID: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "WorkloadIdentity",
    "metadata": {"name": NAME},
    "spec": {
        "serviceAccountName": "payments",
        "x509": {"ttl": "1h", "keyType": "ECDSAP256", "dnsNames": ["payments.example.com"]},
        "jwt": {"audiences": ["orders-api"], "ttl": "30m"},
        "secretName": "payments-identity",
        "signer": "default",
    },
}


def mutated(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with each dotted path set to its value (or removed: DELETE)."""
    body = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = body
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return body


def refusal(call: Any, *args: Any) -> tuple[int, str]:
    """The status and message of the API error ``call(*args)`` must raise."""
    with pytest.raises(ApiException) as caught:
        call(*args, field_validation="Strict")
    return caught.value.status, json.loads(caught.value.body)["message"]


@pytest.fixture
def objects(kube: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube)


def secrets_in(kube: client.ApiClient, namespace: str) -> list[str]:
    return [s.metadata.name for s in client.CoreV1Api(kube).list_namespaced_secret(namespace).items]


def create(objects: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> Any:
    return objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict"
    )


def bad(case_id: str, changes: dict[str, Any], field: str, message: str, status: int = 422) -> Any:
    return pytest.param(changes, field, message, status, id=case_id)


LONG_SA = "a" * 254
SEVENTEEN_NAMES = [f"n{i}.example.com" for i in range(17)]

BAD_ON_CREATE = [
    bad(
        "missing-serviceAccountName",
        {"spec.serviceAccountName": DELETE},
        "spec.serviceAccountName",
        "Required value",
    ),
    bad(
        "uppercase-serviceAccountName",
        {"spec.serviceAccountName": "Payments"},
        "spec.serviceAccountName",
        'serviceAccountName "Payments" is not a valid service account name',
    ),
    bad(
        "underscore-serviceAccountName",
        {"spec.serviceAccountName": "pay_ments"},
        "spec.serviceAccountName",
        "is not a valid service account name",
    ),
    bad(
        "slash-serviceAccountName-would-forge-spiffe-path",
        {"spec.serviceAccountName": "a/sa/b"},
        "spec.serviceAccountName",
        "is not a valid service account name",
    ),
    bad(
        "too-long-serviceAccountName",
        {"spec.serviceAccountName": LONG_SA},
        "spec.serviceAccountName",
        "may not be more than 253 bytes",
    ),
    bad(
        "empty-serviceAccountName",
        {"spec.serviceAccountName": ""},
        "spec.serviceAccountName",
        "should be at least 1 chars long",
    ),
    bad(
        "ttl-in-words",
        {"spec.x509.ttl": "1 hour"},
        "spec.x509.ttl",
        'ttl "1 hour" is not a duration: write whole hours, minutes and seconds',
    ),
    bad(
        "ttl-below-10s",
        {"spec.x509.ttl": "5s"},
        "spec.x509.ttl",
        "ttl 5s is out of bounds: an X.509-SVID lives at least 10s and at most 720h",
    ),
    bad(
        "ttl-above-720h",
        {"spec.x509.ttl": "1000h"},
        "spec.x509.ttl",
        "ttl 1000h is out of bounds",
    ),
    bad(
        "ttl-just-above-720h",
        {"spec.x509.ttl": "720h1s"},
        "spec.x509.ttl",
        "ttl 720h1s is out of bounds",
    ),
    bad("ttl-negative", {"spec.x509.ttl": "-1h"}, "spec.x509.ttl", "is not a duration"),
    bad("ttl-empty", {"spec.x509.ttl": ""}, "spec.x509.ttl", 'ttl "" is not a duration'),
    bad("ttl-zero", {"spec.x509.ttl": "0s"}, "spec.x509.ttl", "ttl 0s is out of bounds"),
    bad("ttl-fraction", {"spec.x509.ttl": "1.5h"}, "spec.x509.ttl", "is not a duration"),
    bad(
        "ttl-smallest-unit-first",
        {"spec.x509.ttl": "30m1h"},
        "spec.x509.ttl",
        "largest unit first",
    ),
    bad(
        "ttl-too-long-string",
        {"spec.x509.ttl": "1" * 33 + "s"},
        "spec.x509.ttl",
        "may not be more than 32 bytes",
    ),
    bad(
        "unknown-keyType",
        {"spec.x509.keyType": "RSA1024"},
        "spec.x509.keyType",
        'Unsupported value: "RSA1024"',
    ),
    bad(
        "dnsName-invalid-characters",
        {"spec.x509.dnsNames": ["pay_ments.example.com"]},
        "spec.x509.dnsNames[0]",
        'dnsName "pay_ments.example.com" is not a lower-case DNS name',
    ),
    bad(
        "dnsName-ip-address",
        {"spec.x509.dnsNames": ["10.0.0.1"]},
        "spec.x509.dnsNames[0]",
        "an IP address is not a DNS name",
    ),
    bad(
        "dnsName-uppercase",
        {"spec.x509.dnsNames": ["Payments.example.com"]},
        "spec.x509.dnsNames[0]",
        "is not a lower-case DNS name",
    ),
    bad(
        "dnsName-empty-label",
        {"spec.x509.dnsNames": ["payments..example.com"]},
        "spec.x509.dnsNames[0]",
        "is not a lower-case DNS name",
    ),
    bad(
        "dnsName-wildcard-in-the-middle",
        {"spec.x509.dnsNames": ["payments.*.example.com"]},
        "spec.x509.dnsNames[0]",
        "'*' is allowed only as the whole first label",
    ),
    bad(
        "dnsName-partial-wildcard-label",
        {"spec.x509.dnsNames": ["pay*.example.com"]},
        "spec.x509.dnsNames[0]",
        "has a misplaced wildcard",
    ),
    bad(
        "dnsName-bare-wildcard",
        {"spec.x509.dnsNames": ["*"]},
        "spec.x509.dnsNames[0]",
        "has a misplaced wildcard",
    ),
    bad(
        "dnsName-label-longer-than-63",
        {"spec.x509.dnsNames": ["a" * 64 + ".example.com"]},
        "spec.x509.dnsNames[0]",
        "is not a lower-case DNS name",
    ),
    bad(
        "dnsNames-too-many",
        {"spec.x509.dnsNames": SEVENTEEN_NAMES},
        "spec.x509.dnsNames",
        "must have at most 16 items",
    ),
    bad(
        "dnsNames-duplicate",
        {"spec.x509.dnsNames": ["a.example.com", "a.example.com"]},
        "spec.x509.dnsNames[1]",
        'Duplicate value: "a.example.com"',
    ),
    bad(
        "jwt-without-audiences",
        {"spec.jwt": {"ttl": "30m"}},
        "spec.jwt.audiences",
        "Required value",
    ),
    bad(
        "jwt-empty-audiences",
        {"spec.jwt.audiences": []},
        "spec.jwt.audiences",
        "should have at least 1 items",
    ),
    bad(
        "jwt-too-many-audiences",
        {"spec.jwt.audiences": [f"api-{i}" for i in range(9)]},
        "spec.jwt.audiences",
        "must have at most 8 items",
    ),
    bad(
        "jwt-audience-with-space",
        {"spec.jwt.audiences": ["orders api"]},
        "spec.jwt.audiences[0]",
        'audience "orders api" must not contain whitespace or control characters',
    ),
    bad(
        "jwt-audience-with-zero-width-space",
        {"spec.jwt.audiences": ["orders\u200bapi"]},
        "spec.jwt.audiences[0]",
        "must not contain whitespace or control characters",
    ),
    bad(
        "jwt-audience-too-long",
        {"spec.jwt.audiences": ["a" * 257]},
        "spec.jwt.audiences[0]",
        "may not be more than 256 bytes",
    ),
    bad(
        "jwt-ttl-above-24h",
        {"spec.jwt.ttl": "25h"},
        "spec.jwt.ttl",
        "ttl 25h is out of bounds: a JWT-SVID lives at least 10s and at most 24h",
    ),
    bad(
        "jwt-ttl-below-10s",
        {"spec.jwt.ttl": "9s"},
        "spec.jwt.ttl",
        "ttl 9s is out of bounds",
    ),
    bad(
        "secretName-invalid",
        {"spec.secretName": "Payments_Identity"},
        "spec.secretName",
        'secretName "Payments_Identity" is not a valid Secret name',
    ),
    bad(
        "secretName-too-long",
        {"spec.secretName": "s" * 254},
        "spec.secretName",
        "may not be more than 253 bytes",
    ),
    bad(
        "signer-bad-characters",
        {"spec.signer": "vault.pki"},
        "spec.signer",
        'signer "vault.pki" is not a valid signer name',
    ),
    bad(
        "signer-url",
        {"spec.signer": "https://evil.example.com"},
        "spec.signer",
        "is not a valid signer name",
    ),
    bad(
        "signer-too-long",
        {"spec.signer": "s" * 64},
        "spec.signer",
        "may not be more than 63 bytes",
    ),
    bad(
        "unknown-field-in-spec",
        {"spec.trustDomain": "evil.example.org"},
        "",
        'unknown field "spec.trustDomain"',
        status=400,
    ),
    bad(
        "unknown-field-in-x509",
        {"spec.x509.isCA": True},
        "",
        'unknown field "spec.x509.isCA"',
        status=400,
    ),
    bad(
        "missing-spec",
        {"spec": DELETE},
        "spec",
        "Required value",
    ),
    bad(
        "name-too-long-for-default-secret",
        {"metadata.name": "w" * 245, "spec.secretName": DELETE},
        "",
        "metadata.name must be at most 244 characters when spec.secretName is not set",
    ),
]


@pytest.mark.parametrize(("changes", "field", "message", "status"), BAD_ON_CREATE)
def test_bad_workloadidentity_is_refused_and_nothing_is_written(
    kube: client.ApiClient,
    objects: client.CustomObjectsApi,
    namespace: str,
    changes: dict[str, Any],
    field: str,
    message: str,
    status: int,
) -> None:
    body = mutated(VALID, changes)
    got_status, got_message = refusal(
        objects.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, body
    )
    assert got_status == status, got_message
    assert message in got_message
    if field:
        assert f"{field}: " in got_message
    assert gone(
        objects.get_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        body["metadata"]["name"],
    )
    assert secrets_in(kube, namespace) == []


BAD_ON_UPDATE = [
    pytest.param(
        {"spec.serviceAccountName": "orders"},
        "spec.serviceAccountName",
        "serviceAccountName is immutable; delete and recreate the WorkloadIdentity",
        id="serviceAccountName-changed",
    ),
    pytest.param(
        {"spec.secretName": "other-secret"},
        "spec.secretName",
        "secretName is immutable",
        id="secretName-changed",
    ),
    pytest.param(
        {"spec.secretName": DELETE},
        "spec.secretName",
        "secretName is immutable",
        id="secretName-removed",
    ),
    pytest.param(
        {"spec.x509.ttl": "2 hours"},
        "spec.x509.ttl",
        "is not a duration",
        id="ttl-made-invalid",
    ),
]


@pytest.mark.parametrize(("changes", "field", "message"), BAD_ON_UPDATE)
def test_bad_workloadidentity_update_is_refused_and_object_unchanged(
    kube: client.ApiClient,
    objects: client.CustomObjectsApi,
    namespace: str,
    changes: dict[str, Any],
    field: str,
    message: str,
) -> None:
    create(objects, namespace, VALID)
    current = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)
    status, got = refusal(
        objects.replace_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        NAME,
        mutated(current, changes),
    )
    assert status == 422, got
    assert f"{field}: " in got
    assert message in got
    after = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)
    assert after["spec"] == current["spec"]
    assert after["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]
    assert secrets_in(kube, namespace) == []


def test_secretName_cannot_be_added_after_creation(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    create(objects, namespace, mutated(VALID, {"spec.secretName": DELETE}))
    current = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)
    status, got = refusal(
        objects.replace_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        NAME,
        mutated(current, {"spec.secretName": "late-secret"}),
    )
    assert status == 422
    assert "spec.secretName: " in got
    assert "secretName is immutable" in got


def test_minimal_workloadidentity_is_accepted_with_safe_defaults(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkloadIdentity",
        "metadata": {"name": NAME},
        "spec": {"serviceAccountName": "payments"},
    }
    created = create(objects, namespace, body)
    assert created["spec"] == {
        "serviceAccountName": "payments",
        "x509": {"ttl": "1h", "keyType": "ECDSAP256"},
        "signer": "default",
    }
    assert "jwt" not in created["spec"]


def test_jwt_ttl_defaults_to_30m(objects: client.CustomObjectsApi, namespace: str) -> None:
    created = create(objects, namespace, mutated(VALID, {"spec.jwt": {"audiences": ["a"]}}))
    assert created["spec"]["jwt"] == {"audiences": ["a"], "ttl": "30m"}


def test_workloadidentity_at_every_limit_is_accepted(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    body = mutated(
        VALID,
        {
            "metadata.name": "w" * 244,
            "spec.secretName": DELETE,
            "spec.serviceAccountName": "a" * 253,
            "spec.x509": {
                "ttl": "720h",
                "keyType": "Ed25519",
                "dnsNames": ["*.payments.svc.cluster.local"]
                + [f"n{i}.{'a' * 63}.example.com" for i in range(15)],
            },
            "spec.jwt": {"audiences": [f"aud-{i}" for i in range(7)] + ["a" * 256], "ttl": "24h"},
            "spec.signer": "s" * 63,
        },
    )
    created = create(objects, namespace, body)
    assert created["spec"]["x509"]["ttl"] == "720h"
    assert len(created["spec"]["x509"]["dnsNames"]) == 16

    shortest = mutated(VALID, {"metadata.name": "short", "spec.x509.ttl": "10s"})
    shortest["spec"]["jwt"]["ttl"] = "1h30m10s"
    create(objects, namespace, shortest)


def test_mutable_fields_can_be_updated(objects: client.CustomObjectsApi, namespace: str) -> None:
    create(objects, namespace, VALID)
    current = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)
    changed = mutated(
        current,
        {
            "spec.x509.ttl": "2h",
            "spec.x509.keyType": "ECDSAP384",
            "spec.jwt.audiences": ["orders-api", "audit-api"],
        },
    )
    replaced = objects.replace_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, NAME, changed, field_validation="Strict"
    )
    assert replaced["spec"]["x509"]["ttl"] == "2h"
    assert replaced["metadata"]["generation"] == 2


def test_unknown_fields_are_pruned_without_strict_validation(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    body = mutated(VALID, {"spec.trustDomain": "evil.example.org", "spec.x509.isCA": True})
    created = objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert "trustDomain" not in created["spec"]
    assert "isCA" not in created["spec"]["x509"]


def test_status_is_ignored_on_create_and_validated_on_the_subresource(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    created = create(objects, namespace, mutated(VALID, {"status": {"rotations": 7}}))
    assert "status" not in created
    with_status = mutated(created, {"status": {"rotations": -1}})
    status, got = refusal(
        objects.replace_namespaced_custom_object_status,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        NAME,
        with_status,
    )
    assert status == 422
    assert "status.rotations: " in got


def undescribed(schema: dict[str, Any], path: str) -> list[str]:
    """Paths under ``schema`` whose property, list item or map value has no description."""
    missing: list[str] = []
    for name, prop in schema.get("properties", {}).items():
        here = f"{path}.{name}"
        if not prop.get("description", "").strip():
            missing.append(here)
        missing += undescribed(prop, here)
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        child = schema.get(key)
        if isinstance(child, dict):
            if not child.get("description", "").strip():
                missing.append(path + suffix)
            missing += undescribed(child, path + suffix)
    return missing


def read_crd(kube: client.ApiClient, name: str) -> dict[str, Any]:
    response = client.ApiextensionsV1Api(kube).read_custom_resource_definition(
        name, _preload_content=False
    )
    return json.loads(response.data)


def test_every_field_is_described_for_kubectl_explain(kube: client.ApiClient) -> None:
    crd = read_crd(kube, CRD)
    (version,) = crd["spec"]["versions"]
    root = version["schema"]["openAPIV3Schema"]
    assert root["description"].strip()
    for part in ("spec", "status"):
        assert root["properties"][part]["description"].strip()
        assert undescribed(root["properties"][part], part) == []
    assert "serviceAccountName" in root["properties"]["spec"]["properties"]
    ttl = root["properties"]["spec"]["properties"]["x509"]["properties"]["ttl"]["description"]
    assert "Default 1h" in ttl
    assert "720h" in ttl


def test_crd_names_scope_and_columns(kube: client.ApiClient) -> None:
    crd = read_crd(kube, CRD)
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["wid"]
    assert crd["spec"]["names"]["categories"] == ["wio"]
    (version,) = crd["spec"]["versions"]
    assert version["name"] == VERSION
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["SPIFFE ID", "Ready", "Secret", "Not After", "Renew At", "Age"]
