# SPDX-License-Identifier: Apache-2.0
"""The real API server refuses bad IdentityPolicy manifests, and writes nothing for them.

IdentityPolicy is cluster-scoped, so each test names its policy after its own (unique) namespace
and deletes what it created. Every refusal comes from crds/identitypolicies.yaml alone; the
grant patterns refused here (bare ``*``, grant-all prefixes, misplaced wildcards) are the ones
least privilege depends on. Requests use strict field validation, as ``kubectl`` does.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.cluster import gone

pytestmark = pytest.mark.usefixtures("crds")

GROUP = "identity.wio.dev"
VERSION = "v1alpha1"
PLURAL = "identitypolicies"
CRD = f"{PLURAL}.{GROUP}"
DELETE = object()  # a change that removes the field

VALID_SPEC: dict[str, Any] = {
    "namespaceSelector": {
        "matchLabels": {"team": "payments"},
        "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "staging"]}],
    },
    "serviceAccounts": ["payments", "payments-*"],
    "x509": {
        "minTTL": "10m",
        "maxTTL": "24h",
        "keyTypes": ["ECDSAP256", "Ed25519"],
        "dnsNames": ["*.payments.svc.cluster.local", "payments.example.com"],
    },
    "jwt": {"minTTL": "1m", "maxTTL": "1h", "audiences": ["orders-api"]},
    "tokens": {
        "minTTL": "1m",
        "maxTTL": "1h",
        "audiences": ["orders-api"],
        "scopes": ["orders:read", "audit:*", "inventory/items:*"],
        "claims": ["tenant", "region"],
    },
    "vault": {"paths": ["database/creds/orders-ro", "database/creds/payments-*"]},
    "signers": ["default", "vault-pki"],
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


def secrets_in(kube: client.ApiClient, namespace: str) -> list[str]:
    return [s.metadata.name for s in client.CoreV1Api(kube).list_namespaced_secret(namespace).items]


@pytest.fixture
def objects(kube: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube)


@pytest.fixture
def policy(objects: client.CustomObjectsApi, namespace: str) -> Iterator[dict[str, Any]]:
    """A valid policy manifest named after this test's namespace; deleted afterwards if created."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "IdentityPolicy",
        "metadata": {"name": f"policy-{namespace}"},
        "spec": copy.deepcopy(VALID_SPEC),
    }
    yield body
    try:
        objects.delete_cluster_custom_object(GROUP, VERSION, PLURAL, body["metadata"]["name"])
    except ApiException as err:
        if err.status != 404:
            raise


def create(objects: client.CustomObjectsApi, body: dict[str, Any]) -> Any:
    return objects.create_cluster_custom_object(
        GROUP, VERSION, PLURAL, body, field_validation="Strict"
    )


def bad(case_id: str, changes: dict[str, Any], field: str, message: str, status: int = 422) -> Any:
    return pytest.param(changes, field, message, status, id=case_id)


GRANT_ALL = "grant-all scope patterns are not allowed"
MISPLACED = "'*' is allowed only as a trailing ':*'"

BAD_ON_CREATE = [
    bad(
        "missing-namespaceSelector",
        {"spec.namespaceSelector": DELETE},
        "spec.namespaceSelector",
        "Required value",
    ),
    bad(
        "matchExpressions-unknown-operator",
        {"spec.namespaceSelector.matchExpressions": [{"key": "env", "operator": "Matches"}]},
        "spec.namespaceSelector.matchExpressions[0].operator",
        'Unsupported value: "Matches"',
    ),
    bad(
        "matchExpressions-In-without-values",
        {"spec.namespaceSelector.matchExpressions": [{"key": "env", "operator": "In"}]},
        "spec.namespaceSelector.matchExpressions[0].values",
        "operator In needs at least one value",
    ),
    bad(
        "matchExpressions-Exists-with-values",
        {
            "spec.namespaceSelector.matchExpressions": [
                {"key": "env", "operator": "Exists", "values": ["prod"]}
            ]
        },
        "spec.namespaceSelector.matchExpressions[0].values",
        "operator Exists takes no values",
    ),
    bad(
        "matchExpressions-without-key",
        {"spec.namespaceSelector.matchExpressions": [{"operator": "Exists"}]},
        "spec.namespaceSelector.matchExpressions[0].key",
        "Required value",
    ),
    bad(
        "matchLabels-bad-key",
        {"spec.namespaceSelector.matchLabels": {"team/name/x": "payments"}},
        "spec.namespaceSelector.matchLabels",
        'label key "team/name/x" is not valid',
    ),
    bad(
        "matchLabels-bad-value",
        {"spec.namespaceSelector.matchLabels": {"team": "pay ments"}},
        "spec.namespaceSelector.matchLabels[team]",
        'label value "pay ments" is not valid',
    ),
    bad(
        "matchExpressions-bad-key",
        {"spec.namespaceSelector.matchExpressions": [{"key": "-env", "operator": "Exists"}]},
        "spec.namespaceSelector.matchExpressions[0].key",
        'label key "-env" is not valid',
    ),
    bad(
        "matchExpressions-bad-value",
        {
            "spec.namespaceSelector.matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod!"]}
            ]
        },
        "spec.namespaceSelector.matchExpressions[0].values[0]",
        'label value "prod!" is not valid',
    ),
    bad(
        "serviceAccounts-uppercase-pattern",
        {"spec.serviceAccounts": ["Payments-*"]},
        "spec.serviceAccounts[0]",
        'service account pattern "Payments-*" is not valid',
    ),
    bad(
        "serviceAccounts-too-many",
        {"spec.serviceAccounts": [f"sa-{i}" for i in range(65)]},
        "spec.serviceAccounts",
        "must have at most 64 items",
    ),
    bad(
        "x509-minTTL-above-maxTTL",
        {"spec.x509.minTTL": "2h", "spec.x509.maxTTL": "1h"},
        "spec.x509.minTTL",
        "minTTL 2h must not exceed maxTTL 1h",
    ),
    bad(
        "x509-maxTTL-above-720h",
        {"spec.x509.maxTTL": "721h"},
        "spec.x509.maxTTL",
        "maxTTL 721h is out of bounds: must be between 10s and 720h",
    ),
    bad(
        "x509-minTTL-in-words",
        {"spec.x509.minTTL": "ten minutes"},
        "spec.x509.minTTL",
        'minTTL "ten minutes" is not a duration',
    ),
    bad(
        "x509-unknown-keyType",
        {"spec.x509.keyTypes": ["ECDSAP256", "DSA1024"]},
        "spec.x509.keyTypes[1]",
        'Unsupported value: "DSA1024"',
    ),
    bad(
        "x509-dnsNames-ip-address",
        {"spec.x509.dnsNames": ["10.0.0.1"]},
        "spec.x509.dnsNames[0]",
        "an IP address is not a DNS name",
    ),
    bad(
        "x509-dnsNames-wildcard-in-the-middle",
        {"spec.x509.dnsNames": ["payments.*.cluster.local"]},
        "spec.x509.dnsNames[0]",
        "'*' is allowed only as the whole first label",
    ),
    bad(
        "x509-dnsNames-bare-wildcard",
        {"spec.x509.dnsNames": ["*"]},
        "spec.x509.dnsNames[0]",
        "has a misplaced wildcard",
    ),
    bad(
        "jwt-minTTL-above-maxTTL",
        {"spec.jwt.minTTL": "90m", "spec.jwt.maxTTL": "1h"},
        "spec.jwt.minTTL",
        "minTTL 90m must not exceed maxTTL 1h",
    ),
    bad(
        "jwt-maxTTL-above-24h",
        {"spec.jwt.maxTTL": "48h"},
        "spec.jwt.maxTTL",
        "maxTTL 48h is out of bounds: must be between 10s and 24h",
    ),
    bad(
        "jwt-audience-with-whitespace",
        {"spec.jwt.audiences": ["orders\tapi"]},
        "spec.jwt.audiences[0]",
        "must not contain whitespace or control characters",
    ),
    bad(
        "tokens-minTTL-above-maxTTL",
        {"spec.tokens.minTTL": "1h", "spec.tokens.maxTTL": "59m59s"},
        "spec.tokens.minTTL",
        "minTTL 1h must not exceed maxTTL 59m59s",
    ),
    bad(
        "tokens-minTTL-below-10s",
        {"spec.tokens.minTTL": "1s"},
        "spec.tokens.minTTL",
        "minTTL 1s is out of bounds",
    ),
    bad(
        "scope-bare-star",
        {"spec.tokens.scopes": ["*"]},
        "spec.tokens.scopes[0]",
        "a bare '*' would grant every scope and is not allowed",
    ),
    bad(
        "scope-admin-star",
        {"spec.tokens.scopes": ["admin:*"]},
        "spec.tokens.scopes[0]",
        GRANT_ALL,
    ),
    bad("scope-root-star", {"spec.tokens.scopes": ["root:*"]}, "spec.tokens.scopes[0]", GRANT_ALL),
    bad("scope-all-star", {"spec.tokens.scopes": ["ALL:*"]}, "spec.tokens.scopes[0]", GRANT_ALL),
    bad("scope-star-star", {"spec.tokens.scopes": ["*:*"]}, "spec.tokens.scopes[0]", GRANT_ALL),
    bad(
        "scope-star-in-the-middle",
        {"spec.tokens.scopes": ["orders:*:x"]},
        "spec.tokens.scopes[0]",
        MISPLACED,
    ),
    bad(
        "scope-leading-star",
        {"spec.tokens.scopes": ["*:read"]},
        "spec.tokens.scopes[0]",
        MISPLACED,
    ),
    bad(
        "scope-star-without-colon",
        {"spec.tokens.scopes": ["orders*"]},
        "spec.tokens.scopes[0]",
        MISPLACED,
    ),
    bad(
        "scope-empty-prefix",
        {"spec.tokens.scopes": [":*"]},
        "spec.tokens.scopes[0]",
        "scope pattern ':*' has an empty prefix",
    ),
    bad(
        "scope-bad-characters",
        {"spec.tokens.scopes": ["orders read"]},
        "spec.tokens.scopes[0]",
        'scope pattern "orders read" is not valid',
    ),
    bad(
        "scopes-too-many",
        {"spec.tokens.scopes": [f"s{i}:read" for i in range(65)]},
        "spec.tokens.scopes",
        "must have at most 64 items",
    ),
    bad(
        "tokens-claims-registered-name",
        {"spec.tokens.claims": ["tenant", "Sub"]},
        "spec.tokens.claims[1]",
        'claim "Sub" is a registered claim name',
    ),
    bad(
        "tokens-claims-too-many",
        {"spec.tokens.claims": [f"c{i}" for i in range(33)]},
        "spec.tokens.claims",
        "must have at most 32 items",
    ),
    bad(
        "vault-path-dot-dot",
        {"spec.vault.paths": ["database/creds/../../sys/*"]},
        "spec.vault.paths[0]",
        "must not contain a '.' or '..' segment",
    ),
    bad(
        "vault-path-bare-star",
        {"spec.vault.paths": ["*"]},
        "spec.vault.paths[0]",
        "a bare '*' would allow every Vault path",
    ),
    bad(
        "vault-path-star-in-the-middle",
        {"spec.vault.paths": ["database/*/orders"]},
        "spec.vault.paths[0]",
        "'*' is allowed only at the end",
    ),
    bad(
        "vault-path-leading-slash",
        {"spec.vault.paths": ["/sys/raw"]},
        "spec.vault.paths[0]",
        "(no leading '/')",
    ),
    bad(
        "signers-bad-name",
        {"spec.signers": ["default", "Vault_PKI"]},
        "spec.signers[1]",
        'signer "Vault_PKI" is not a valid signer name',
    ),
    bad(
        "signers-too-many",
        {"spec.signers": [f"signer-{i}" for i in range(17)]},
        "spec.signers",
        "must have at most 16 items",
    ),
    bad(
        "unknown-field-in-spec",
        {"spec.allowEverything": True},
        "",
        'unknown field "spec.allowEverything"',
        status=400,
    ),
]


@pytest.mark.parametrize(("changes", "field", "message", "status"), BAD_ON_CREATE)
def test_bad_identitypolicy_is_refused_and_nothing_is_written(
    kube: client.ApiClient,
    objects: client.CustomObjectsApi,
    namespace: str,
    policy: dict[str, Any],
    changes: dict[str, Any],
    field: str,
    message: str,
    status: int,
) -> None:
    body = mutated(policy, changes)
    got_status, got_message = refusal(
        objects.create_cluster_custom_object, GROUP, VERSION, PLURAL, body
    )
    assert got_status == status, got_message
    assert message in got_message
    if field:
        assert f"{field}: " in got_message
    assert gone(objects.get_cluster_custom_object, GROUP, VERSION, PLURAL, body["metadata"]["name"])
    assert secrets_in(kube, namespace) == []


def test_policy_minTTL_above_maxTTL_is_refused_on_update(
    objects: client.CustomObjectsApi, policy: dict[str, Any]
) -> None:
    name = policy["metadata"]["name"]
    create(objects, policy)
    current = objects.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    status, got = refusal(
        objects.replace_cluster_custom_object,
        GROUP,
        VERSION,
        PLURAL,
        name,
        mutated(current, {"spec.tokens.maxTTL": "30s"}),
    )
    assert status == 422
    assert "spec.tokens.minTTL: " in got
    assert "minTTL 1m must not exceed maxTTL 30s" in got
    after = objects.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    assert after["spec"]["tokens"]["maxTTL"] == "1h"


def test_valid_identitypolicy_is_accepted_as_written(
    objects: client.CustomObjectsApi, policy: dict[str, Any]
) -> None:
    created = create(objects, policy)
    assert created["spec"] == VALID_SPEC


def test_minimal_identitypolicy_selects_all_and_defaults_to_every_service_account(
    objects: client.CustomObjectsApi, policy: dict[str, Any]
) -> None:
    policy["spec"] = {"namespaceSelector": {}}
    created = create(objects, policy)
    assert created["spec"] == {"namespaceSelector": {}, "serviceAccounts": ["*"]}


def test_equal_min_and_max_ttl_are_accepted(
    objects: client.CustomObjectsApi, policy: dict[str, Any]
) -> None:
    policy["spec"]["x509"].update(minTTL="1h", maxTTL="60m")
    policy["spec"]["tokens"].update(minTTL="10s", maxTTL="24h")
    created = create(objects, policy)
    assert created["spec"]["x509"]["maxTTL"] == "60m"


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


def test_every_field_is_described_for_kubectl_explain(kube: client.ApiClient) -> None:
    response = client.ApiextensionsV1Api(kube).read_custom_resource_definition(
        CRD, _preload_content=False
    )
    crd = json.loads(response.data)
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["idp"]
    assert crd["spec"]["names"]["categories"] == ["wio"]
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    assert "Age" in [c["name"] for c in version["additionalPrinterColumns"]]
    root = version["schema"]["openAPIV3Schema"]
    assert root["description"].strip()
    for part in ("spec", "status"):
        assert root["properties"][part]["description"].strip()
        assert undescribed(root["properties"][part], part) == []
    scopes = root["properties"]["spec"]["properties"]["tokens"]["properties"]["scopes"]
    assert "prefix" in scopes["description"]
