# SPDX-License-Identifier: Apache-2.0
"""RFC 7662 token introspection, as a resource server would use it: urllib, form posts, JSON.

The caller authenticates with its own wio JWT-SVID whose audience is the introspection
endpoint (``<issuer>/introspect``), read from its WorkloadIdentity's Secret as a pod would.
Tokens for the negative cases are made with PyJWT (an expired one signed with the operator's
own active key, foreign ones with keys wio never saw), never with wio's minting code.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client

from tests.integration.conftest import OPERATOR_NAMESPACE
from tests.support.identities import (
    GROUP,
    VERSION,
    condition,
    create_identity,
    delete_identity,
    delete_policy,
    get_identity,
    published_revocations,
    revocations,
    wait_condition,
)
from tests.support.operator import InProcessOperator
from tests.support.scoped import (
    HttpAnswer,
    create_credential,
    delete_credential,
    grant,
    http,
    introspect,
    ready_identity,
    secret_token,
    wait_credential,
)
from tests.support.tokens import replace_claims
from tests.support.waiting import wait_for

INACTIVE = {"active": False}


@pytest.fixture
def policy(kube: client.ApiClient, namespace: str, operator: InProcessOperator) -> Iterator[str]:
    """Tokens for orders-api, and the introspection audience, which needs an explicit grant."""
    name = f"introspect-{namespace}"
    grant(
        kube,
        namespace,
        name,
        tokens={"audiences": ["orders-api"], "scopes": ["orders:*"], "minTTL": "10s"},
        jwt={
            "minTTL": "10s",
            "maxTTL": "1h",
            "audiences": [f"{operator.config.jwt_issuer}/introspect", "orders-api"],
        },
    )
    yield name
    delete_policy(kube, name)


@pytest.fixture
def caller(kube: client.ApiClient, namespace: str, operator: InProcessOperator, policy: str) -> str:
    """A resource server's JWT-SVID for the introspection endpoint, from its own Secret."""
    ready_identity(
        kube,
        namespace,
        "orders-api",
        {
            "serviceAccountName": "orders-api",
            "jwt": {"audiences": [f"{operator.config.jwt_issuer}/introspect"], "ttl": "30m"},
        },
    )
    return secret_token(kube, namespace, "orders-api-identity")


@pytest.fixture
def access_token(kube: client.ApiClient, namespace: str, policy: str) -> tuple[str, dict[str, Any]]:
    """A client workload's access token for orders-api, and its ScopedCredential's status."""
    ready_identity(kube, namespace, "payments")
    create_credential(
        kube,
        namespace,
        "orders-read",
        {
            "identityRef": "payments",
            "token": {"audience": "orders-api", "scopes": ["orders:read"], "ttl": "15m"},
        },
    )
    status = wait_credential(kube, namespace, "orders-read", "Ready", "True")["status"]
    return secret_token(kube, namespace, "orders-read-credential"), status


def _no_echo(answer: HttpAnswer, *tokens: str) -> None:
    for token in tokens:
        for part in (token, *token.split(".")):
            if len(part) >= 16:
                assert part not in answer.text
                assert all(part not in value for value in answer.headers.values())


def test_active_token_is_described_and_never_echoed(
    operator: InProcessOperator, caller: str, access_token: tuple[str, dict[str, Any]]
) -> None:
    token, status = access_token
    answer = introspect(operator.base_url, token, caller)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert body["active"] is True
    assert body["sub"] == status["spiffeID"]
    assert body["client_id"] == status["spiffeID"]
    assert body["scope"] == "orders:read"
    assert body["aud"] == "orders-api"
    assert body["exp"] == claims["exp"]
    assert body["iat"] == claims["iat"]
    assert body["iss"] == operator.config.jwt_issuer
    assert body["jti"] == status["jti"]
    assert body["token_type"] == "Bearer"
    _no_echo(answer, token, caller)


def _expired_token(operator: InProcessOperator, claims: dict[str, Any]) -> str:
    """Signed by PyJWT with the operator's own active key, so only ``exp`` is wrong."""
    key = operator.runtime.signers.get("default").jwt.ring.active  # type: ignore[attr-defined]
    now = int(time.time())
    return pyjwt.encode(
        {**claims, "iat": now - 120, "exp": now - 60, "jti": "expired-jti-1"},
        key.private_key.key,
        algorithm="ES256",
        headers={"kid": key.kid, "typ": "at+jwt"},
    )


def test_expired_foreign_malformed_and_non_access_tokens_are_inactive(
    operator: InProcessOperator, caller: str, access_token: tuple[str, dict[str, Any]]
) -> None:
    token, _ = access_token
    header = pyjwt.get_unverified_header(token)
    claims = pyjwt.decode(token, options={"verify_signature": False})
    stranger = ec.generate_private_key(ec.SECP256R1())
    cases = {
        "expired": _expired_token(operator, claims),
        # Another key under wio's kid, and another key under a kid of its own.
        "foreign key, our kid": pyjwt.encode(claims, stranger, algorithm="ES256", headers=header),
        "foreign key and kid": pyjwt.encode(
            claims, stranger, algorithm="ES256", headers={"kid": "stranger", "typ": "at+jwt"}
        ),
        "claims edited": replace_claims(token, {**claims, "scope": "orders:admin"}),
        "unsigned": pyjwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt"}),
        "malformed": "not.a.jwt",
        "garbage": "x" * 40,
        "a JWT-SVID, not an access token": caller,
    }
    for what, candidate in cases.items():
        answer = introspect(operator.base_url, candidate, caller)
        assert answer.status == 200, what
        assert answer.json() == INACTIVE, what
        _no_echo(answer, candidate, caller)


def test_revocation_is_visible_within_one_second_of_the_delete(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    caller: str,
    access_token: tuple[str, dict[str, Any]],
) -> None:
    token, _ = access_token
    assert introspect(operator.base_url, token, caller).json()["active"] is True
    delete_credential(kube, namespace, "orders-read")
    deleted_at = time.monotonic()
    answer = wait_for(
        lambda: (a := introspect(operator.base_url, token, caller)).json() == INACTIVE and a,
        timeout=5,
        interval=0.05,
        what="the revoked token to turn inactive",
    )
    elapsed = time.monotonic() - deleted_at
    print(f"revocation visible in introspection {elapsed:.3f}s after the delete")
    assert elapsed <= 1.0, f"revocation took {elapsed:.2f}s to show in introspection"
    _no_echo(answer, token, caller)


def test_ids_planted_in_another_namespace_and_revoked_there_revoke_nothing_here(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    caller: str,
    access_token: tuple[str, dict[str, Any]],
) -> None:
    """A tenant of another namespace who saw a token (a resource server does) and a peer's
    certificate copies their IDs into its own identity's status and deletes the identity:
    the IDs are listed for the tenant's namespace only, and nothing here stops working."""
    token, _ = access_token
    victim_jti = pyjwt.decode(token, options={"verify_signature": False})["jti"]
    caller_jti = pyjwt.decode(caller, options={"verify_signature": False})["jti"]
    victim_serial = get_identity(kube, namespace, "payments")["status"]["serialNumber"]
    elsewhere = f"mallory-{namespace}"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=elsewhere)))
    try:
        ready_identity(kube, elsewhere, "mallory")
        until = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        planted = [
            {"kind": "token", "id": victim_jti, "expiresAt": until},
            {"kind": "jwt", "id": caller_jti, "expiresAt": until},
            {"kind": "x509", "id": victim_serial, "expiresAt": until},
        ]
        client.CustomObjectsApi(kube).patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            elsewhere,
            "workloadidentities",
            "mallory",
            {"status": {"retiredCredentials": planted}},
        )
        delete_identity(kube, elsewhere, "mallory")
        # The attempt went through as far as it can: listed, for the tenant's namespace.
        wait_for(
            lambda: (
                {victim_jti, victim_serial}
                <= {
                    r["id"]
                    for r in revocations(kube, OPERATOR_NAMESPACE)
                    if r["namespace"] == elsewhere
                }
            ),
            timeout=15,
            what="the planted IDs listed for the tenant's own namespace",
        )
        body = introspect(operator.base_url, token, caller).json()
        assert body["active"] is True
        assert victim_serial not in published_revocations(kube, namespace, "x509")
        assert victim_jti not in published_revocations(kube, namespace, "token")
    finally:
        core.delete_namespace(elsewhere)


def test_callers_without_a_wio_jwt_svid_for_the_endpoint_get_401(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    caller: str,
    access_token: tuple[str, dict[str, Any]],
) -> None:
    token, _ = access_token
    # A genuine wio JWT-SVID, but for another audience.
    ready_identity(
        kube,
        namespace,
        "other",
        {"serviceAccountName": "other", "jwt": {"audiences": ["orders-api"]}},
    )
    other_svid = secret_token(kube, namespace, "other-identity")
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = pyjwt.encode(
        {
            "sub": "spiffe://test.wio.local/ns/x/sa/y",
            "aud": [f"{operator.config.jwt_issuer}/introspect"],
            "exp": int(time.time()) + 600,
        },
        stranger,
        algorithm="ES256",
        headers={"kid": pyjwt.get_unverified_header(caller)["kid"]},
    )
    credentials: dict[str, str | None] = {
        "no Authorization header": None,
        "a JWT-SVID for another audience": other_svid,
        "an access token instead of a JWT-SVID": token,
        "a forged JWT-SVID": forged,
        "garbage": "garbage",
    }
    for what, credential in credentials.items():
        answer = introspect(operator.base_url, token, credential)
        assert answer.status == 401, what
        assert answer.headers["WWW-Authenticate"].startswith("Bearer"), what
        assert "active" not in answer.json(), what
        _no_echo(answer, token, *(c for c in credentials.values() if c))
    basic = http(
        f"{operator.base_url}/introspect",
        method="POST",
        form={"token": token},
        headers={"Authorization": "Basic b3JkZXJzOnNlY3JldA=="},
    )
    assert basic.status == 401


def test_introspection_is_rate_limited_per_caller(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    caller: str,
    access_token: tuple[str, dict[str, Any]],
) -> None:
    token, _ = access_token
    burst = operator.config.introspection_burst
    limited: HttpAnswer | None = None
    for _ in range(burst * 3):
        answer = introspect(operator.base_url, token, caller)
        if answer.status == 429:
            limited = answer
            break
        assert answer.status == 200
    assert limited is not None, "no request was refused"
    assert int(limited.headers["Retry-After"]) >= 1
    assert "active" not in limited.json()
    _no_echo(limited, token, caller)
    # Another caller has a budget of its own.
    ready_identity(
        kube,
        namespace,
        "billing-api",
        {
            "serviceAccountName": "billing-api",
            "jwt": {"audiences": [f"{operator.config.jwt_issuer}/introspect"]},
        },
    )
    other = secret_token(kube, namespace, "billing-api-identity")
    assert introspect(operator.base_url, token, other).json()["active"] is True
    # And the first one is served again once its bucket refills.
    wait_for(
        lambda: introspect(operator.base_url, token, caller).status == 200,
        timeout=5,
        what="the caller's budget to refill",
    )


def test_tokens_are_taken_only_from_a_post_body(
    operator: InProcessOperator, caller: str, access_token: tuple[str, dict[str, Any]]
) -> None:
    token, _ = access_token
    in_url = http(f"{operator.base_url}/introspect?token={token}", headers={"Authorization": ""})
    assert in_url.status == 405
    missing = http(
        f"{operator.base_url}/introspect",
        method="POST",
        form={},
        headers={"Authorization": f"Bearer {caller}"},
    )
    assert missing.status == 400
    assert missing.json()["error"] == "invalid_request"
    as_json = http(
        f"{operator.base_url}/introspect",
        method="POST",
        body=b'{"token": "x"}',
        headers={"Authorization": f"Bearer {caller}", "Content-Type": "application/json"},
    )
    assert as_json.status == 400
    for answer in (in_url, missing, as_json):
        _no_echo(answer, token, caller)


def test_a_flood_of_bad_logins_from_one_address_never_locks_out_a_caller_that_authenticates(
    operator: InProcessOperator, caller: str, access_token: tuple[str, dict[str, Any]]
) -> None:
    """Behind one Ingress every resource server shares an address: the per-address limit on
    failed logins must hold back only the failures."""
    token, _ = access_token
    refused = 0
    for _ in range(operator.config.introspection_burst * 3):
        answer = introspect(operator.base_url, token, "not-a-jwt")
        assert answer.status in (401, 429)
        refused += answer.status == 429
        if refused:
            break
    assert refused, "bad logins were never held back"
    served = introspect(operator.base_url, token, caller)
    assert served.status == 200
    assert served.json()["active"] is True


def test_a_401_says_nothing_about_why_the_credential_failed(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    access_token: tuple[str, dict[str, Any]],
) -> None:
    token, _ = access_token
    answer = introspect(operator.base_url, token, token)  # an access token is no JWT-SVID
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="wio", error="invalid_token"'
    assert answer.json() == {"error": "invalid_client"}


def test_a_token_given_twice_is_a_bad_request(
    operator: InProcessOperator, caller: str, access_token: tuple[str, dict[str, Any]]
) -> None:
    token, _ = access_token
    answer = http(
        f"{operator.base_url}/introspect",
        method="POST",
        body=f"token={token}&token=other".encode(),
        headers={
            "Authorization": f"Bearer {caller}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert answer.status == 400
    assert answer.json()["error"] == "invalid_request"
    _no_echo(answer, token, caller)


def test_the_introspection_audience_is_never_granted_by_default(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    """With no IdentityPolicy for the namespace, any JWT-SVID audience is allowed except the
    introspection endpoint: reading other workloads' token claims needs an explicit grant."""
    endpoint = f"{operator.config.jwt_issuer}/introspect"
    create_identity(
        kube,
        namespace,
        "snoop",
        {"serviceAccountName": "snoop", "jwt": {"audiences": [endpoint]}},
    )
    body = wait_condition(kube, namespace, "snoop", "PolicyDenied", "True")
    message = condition(body, "PolicyDenied")["message"]  # type: ignore[index]
    assert "spec.jwt.audiences[0]" in message
    assert "must be listed by an IdentityPolicy" in message
    assert not (body.get("status") or {}).get("jwtID")


def test_an_over_long_authorization_header_is_refused_without_echoing_or_logging_it(
    operator: InProcessOperator, caplog: pytest.LogCaptureFixture
) -> None:
    """The HTTP parser refuses a header over 8 KiB; what it refused (the start of a bearer
    token) must appear neither in the answer nor in any log line."""
    secret = "eyJ" + "S3cr3tT0k3nB0dy" * 700  # ~10 KiB, past the parser's limit
    with caplog.at_level(logging.DEBUG):
        answer = http(
            f"{operator.base_url}/introspect",
            method="POST",
            form={"token": "x"},
            headers={"Authorization": f"Bearer {secret}"},
        )
    assert answer.status == 400
    assert "S3cr3tT0k3n" not in answer.text
    assert all("S3cr3tT0k3n" not in value for value in answer.headers.values())
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert "S3cr3tT0k3n" not in logged
