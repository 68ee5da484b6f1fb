# SPDX-License-Identifier: Apache-2.0
"""Trust bundles: PEM, the SPIFFE bundle JWK Set (X509-SVID section 6) and the OIDC JWKS."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from tests.support.certs import LeafSpec, make_ca, make_leaf
from wio.errors import ValidationError
from wio.issuing.bundle import (
    SpiffeBundle,
    build_spiffe_bundle,
    oidc_jwks,
    pem_bundle,
    public_jwk,
)

pytestmark = pytest.mark.unit


def _b64url_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


@pytest.mark.parametrize(
    ("curve", "crv", "size"),
    [(ec.SECP256R1(), "P-256", 32), (ec.SECP384R1(), "P-384", 48)],
)
def test_ec_jwk_has_fixed_length_coordinates(curve: ec.EllipticCurve, crv: str, size: int) -> None:
    key = ec.generate_private_key(curve)
    jwk = public_jwk(key.public_key(), kid="k1", use="sig", alg="ES256")
    assert jwk["kty"] == "EC"
    assert jwk["crv"] == crv
    assert jwk["kid"] == "k1"
    assert jwk["use"] == "sig"
    assert jwk["alg"] == "ES256"
    for coord in ("x", "y"):
        assert "=" not in jwk[coord]
        assert len(base64.urlsafe_b64decode(jwk[coord] + "=" * (-len(jwk[coord]) % 4))) == size
    numbers = key.public_key().public_numbers()
    assert _b64url_int(jwk["x"]) == numbers.x
    assert _b64url_int(jwk["y"]) == numbers.y


def test_jwks_from_public_jwk_verify_signatures_with_pyjwt() -> None:
    """PyJWT, an independent JOSE implementation, reads each JWK and verifies with it."""
    cases: list[tuple[Any, str]] = [
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (ec.generate_private_key(ec.SECP384R1()), "ES384"),
        (ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
    ]
    for key, alg in cases:
        token = jwt.encode({"sub": "x"}, key, algorithm=alg)
        jwk = public_jwk(key.public_key(), kid="k", alg=alg)
        verifying_key = jwt.PyJWK.from_dict(jwk).key
        assert jwt.decode(token, verifying_key, algorithms=[alg])["sub"] == "x"


def test_okp_and_rsa_jwk_shapes() -> None:
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    assert set(public_jwk(ed)) == {"kty", "crv", "x"}
    assert public_jwk(ed)["crv"] == "Ed25519"
    rk = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    jwk = public_jwk(rk)
    assert set(jwk) == {"kty", "n", "e"}
    assert jwk["e"] == "AQAB"
    assert _b64url_int(jwk["n"]) == rk.public_numbers().n


def test_pem_bundle_keeps_order_and_drops_duplicates() -> None:
    a, b = make_ca("a").cert, make_ca("b").cert
    data = pem_bundle([a, b, a])
    assert x509.load_pem_x509_certificates(data) == [a, b]


def _jwt_key(kid: str) -> dict[str, str]:
    return public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), kid=kid, alg="ES256")


def test_spiffe_bundle_entries_follow_the_spec() -> None:
    roots = [make_ca("r1").cert, make_ca("r2").cert]
    jwt_key = _jwt_key("jwt-1")
    bundle = build_spiffe_bundle(roots, [jwt_key], refresh_hint=300)
    doc = json.loads(bundle.to_json())
    assert set(doc) == {"keys", "spiffe_sequence", "spiffe_refresh_hint"}
    assert doc["spiffe_refresh_hint"] == 300
    assert doc["spiffe_sequence"] == 1
    x509_entries = [k for k in doc["keys"] if k["use"] == "x509-svid"]
    jwt_entries = [k for k in doc["keys"] if k["use"] == "jwt-svid"]
    assert len(x509_entries) == 2
    for entry, root in zip(x509_entries, roots, strict=True):
        assert "kid" not in entry  # MUST NOT be set for x509-svid
        assert len(entry["x5c"]) == 1  # exactly one CA certificate
        # Standard base64 (RFC 7517 4.7), not base64url.
        der = base64.b64decode(entry["x5c"][0], validate=True)
        assert der == root.public_bytes(serialization.Encoding.DER)
        assert entry["kty"] == "EC"
        assert entry["x"] == public_jwk(root.public_key())["x"]  # type: ignore[arg-type]
    assert jwt_entries == [{**jwt_key, "use": "jwt-svid"}]
    assert bundle.x509_authorities() == roots
    assert bundle.jwt_authorities()[0]["kid"] == "jwt-1"


def test_the_sequence_only_grows_and_only_when_content_changes() -> None:
    root, other = make_ca("r1").cert, make_ca("r2").cert
    key = _jwt_key("k1")
    first = build_spiffe_bundle([root], [key])
    assert first.sequence == 1
    same = build_spiffe_bundle([root], [key], previous=first)
    assert same.sequence == 1
    assert same == first
    more = build_spiffe_bundle([root, other], [key], previous=same)
    assert more.sequence == 2
    # A previous bundle read back from storage compares by content, not by identity.
    reread = SpiffeBundle.from_json(more.to_json())
    assert build_spiffe_bundle([root, other], [key], previous=reread).sequence == 2
    fewer = build_spiffe_bundle([other], [key], previous=reread)
    assert fewer.sequence == 3
    hint_changed = build_spiffe_bundle([other], [key], refresh_hint=60, previous=fewer)
    assert hint_changed.sequence == 4


def test_previous_sequence_is_honoured_even_from_a_high_start() -> None:
    previous = SpiffeBundle.from_json(b'{"keys": [], "spiffe_sequence": 41}')
    assert build_spiffe_bundle([make_ca().cert], previous=previous).sequence == 42


def test_consumers_ignore_x509_entries_without_x5c_and_extra_x5c_values() -> None:
    a, b = make_ca("a").cert, make_ca("b").cert
    enc = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in (a, b)]
    doc = {
        "keys": [
            {"use": "x509-svid", "kty": "EC", "x5c": [enc[0], enc[1]]},
            {"use": "x509-svid", "kty": "EC"},
            {"use": "x509-svid", "kty": "EC", "x5c": []},
            {"use": "jwt-svid", "kty": "EC", "kid": "k"},
        ],
        "spiffe_sequence": 3,
    }
    assert SpiffeBundle.from_json(json.dumps(doc)).x509_authorities() == [a]


def test_a_leaf_is_not_accepted_as_an_x509_authority() -> None:
    ca = make_ca()
    leaf = make_leaf(ca, LeafSpec())
    with pytest.raises(ValidationError, match="must be a CA certificate"):
        build_spiffe_bundle([leaf])


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "k"])
def test_private_jwk_members_are_never_published(member: str) -> None:
    key = {**_jwt_key("k1"), member: "c2VjcmV0"}
    with pytest.raises(ValidationError, match="private members") as caught:
        build_spiffe_bundle([make_ca().cert], [key])
    assert "c2VjcmV0" not in str(caught.value)
    with pytest.raises(ValidationError, match="private members"):
        oidc_jwks([key])


def test_jwt_keys_need_a_unique_kid() -> None:
    key = _jwt_key("k1")
    no_kid = {k: v for k, v in key.items() if k != "kid"}
    with pytest.raises(ValidationError, match="needs a non-empty 'kid'"):
        build_spiffe_bundle([make_ca().cert], [no_kid])
    with pytest.raises(ValidationError, match="appears twice"):
        oidc_jwks([key, key])


def test_oidc_jwks_is_the_plain_key_set_and_pyjwt_reads_it() -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    key = public_jwk(signer.public_key(), kid="k1", use="sig", alg="ES256")
    jwks = oidc_jwks([key])
    assert jwks == {"keys": [key]}
    token = jwt.encode({"sub": "x"}, signer, algorithm="ES256", headers={"kid": "k1"})
    found = jwt.PyJWKSet.from_dict(jwks)["k1"]
    assert jwt.decode(token, found.key, algorithms=["ES256"])["sub"] == "x"


def test_the_bundle_value_is_immutable() -> None:
    bundle = build_spiffe_bundle([make_ca().cert], [_jwt_key("k1")])
    keys = bundle.keys
    keys.clear()
    assert len(bundle.keys) == 2
    with pytest.raises(AttributeError):
        bundle.sequence = 9  # type: ignore[misc]


def test_x5c_certificate_matches_the_entry_key() -> None:
    """The public parameters of an x509-svid entry are those of the certificate it carries."""
    root = make_ca("rsa", key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    entry = build_spiffe_bundle([root.cert]).keys[0]
    cert = x509.load_der_x509_certificate(base64.b64decode(entry["x5c"][0]))
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert _b64url_int(entry["n"]) == public.public_numbers().n
    assert isinstance(root.key, rsa.RSAPrivateKey)
    signature = root.key.sign(b"m", padding.PKCS1v15(), hashes.SHA256())
    public.verify(signature, b"m", padding.PKCS1v15(), hashes.SHA256())
