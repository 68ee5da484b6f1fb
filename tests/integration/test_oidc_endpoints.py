# SPDX-License-Identifier: Apache-2.0
"""The operator's public trust endpoints, read with stock clients from the issuer URL alone.

A service that receives a wio token knows nothing but the token: its ``iss`` leads to the OIDC
discovery document, that to the JWKS, and PyJWT's ``PyJWKClient`` does the rest. The SPIFFE
bundle endpoint is checked the same way: its X.509 roots verify an X.509-SVID with
cryptography's path validation, its JWT keys verify a JWT-SVID with PyJWT.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator

import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.x509 import verification
from kubernetes import client

from tests.integration.conftest import TRUST_DOMAIN
from tests.support.identities import delete_policy, leaf, read_secret
from tests.support.operator import InProcessOperator
from tests.support.scoped import (
    create_credential,
    grant,
    http,
    ready_identity,
    secret_token,
    wait_credential,
)


@pytest.fixture
def policy(kube: client.ApiClient, namespace: str) -> Iterator[str]:
    name = f"oidc-{namespace}"
    grant(kube, namespace, name, tokens={"audiences": ["orders-api"], "scopes": ["orders:read"]})
    yield name
    delete_policy(kube, name)


def _discover(issuer: str) -> dict[str, object]:
    answer = http(f"{issuer}/.well-known/openid-configuration")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    return dict(answer.json())


def test_a_stock_jwt_library_verifies_wio_tokens_from_the_issuer_url_alone(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator, policy: str
) -> None:
    ready_identity(
        kube,
        namespace,
        "payments",
        {"serviceAccountName": "payments", "jwt": {"audiences": ["orders-api"]}},
    )
    create_credential(
        kube,
        namespace,
        "orders-read",
        {"identityRef": "payments", "token": {"audience": "orders-api", "scopes": ["orders:read"]}},
    )
    wait_credential(kube, namespace, "orders-read", "Ready", "True")
    access_token = secret_token(kube, namespace, "orders-read-credential")
    svid = secret_token(kube, namespace, "payments-identity")

    # All a resource server starts from: the token's own (unverified) issuer.
    issuer = pyjwt.decode(access_token, options={"verify_signature": False})["iss"]
    assert issuer == operator.config.jwt_issuer
    discovery = _discover(issuer)
    assert discovery["issuer"] == issuer
    jwks_uri = str(discovery["jwks_uri"])
    assert jwks_uri.startswith(issuer)
    algorithms = list(discovery["id_token_signing_alg_values_supported"])  # type: ignore[call-overload]
    jwks = pyjwt.PyJWKClient(jwks_uri)

    key = jwks.get_signing_key_from_jwt(access_token)
    claims = pyjwt.decode(
        access_token,
        key,
        algorithms=algorithms,
        audience="orders-api",
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "sub", "aud", "jti", "client_id"]},
    )
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/payments"
    assert claims["sub"] == spiffe_id
    assert claims["scope"] == "orders:read"

    svid_claims = pyjwt.decode(
        svid, jwks.get_signing_key_from_jwt(svid), algorithms=algorithms, audience="orders-api"
    )
    assert svid_claims["sub"] == spiffe_id

    with pytest.raises(pyjwt.InvalidAudienceError):
        pyjwt.decode(access_token, key, algorithms=algorithms, audience="billing-api")

    served = http(jwks_uri)
    assert served.headers["Content-Type"].startswith("application/jwk-set+json")
    for jwk in served.json()["keys"]:
        assert {"kid", "kty", "alg"} <= set(jwk)
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(jwk)  # public halves only


def test_discovery_advertises_the_introspection_endpoint(operator: InProcessOperator) -> None:
    issuer = operator.config.jwt_issuer
    discovery = _discover(issuer)
    assert discovery["introspection_endpoint"] == f"{issuer}/introspect"
    # Unauthenticated introspection is refused with a Bearer challenge, not served.
    answer = http(str(discovery["introspection_endpoint"]), method="POST", form={"token": "x"})
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_spiffe_bundle_endpoint_verifies_x509_and_jwt_svids(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    ready_identity(
        kube,
        namespace,
        "payments",
        {"serviceAccountName": "payments", "jwt": {"audiences": ["orders-api"]}},
    )
    answer = http(f"{operator.base_url}/bundle.spiffe.json")
    assert answer.status == 200
    bundle = answer.json()
    assert isinstance(bundle["spiffe_sequence"], int)
    assert bundle["spiffe_refresh_hint"] > 0
    roots = [
        x509.load_der_x509_certificate(base64.b64decode(k["x5c"][0]))
        for k in bundle["keys"]
        if k["use"] == "x509-svid"
    ]
    jwt_keys = {k["kid"]: k for k in bundle["keys"] if k["use"] == "jwt-svid"}
    assert roots
    assert jwt_keys

    _, data = read_secret(kube, namespace, "payments-identity")
    cert = leaf(data)
    chain = x509.load_pem_x509_certificates(data["tls.crt"])[1:]
    store = verification.Store(roots)
    verifier = (
        verification.PolicyBuilder()
        .store(store)
        .time(dt.datetime.now(dt.UTC))
        .build_client_verifier()
    )
    verified = verifier.verify(cert, chain)
    sans = verified.subjects or []
    assert any(
        isinstance(name, x509.UniformResourceIdentifier)
        and name.value == f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/payments"
        for name in sans
    )

    svid = data["token"].decode()
    kid = pyjwt.get_unverified_header(svid)["kid"]
    jwk = dict(jwt_keys[kid])
    jwk.pop("use")  # "jwt-svid" is SPIFFE's; JOSE libraries know only "sig"/"enc"
    claims = pyjwt.decode(
        svid, pyjwt.PyJWK(jwk, algorithm="ES256"), algorithms=["ES256"], audience="orders-api"
    )
    assert claims["sub"].endswith("/sa/payments")
