# SPDX-License-Identifier: Apache-2.0
"""ScopedCredential end to end against the real control plane and the real OpenBao dev server.

Access tokens are checked with PyJWT against the published JWKS, never with wio's verifier.
Dynamic secrets come from OpenBao's database engine backed by a real PostgreSQL: a lease is a
PostgreSQL login, so "the credential works" means logging in with it, and "the lease was
revoked" means the login is gone and OpenBao no longer knows the lease.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import jwt as pyjwt
import pytest
from kubernetes import client

from tests.integration.conftest import OPERATOR_NAMESPACE, TRUST_DOMAIN
from tests.support.cluster import gone
from tests.support.identities import (
    condition,
    delete_identity,
    delete_policy,
    events_for,
    get_identity,
    patch_identity,
    read_secret,
    revocations,
    trust_configmap,
)
from tests.support.operator import InProcessOperator
from tests.support.postgres import OpenBaoDatabase
from tests.support.scoped import (
    create_credential,
    credential_gone,
    delete_credential,
    get_credential,
    grant,
    patch_credential,
    ready_identity,
    secret_names,
    wait_credential,
)
from tests.support.waiting import wait_for

TOKEN_GRANT = {
    "minTTL": "10s",
    "maxTTL": "1h",
    "audiences": ["orders-api"],
    "scopes": ["orders:read", "audit:*"],
    "claims": ["tenant"],
}
VAULT_GRANT = {"paths": ["database/creds/orders-ro", "database/creds/short"]}


@pytest.fixture
def policy(kube: client.ApiClient, namespace: str) -> Iterator[str]:
    """An IdentityPolicy for this test's namespace granting tokens and two Vault paths."""
    name = f"scoped-{namespace}"
    grant(kube, namespace, name, tokens=TOKEN_GRANT, vault=VAULT_GRANT)
    yield name
    delete_policy(kube, name)


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _decode(kube: client.ApiClient, namespace: str, token: str, audience: str) -> dict[str, Any]:
    """PyJWT, with the key from the namespace's published JWKS and an explicit algorithm."""
    jwks = json.loads(trust_configmap(kube, namespace)["jwks.json"])
    kid = pyjwt.get_unverified_header(token)["kid"]
    key = pyjwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid))
    return dict(pyjwt.decode(token, key=key, algorithms=["ES256"], audience=audience))


def test_token_carries_the_identity_scopes_audience_and_allowed_claims(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, policy: str
) -> None:
    identity = ready_identity(kube, namespace, "payments")
    create_credential(
        kube,
        namespace,
        "orders-read",
        {
            "identityRef": "payments",
            "token": {
                "audience": "orders-api",
                "scopes": ["orders:read", "audit:write"],
                "ttl": "15m",
                "claims": {"tenant": "acme"},
            },
            "secretName": "payments-orders-read",
        },
    )
    body = wait_credential(kube, namespace, "orders-read", "Ready", "True")
    status = body["status"]
    secret, data = read_secret(kube, namespace, "payments-orders-read")
    assert secret.type == "Opaque"
    assert set(data) == {"token"}
    token = data["token"].decode()
    assert pyjwt.get_unverified_header(token)["typ"] == "at+jwt"
    claims = _decode(kube, namespace, token, "orders-api")
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/payments"
    assert identity["spiffeID"] == spiffe_id
    assert claims["sub"] == spiffe_id
    assert claims["client_id"] == spiffe_id
    assert claims["iss"] == operator.config.jwt_issuer
    assert claims["aud"] == "orders-api"
    assert claims["scope"] == "orders:read audit:write"
    assert claims["tenant"] == "acme"
    assert claims["jti"] == status["jti"]
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert _time(status["expiresAt"]) == dt.datetime.fromtimestamp(claims["exp"], dt.UTC)
    renewal = _time(status["renewalTime"])
    assert claims["iat"] + 0.45 * 900 - 1 <= renewal.timestamp() <= claims["iat"] + 0.55 * 900

    notes = secret.metadata.annotations
    assert notes["identity.wio.dev/expires-at"] == status["expiresAt"]
    assert notes["identity.wio.dev/jti"] == status["jti"]
    assert token not in json.dumps(notes) + json.dumps(status)
    assert secret.metadata.labels["identity.wio.dev/scopedcredential"] == "orders-read"
    assert secret.metadata.owner_references[0].kind == "ScopedCredential"
    assert status["spiffeID"] == spiffe_id
    assert status["secretName"] == "payments-orders-read"
    wait_for(
        lambda: "Issued" in {e.reason for e in events_for(kube, namespace, "orders-read")},
        timeout=10,
        what="an Issued Event",
    )


def test_ungranted_scope_is_denied_naming_the_scope_and_nothing_is_minted(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, policy: str
) -> None:
    ready_identity(kube, namespace, "payments")
    create_credential(
        kube,
        namespace,
        "too-much",
        {
            "identityRef": "payments",
            "token": {"audience": "orders-api", "scopes": ["orders:read", "orders:write"]},
        },
    )
    body = wait_credential(kube, namespace, "too-much", "PolicyDenied", "True")
    message = condition(body, "PolicyDenied")["message"]  # type: ignore[index]
    assert "spec.token.scopes[1]" in message
    assert "orders:write" in message
    assert condition(body, "Ready")["status"] == "False"  # type: ignore[index]
    assert "too-much-credential" not in secret_names(kube, namespace)
    assert not (body["status"].get("jti"))

    # Narrowing the request to what is granted issues it.
    patch_credential(kube, namespace, "too-much", {"spec": {"token": {"scopes": ["orders:read"]}}})
    wait_credential(kube, namespace, "too-much", "Ready", "True")
    assert "too-much-credential" in secret_names(kube, namespace)


def test_without_a_matching_policy_a_scoped_credential_is_denied(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    ready_identity(kube, namespace, "payments")
    create_credential(
        kube,
        namespace,
        "nopolicy",
        {"identityRef": "payments", "token": {"audience": "orders-api", "scopes": ["a:b"]}},
    )
    body = wait_credential(kube, namespace, "nopolicy", "PolicyDenied", "True")
    assert "no IdentityPolicy matches namespace" in condition(body, "PolicyDenied")["message"]  # type: ignore[index]
    assert "nopolicy-credential" not in secret_names(kube, namespace)


def test_identity_missing_here_or_only_in_another_namespace_mints_nothing(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, policy: str
) -> None:
    core = client.CoreV1Api(kube)
    other = f"{namespace}-other"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        ready_identity(kube, other, "payments")  # same name, another namespace
        create_credential(
            kube,
            namespace,
            "orphan",
            {
                "identityRef": "payments",
                "token": {"audience": "orders-api", "scopes": ["orders:read"]},
            },
        )
        body = wait_credential(
            kube, namespace, "orphan", "Ready", "False", reason="IdentityNotFound"
        )
        message = condition(body, "Ready")["message"]  # type: ignore[index]
        assert "spec.identityRef" in message
        assert f"does not exist in namespace {namespace}" in message
        assert "orphan-credential" not in secret_names(kube, namespace)
        assert not any(
            s.startswith("orphan") for s in secret_names(kube, other) if "identity" not in s
        )

        # The identity appears here and becomes Ready: the credential follows, for it.
        ready_identity(kube, namespace, "payments")
        body = wait_credential(kube, namespace, "orphan", "Ready", "True")
        assert body["status"]["spiffeID"].endswith(f"/ns/{namespace}/sa/payments")
    finally:
        core.delete_namespace(other)


def test_token_is_rotated_at_half_its_ttl(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, policy: str
) -> None:
    ready_identity(kube, namespace, "payments")
    create_credential(
        kube,
        namespace,
        "fast",
        {
            "identityRef": "payments",
            "token": {"audience": "orders-api", "scopes": ["orders:read"], "ttl": "20s"},
        },
    )
    first = wait_credential(kube, namespace, "fast", "Ready", "True")["status"]
    renewal, expires = _time(first["renewalTime"]), _time(first["expiresAt"])
    assert expires - dt.timedelta(seconds=11) <= renewal <= expires - dt.timedelta(seconds=9)

    def rotated() -> dict[str, Any] | None:
        status = get_credential(kube, namespace, "fast").get("status") or {}
        return status if status.get("jti") not in (None, first["jti"]) else None

    second = wait_for(rotated, timeout=30, what="the token's rotation")
    seen_at = dt.datetime.now(dt.UTC)
    assert seen_at >= renewal
    assert seen_at < expires  # rotated before the old token expired
    assert second["rotations"] == 1  # re-issues after the first issuance
    token = read_secret(kube, namespace, "fast-credential")[1]["token"].decode()
    assert _decode(kube, namespace, token, "orders-api")["jti"] == second["jti"]


def test_deleted_token_secret_is_restored_with_a_fresh_token(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, policy: str
) -> None:
    ready_identity(kube, namespace, "payments")
    create_credential(
        kube,
        namespace,
        "drift",
        {"identityRef": "payments", "token": {"audience": "orders-api", "scopes": ["orders:read"]}},
    )
    first = wait_credential(kube, namespace, "drift", "Ready", "True")["status"]
    client.CoreV1Api(kube).delete_namespaced_secret("drift-credential", namespace)

    def restored() -> str | None:
        try:
            token = read_secret(kube, namespace, "drift-credential")[1]["token"].decode()
        except client.exceptions.ApiException:
            return None
        return (
            token
            if pyjwt.decode(token, options={"verify_signature": False})["jti"] != first["jti"]
            else None
        )

    token = wait_for(restored, timeout=15, what="the Secret to be restored")
    jti = _decode(kube, namespace, token, "orders-api")["jti"]

    def recorded() -> bool:
        status = wait_credential(kube, namespace, "drift", "Ready", "True")["status"]
        return bool(status.get("jti") == jti)

    # The Secret is written before the status patch: wait for status to catch up.
    wait_for(recorded, timeout=15, what="status to record the restored token")


def test_delete_revokes_the_token_and_removes_its_secret(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, policy: str
) -> None:
    ready_identity(kube, namespace, "payments")
    create_credential(
        kube,
        namespace,
        "gone",
        {"identityRef": "payments", "token": {"audience": "orders-api", "scopes": ["orders:read"]}},
    )
    body = wait_credential(kube, namespace, "gone", "Ready", "True")
    assert "identity.wio.dev/finalizer" in body["metadata"]["finalizers"]
    status = body["status"]
    delete_credential(kube, namespace, "gone")
    wait_for(lambda: credential_gone(kube, namespace, "gone"), timeout=30, what="the finalizer")
    assert "gone-credential" not in secret_names(kube, namespace)
    entries = {(r["kind"], r["id"]): r for r in revocations(kube, OPERATOR_NAMESPACE)}
    entry = entries[("token", status["jti"])]
    assert entry["spiffeID"] == status["spiffeID"]
    assert entry["expiresAt"] == status["expiresAt"]
    assert entry["reason"] == "Deleted"
    wait_for(
        lambda: "Revoked" in {e.reason for e in events_for(kube, namespace, "gone")},
        timeout=10,
        what="a Revoked Event",
    )


# -- Vault dynamic secrets ---------------------------------------------------------------------


def _login(kube: client.ApiClient, namespace: str, secret: str) -> dict[str, str]:
    _, data = read_secret(kube, namespace, secret)
    return {k: v.decode() for k, v in data.items()}


def _ready_vault_credential(
    kube: client.ApiClient, namespace: str, name: str, path: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """Identity ``payments`` and a Vault ScopedCredential for ``path``, both Ready: the
    credential's status and the database login its Secret holds."""
    ready_identity(kube, namespace, "payments")
    create_credential(kube, namespace, name, {"identityRef": "payments", "vault": {"path": path}})
    status = wait_credential(kube, namespace, name, "Ready", "True")["status"]
    return status, _login(kube, namespace, f"{name}-credential")


def test_dynamic_secret_is_a_live_database_login_revoked_on_delete(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    policy: str,
    openbao_database: OpenBaoDatabase,
) -> None:
    status, login = _ready_vault_credential(kube, namespace, "db", "database/creds/orders-ro")
    secret, _ = read_secret(kube, namespace, "db-credential")
    assert set(login) == {"username", "password"}
    postgres = openbao_database.postgres
    assert postgres.role_exists(login["username"])
    assert postgres.can_log_in(login["username"], login["password"])
    assert status["leaseID"].startswith("database/creds/orders-ro/")
    assert openbao_database.lease(status["leaseID"]) is not None
    assert secret.metadata.annotations["identity.wio.dev/lease-id"] == status["leaseID"]
    assert login["password"] not in json.dumps(status) + json.dumps(secret.metadata.annotations)
    lifetime = _time(status["leaseExpiresAt"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=55) < lifetime <= dt.timedelta(hours=1)
    assert status["leaseRenewable"] is True

    delete_credential(kube, namespace, "db")
    wait_for(lambda: credential_gone(kube, namespace, "db"), timeout=30, what="the finalizer")
    assert openbao_database.lease(status["leaseID"]) is None
    assert not postgres.role_exists(login["username"])
    assert "db-credential" not in secret_names(kube, namespace)
    assert ("lease", status["leaseID"]) in {
        (r["kind"], r["id"]) for r in revocations(kube, OPERATOR_NAMESPACE)
    }


def test_lease_is_renewed_at_half_its_ttl_then_read_again_near_its_max_ttl(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    policy: str,
    openbao_database: OpenBaoDatabase,
) -> None:
    first, login = _ready_vault_credential(kube, namespace, "short", "database/creds/short")
    renewal = _time(first["renewalTime"])
    expires = _time(first["leaseExpiresAt"])
    assert first["leaseDuration"] == 10

    def renewed() -> dict[str, Any] | None:
        status = get_credential(kube, namespace, "short").get("status") or {}
        return status if status.get("leaseExpiresAt") != first["leaseExpiresAt"] else None

    second = wait_for(renewed, timeout=30, what="the lease's renewal")
    seen_at = dt.datetime.now(dt.UTC)
    assert renewal <= seen_at < expires
    assert second["leaseID"] == first["leaseID"]  # the same lease, extended
    assert _time(second["leaseExpiresAt"]) > expires
    assert _login(kube, namespace, "short-credential") == login  # the same login
    assert openbao_database.postgres.can_log_in(login["username"], login["password"])

    def read_again() -> dict[str, Any] | None:
        status = get_credential(kube, namespace, "short").get("status") or {}
        return status if status.get("leaseID") not in (None, first["leaseID"]) else None

    third = wait_for(read_again, timeout=40, what="a new read once renewal is capped")
    assert dt.datetime.now(dt.UTC) < _time(second["leaseExpiresAt"])  # before the old one ends
    fresh = _login(kube, namespace, "short-credential")
    assert fresh["username"] != login["username"]
    assert openbao_database.postgres.can_log_in(fresh["username"], fresh["password"])
    # The replaced lease is left to expire (pods may still hold it) but is tracked...
    assert first["leaseID"] in {lease["leaseID"] for lease in third["retiredLeases"]}

    # ...so deleting the credential revokes both.
    delete_credential(kube, namespace, "short")
    wait_for(lambda: credential_gone(kube, namespace, "short"), timeout=30, what="the finalizer")
    for lease in (first["leaseID"], third["leaseID"]):
        assert openbao_database.lease(lease) is None
    for user in (login["username"], fresh["username"]):
        assert not openbao_database.postgres.role_exists(user)


def test_vault_paths_not_granted_or_outside_the_admin_mounts_are_denied(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    openbao_database: OpenBaoDatabase,
) -> None:
    name = f"vault-{namespace}"
    grant(kube, namespace, name, vault={"paths": ["database/creds/orders-ro", "kv/data/app"]})
    try:
        ready_identity(kube, namespace, "payments")
        create_credential(
            kube,
            namespace,
            "ungranted",
            {"identityRef": "payments", "vault": {"path": "database/creds/denied"}},
        )
        create_credential(
            kube,
            namespace,
            "unmounted",
            {"identityRef": "payments", "vault": {"path": "kv/data/app"}},
        )
        body = wait_credential(kube, namespace, "ungranted", "PolicyDenied", "True")
        message = condition(body, "PolicyDenied")["message"]  # type: ignore[index]
        assert "spec.vault.path" in message
        assert "database/creds/denied" in message
        body = wait_credential(kube, namespace, "unmounted", "PolicyDenied", "True")
        message = condition(body, "PolicyDenied")["message"]  # type: ignore[index]
        assert "kv/data/app is outside the Vault mounts the operator may read" in message
        assert {"ungranted-credential", "unmounted-credential"}.isdisjoint(
            secret_names(kube, namespace)
        )
    finally:
        delete_policy(kube, name)


def test_deleting_the_identity_revokes_its_scoped_credentials(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    policy: str,
    openbao_database: OpenBaoDatabase,
) -> None:
    ready_identity(kube, namespace, "payments")
    create_credential(
        kube,
        namespace,
        "tok",
        {"identityRef": "payments", "token": {"audience": "orders-api", "scopes": ["orders:read"]}},
    )
    create_credential(
        kube,
        namespace,
        "db",
        {"identityRef": "payments", "vault": {"path": "database/creds/orders-ro"}},
    )
    token = wait_credential(kube, namespace, "tok", "Ready", "True")["status"]
    lease = wait_credential(kube, namespace, "db", "Ready", "True")["status"]
    login = _login(kube, namespace, "db-credential")

    delete_identity(kube, namespace, "payments")
    wait_for(
        lambda: gone(get_identity, kube, namespace, "payments"),
        timeout=30,
        what="the identity's finalizer",
    )
    # By the time the identity is gone, everything issued on its behalf is revoked.
    entries = {(r["kind"], r["id"]) for r in revocations(kube, OPERATOR_NAMESPACE)}
    assert ("token", token["jti"]) in entries
    assert ("lease", lease["leaseID"]) in entries
    assert openbao_database.lease(lease["leaseID"]) is None
    assert not openbao_database.postgres.role_exists(login["username"])
    assert {"tok-credential", "db-credential"}.isdisjoint(secret_names(kube, namespace))
    for name in ("tok", "db"):
        body = wait_credential(kube, namespace, name, "Ready", "False", reason="IdentityNotFound")
        assert not body["status"].get("jti")
        assert not body["status"].get("leaseID")


def test_lease_of_a_credential_deleted_while_the_operator_is_down_is_revoked_on_return(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    policy: str,
    openbao_database: OpenBaoDatabase,
) -> None:
    status, login = _ready_vault_credential(kube, namespace, "late", "database/creds/orders-ro")
    operator.stop()
    try:
        delete_credential(kube, namespace, "late")
        assert get_credential(kube, namespace, "late")["metadata"].get("deletionTimestamp")
    finally:
        operator.start()
    wait_for(lambda: credential_gone(kube, namespace, "late"), timeout=30, what="the finalizer")
    assert openbao_database.lease(status["leaseID"]) is None
    assert not openbao_database.postgres.role_exists(login["username"])


def test_spec_change_reissues_and_identity_spec_changes_do_not(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, policy: str
) -> None:
    ready_identity(kube, namespace, "payments")
    create_credential(
        kube,
        namespace,
        "change",
        {"identityRef": "payments", "token": {"audience": "orders-api", "scopes": ["orders:read"]}},
    )
    first = wait_credential(kube, namespace, "change", "Ready", "True")["status"]
    # The identity's X.509 side changes; the token's subject does not, so nothing is re-minted.
    patch_identity(kube, namespace, "payments", {"spec": {"x509": {"ttl": "2h"}}})
    patch_credential(
        kube, namespace, "change", {"spec": {"token": {"scopes": ["orders:read", "audit:log"]}}}
    )
    second = wait_credential(kube, namespace, "change", "Ready", "True", reason="Rotated")
    assert second["status"]["jti"] != first["jti"]
    token = read_secret(kube, namespace, "change-credential")[1]["token"].decode()
    assert _decode(kube, namespace, token, "orders-api")["scope"] == "orders:read audit:log"


def test_a_secret_name_taken_by_another_wio_object_is_refused_and_left_alone(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, policy: str
) -> None:
    identity = ready_identity(kube, namespace, "payments")
    create_credential(
        kube,
        namespace,
        "squatter",
        {
            "identityRef": "payments",
            "token": {"audience": "orders-api", "scopes": ["orders:read"]},
            "secretName": "payments-identity",
        },
    )
    body = wait_credential(kube, namespace, "squatter", "Ready", "False", reason="SecretConflict")
    assert "spec.secretName" in condition(body, "Ready")["message"]  # type: ignore[index]
    secret, data = read_secret(kube, namespace, "payments-identity")
    assert "token" not in data
    assert secret.metadata.annotations["identity.wio.dev/serial"] == identity["serialNumber"]
    assert (
        get_identity(kube, namespace, "payments")["status"]["serialNumber"]
        == identity["serialNumber"]
    )
