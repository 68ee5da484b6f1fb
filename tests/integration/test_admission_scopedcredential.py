# SPDX-License-Identifier: Apache-2.0
"""The real API server refuses bad ScopedCredential manifests, and writes nothing for them.

Every refusal comes from crds/scopedcredentials.yaml (OpenAPI schema and CEL rules) alone: no
operator runs here. A ScopedCredential asks for concrete scopes only (wildcards belong in
IdentityPolicy grants) and may not set any registered claim. Requests use strict field
validation, as ``kubectl`` does.
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
PLURAL = "scopedcredentials"
CRD = f"{PLURAL}.{GROUP}"
NAME = "payments-orders-read"
DELETE = object()  # a change that removes the field

TOKEN: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "ScopedCredential",
    "metadata": {"name": NAME},
    "spec": {
        "identityRef": "payments",
        "token": {
            "audience": "orders-api",
            "scopes": ["orders:read", "audit:write"],
            "ttl": "15m",
            "claims": {"tenant": "acme"},
        },
        "secretName": "payments-orders-read",
    },
}
VAULT: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "ScopedCredential",
    "metadata": {"name": NAME},
    "spec": {"identityRef": "payments", "vault": {"path": "database/creds/orders-ro"}},
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


def create(objects: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> Any:
    return objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict"
    )


def bad(
    case_id: str,
    changes: dict[str, Any],
    field: str,
    message: str,
    base: dict[str, Any] = TOKEN,
    status: int = 422,
) -> Any:
    return pytest.param(base, changes, field, message, status, id=case_id)


def registered(claim: str) -> Any:
    return bad(
        f"registered-claim-{claim}",
        {"spec.token.claims": {"tenant": "acme", claim: "forged"}},
        "spec.token.claims",
        f'claim "{claim}" is a registered claim name',
    )


WILDCARD = "contains a wildcard: a ScopedCredential asks for concrete scopes only"
BAD_PATH = "spec.vault.path"

BAD_ON_CREATE = [
    bad(
        "both-sources",
        {"spec.vault": {"path": "database/creds/orders-ro"}},
        "spec",
        "exactly one of spec.token or spec.vault must be set",
    ),
    bad(
        "neither-source",
        {"spec.token": DELETE},
        "spec",
        "exactly one of spec.token or spec.vault must be set",
    ),
    bad("missing-identityRef", {"spec.identityRef": DELETE}, "spec.identityRef", "Required value"),
    bad(
        "identityRef-invalid",
        {"spec.identityRef": "Payments"},
        "spec.identityRef",
        'identityRef "Payments" is not a valid WorkloadIdentity name',
    ),
    bad(
        "identityRef-cross-namespace",
        {"spec.identityRef": "other-ns/payments"},
        "spec.identityRef",
        "is not a valid WorkloadIdentity name",
    ),
    bad("missing-audience", {"spec.token.audience": DELETE}, "spec.token.audience", "Required"),
    bad(
        "audience-with-spaces",
        {"spec.token.audience": "orders api"},
        "spec.token.audience",
        'audience "orders api" must not contain whitespace',
    ),
    bad(
        "audience-with-a-newline",
        {"spec.token.audience": "orders\napi"},
        "spec.token.audience",
        # The message, not the raw rule: a line break in an echoed value is replaced.
        'audience "orders api" must not contain whitespace',
    ),
    bad(
        "audience-too-long",
        {"spec.token.audience": "a" * 257},
        "spec.token.audience",
        "may not be more than 256 bytes",
    ),
    bad("missing-scopes", {"spec.token.scopes": DELETE}, "spec.token.scopes", "Required value"),
    bad(
        "empty-scopes",
        {"spec.token.scopes": []},
        "spec.token.scopes",
        "should have at least 1 items",
    ),
    bad(
        "33-scopes",
        {"spec.token.scopes": [f"orders:s{i}" for i in range(33)]},
        "spec.token.scopes",
        "must have at most 32 items",
    ),
    bad("scope-bare-star", {"spec.token.scopes": ["*"]}, "spec.token.scopes[0]", WILDCARD),
    bad(
        "scope-prefix-star",
        {"spec.token.scopes": ["orders:read", "orders:*"]},
        "spec.token.scopes[1]",
        WILDCARD,
    ),
    bad("scope-leading-star", {"spec.token.scopes": ["*:read"]}, "spec.token.scopes[0]", WILDCARD),
    bad(
        "scope-with-space",
        {"spec.token.scopes": ["orders read"]},
        "spec.token.scopes[0]",
        'scope "orders read" is not a valid scope',
    ),
    bad(
        "scope-too-long",
        {"spec.token.scopes": ["s" * 129]},
        "spec.token.scopes[0]",
        "may not be more than 128 bytes",
    ),
    bad(
        "scope-duplicate",
        {"spec.token.scopes": ["orders:read", "orders:read"]},
        "spec.token.scopes[1]",
        'Duplicate value: "orders:read"',
    ),
    registered("iss"),
    registered("sub"),
    registered("exp"),
    registered("scope"),
    registered("client_id"),
    registered("aud"),
    registered("roles"),
    bad(
        "registered-claim-in-upper-case",
        {"spec.token.claims": {"Iss": "https://evil.example.com"}},
        "spec.token.claims",
        'claim "Iss" is a registered claim name',
    ),
    bad(
        "claim-key-bad-characters",
        {"spec.token.claims": {"tenant id": "acme"}},
        "spec.token.claims",
        'claim name "tenant id" is not allowed',
    ),
    bad(
        "claim-key-too-long",
        {"spec.token.claims": {"c" * 65: "acme"}},
        "spec.token.claims",
        "is not allowed: use 1 to 64 letters",
    ),
    bad(
        "17-claims",
        {"spec.token.claims": {f"c{i}": "v" for i in range(17)}},
        "spec.token.claims",
        "must have at most 16 items",
    ),
    bad(
        "claim-value-over-256",
        {"spec.token.claims": {"tenant": "v" * 257}},
        "spec.token.claims.tenant",
        "may not be more than 256 bytes",
    ),
    bad(
        "claim-value-not-a-string",
        {"spec.token.claims": {"tenant": 42}},
        "spec.token.claims.tenant",
        "must be of type string",
    ),
    bad(
        "ttl-bad-format",
        {"spec.token.ttl": "15 minutes"},
        "spec.token.ttl",
        'ttl "15 minutes" is not a duration',
    ),
    bad(
        "ttl-too-long",
        {"spec.token.ttl": "24h1s"},
        "spec.token.ttl",
        "ttl 24h1s is out of bounds: an access token lives at least 10s and at most 24h",
    ),
    bad("ttl-too-short", {"spec.token.ttl": "9s"}, "spec.token.ttl", "ttl 9s is out of bounds"),
    bad(
        "vault-missing-path",
        {"spec.vault": {}},
        BAD_PATH,
        "Required value",
        base=VAULT,
    ),
    bad(
        "vault-path-dot-dot",
        {"spec.vault.path": "database/creds/../../sys/raw"},
        BAD_PATH,
        "must not contain a '.' or '..' segment",
        base=VAULT,
    ),
    bad(
        "vault-path-leading-slash",
        {"spec.vault.path": "/sys/raw/core"},
        BAD_PATH,
        'vault path "/sys/raw/core" must be relative',
        base=VAULT,
    ),
    bad(
        "vault-path-double-slash",
        {"spec.vault.path": "database//creds/orders-ro"},
        BAD_PATH,
        "must not contain an empty segment ('//')",
        base=VAULT,
    ),
    bad(
        "vault-path-trailing-slash",
        {"spec.vault.path": "database/creds/"},
        BAD_PATH,
        "must not end with '/'",
        base=VAULT,
    ),
    bad(
        "vault-path-wildcard",
        {"spec.vault.path": "database/creds/*"},
        BAD_PATH,
        "is not a valid path",
        base=VAULT,
    ),
    bad(
        "vault-path-url",
        {"spec.vault.path": "https://evil.example.com/v1/secret"},
        BAD_PATH,
        "must not contain an empty segment",
        base=VAULT,
    ),
    bad(
        "vault-path-bad-characters",
        {"spec.vault.path": "secret/data/orders?version=1"},
        BAD_PATH,
        "is not a valid path",
        base=VAULT,
    ),
    bad(
        "vault-path-too-long",
        {"spec.vault.path": "a/" * 128 + "b"},
        BAD_PATH,
        "may not be more than 256 bytes",
        base=VAULT,
    ),
    bad(
        "secretName-invalid",
        {"spec.secretName": "Payments.Orders"},
        "spec.secretName",
        'secretName "Payments.Orders" is not a valid Secret name',
    ),
    bad(
        "name-too-long-for-default-secret",
        {"metadata.name": "c" * 243, "spec.secretName": DELETE},
        "",
        "metadata.name must be at most 242 characters when spec.secretName is not set",
    ),
    bad(
        "unknown-field-in-token",
        {"spec.token.issuer": "https://evil.example.com"},
        "",
        'unknown field "spec.token.issuer"',
        status=400,
    ),
    bad(
        "unknown-field-in-vault",
        {"spec.vault.address": "https://evil.example.com"},
        "",
        'unknown field "spec.vault.address"',
        base=VAULT,
        status=400,
    ),
]


@pytest.mark.parametrize(("base", "changes", "field", "message", "status"), BAD_ON_CREATE)
def test_bad_scopedcredential_is_refused_and_nothing_is_written(
    kube: client.ApiClient,
    objects: client.CustomObjectsApi,
    namespace: str,
    base: dict[str, Any],
    changes: dict[str, Any],
    field: str,
    message: str,
    status: int,
) -> None:
    body = mutated(base, changes)
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
        TOKEN,
        {"spec.identityRef": "orders"},
        "spec.identityRef",
        "identityRef is immutable; delete and recreate the ScopedCredential",
        id="identityRef-changed",
    ),
    pytest.param(
        TOKEN,
        {"spec.secretName": "elsewhere"},
        "spec.secretName",
        "secretName is immutable",
        id="secretName-changed",
    ),
    pytest.param(
        VAULT,
        {"spec.secretName": "added-later"},
        "spec.secretName",
        "secretName is immutable",
        id="secretName-added",
    ),
    pytest.param(
        VAULT,
        {"spec.vault": DELETE, "spec.token": {"audience": "a", "scopes": ["orders:read"]}},
        "spec",
        "the credential source (token or vault) is immutable",
        id="source-switched-vault-to-token",
    ),
    pytest.param(
        TOKEN,
        {"spec.token.scopes": ["orders:*"]},
        "spec.token.scopes[0]",
        WILDCARD,
        id="scope-widened-to-wildcard",
    ),
]


@pytest.mark.parametrize(("base", "changes", "field", "message"), BAD_ON_UPDATE)
def test_bad_scopedcredential_update_is_refused_and_object_unchanged(
    kube: client.ApiClient,
    objects: client.CustomObjectsApi,
    namespace: str,
    base: dict[str, Any],
    changes: dict[str, Any],
    field: str,
    message: str,
) -> None:
    create(objects, namespace, base)
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


def test_minimal_token_credential_is_accepted_with_15m_ttl(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    body = mutated(TOKEN, {"spec.token": {"audience": "orders-api", "scopes": ["orders:read"]}})
    del body["spec"]["secretName"]
    created = create(objects, namespace, body)
    assert created["spec"] == {
        "identityRef": "payments",
        "token": {"audience": "orders-api", "scopes": ["orders:read"], "ttl": "15m"},
    }


def test_full_token_credential_at_its_limits_is_accepted(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    claims = {f"c{i}": "v" * 256 for i in range(15)} | {"x" * 64: "ok"}
    body = mutated(
        TOKEN,
        {
            "spec.token.scopes": [f"orders/items.v1:s_{i}-x" for i in range(32)],
            "spec.token.ttl": "24h",
            "spec.token.claims": claims,
            "spec.token.audience": "https://orders.example.com/api",
        },
    )
    created = create(objects, namespace, body)
    assert created["spec"]["token"]["claims"] == claims
    assert len(created["spec"]["token"]["scopes"]) == 32


def test_vault_credential_is_accepted(objects: client.CustomObjectsApi, namespace: str) -> None:
    created = create(objects, namespace, VAULT)
    assert created["spec"] == VAULT["spec"]


def test_token_fields_other_than_identity_can_be_updated(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    create(objects, namespace, TOKEN)
    current = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)
    changed = mutated(current, {"spec.token.scopes": ["orders:read"], "spec.token.ttl": "5m"})
    replaced = objects.replace_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, NAME, changed, field_validation="Strict"
    )
    assert replaced["spec"]["token"]["scopes"] == ["orders:read"]
    assert replaced["metadata"]["generation"] == 2


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
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["scred"]
    assert crd["spec"]["names"]["categories"] == ["wio"]
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Identity", "Ready", "Secret", "Expires", "Age"]
    root = version["schema"]["openAPIV3Schema"]
    assert root["description"].strip()
    for part in ("spec", "status"):
        assert root["properties"][part]["description"].strip()
        assert undescribed(root["properties"][part], part) == []
    status_fields = set(root["properties"]["status"]["properties"])
    assert "token" not in status_fields
    assert {"jti", "leaseID", "expiresAt", "renewalTime"} <= status_fields
