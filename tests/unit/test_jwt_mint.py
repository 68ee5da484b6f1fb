# SPDX-License-Identifier: Apache-2.0
"""Minted JWT-SVIDs and access tokens carry exactly the header and claims asked for, verify
with PyJWT under an explicit algorithm list, and survive a signing-key rotation."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support import tokens
from wio.errors import ValidationError
from wio.issuing.jwt import (
    MAX_TOKEN_BYTES,
    JwtAlgorithm,
    JwtKeyRing,
    SigningKey,
    access_token_claims,
    access_token_header,
    assemble_jws,
    der_ecdsa_to_raw,
    jwk_thumbprint,
    jws_signing_input,
    jwt_svid_claims,
    jwt_svid_header,
    mint_access_token,
    mint_jwt_svid,
    sign_jws,
)
from wio.issuing.keys import KeyType, generate_private_key
from wio.issuing.verify_jwt import JwtVerifier, TokenProfile
from wio.models.claims import RESERVED_CLAIMS

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
SPIFFE_ID = "spiffe://example.org/ns/payments/sa/payments"
ISSUER = "https://wio.example.org"
TTL = dt.timedelta(minutes=5)
B64URL = re.compile(r"[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def keys() -> dict[JwtAlgorithm, SigningKey]:
    # RSA keys cost ~58 ms each: make one per algorithm for the whole module.
    return {alg: SigningKey.generate(alg) for alg in JwtAlgorithm}


@pytest.fixture
def es256(keys: dict[JwtAlgorithm, SigningKey]) -> SigningKey:
    return keys[JwtAlgorithm.ES256]


def _decode_part(token: str, index: int) -> dict[str, object]:
    segment = token.split(".")[index]
    return json.loads(pyjwt.utils.base64url_decode(segment))


def _pyjwt_decode(key: SigningKey, token: str, audience: str) -> dict[str, object]:
    """PyJWT as the independent oracle: key from the published JWK, one algorithm allowed."""
    public = pyjwt.PyJWK(key.public_jwk()).key
    return pyjwt.decode(
        token,
        key=public,
        algorithms=[key.alg.value],
        audience=audience,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )


# --- JWT-SVID ---------------------------------------------------------------------------------


def test_jwt_svid_header_has_only_alg_kid_and_typ(es256: SigningKey) -> None:
    minted = mint_jwt_svid(es256, SPIFFE_ID, ["orders-api"], TTL, NOW)
    assert _decode_part(minted.token, 0) == {"alg": "ES256", "kid": es256.kid, "typ": "JWT"}


def test_jwt_svid_claims_are_sub_aud_exp_iat_jti(es256: SigningKey) -> None:
    minted = mint_jwt_svid(es256, SPIFFE_ID, ["orders-api", "audit"], TTL, NOW, jti="fixed-jti")
    claims = _decode_part(minted.token, 1)
    iat = int(NOW.timestamp())
    assert claims == {
        "sub": SPIFFE_ID,
        "aud": ["orders-api", "audit"],
        "exp": iat + 300,
        "iat": iat,
        "jti": "fixed-jti",
    }
    assert minted.jti == "fixed-jti"
    assert minted.exp == NOW + TTL
    assert minted.kid == es256.kid


def test_jwt_svid_with_one_audience_still_has_an_aud_list(es256: SigningKey) -> None:
    minted = mint_jwt_svid(es256, SPIFFE_ID, ["orders-api"], TTL, NOW)
    assert _decode_part(minted.token, 1)["aud"] == ["orders-api"]


@pytest.mark.parametrize("alg", list(JwtAlgorithm), ids=str)
def test_every_algorithm_mints_a_jwt_svid_pyjwt_verifies(
    keys: dict[JwtAlgorithm, SigningKey], alg: JwtAlgorithm
) -> None:
    key = keys[alg]
    minted = mint_jwt_svid(key, SPIFFE_ID, ["orders-api"], TTL, NOW)
    claims = _pyjwt_decode(key, minted.token, "orders-api")
    assert claims["sub"] == SPIFFE_ID
    assert pyjwt.get_unverified_header(minted.token)["alg"] == alg.value


@pytest.mark.parametrize("alg", list(JwtAlgorithm), ids=str)
def test_every_algorithm_mints_a_jwt_svid_our_verifier_accepts(
    keys: dict[JwtAlgorithm, SigningKey], alg: JwtAlgorithm
) -> None:
    key = keys[alg]
    minted = mint_jwt_svid(key, SPIFFE_ID, ["orders-api"], TTL, NOW)
    verifier = JwtVerifier(
        [key.public_jwk()],
        audience="orders-api",
        profile=TokenProfile.JWT_SVID,
        trust_domain="example.org",
    )
    verified = verifier.verify(minted.token, NOW)
    assert verified.subject == SPIFFE_ID
    assert verified.kid == key.kid
    assert verified.expires_at == minted.exp


@pytest.mark.parametrize("alg", [JwtAlgorithm.ES256, JwtAlgorithm.ES384], ids=str)
def test_pyjwt_rejects_a_minted_token_under_another_algorithm(
    keys: dict[JwtAlgorithm, SigningKey], alg: JwtAlgorithm
) -> None:
    minted = mint_jwt_svid(keys[alg], SPIFFE_ID, ["orders-api"], TTL, NOW)
    public = pyjwt.PyJWK(keys[alg].public_jwk()).key
    with pytest.raises(pyjwt.InvalidAlgorithmError):
        pyjwt.decode(minted.token, key=public, algorithms=["RS256"], audience="orders-api")


def test_jti_is_128_random_bits_in_base64url(es256: SigningKey) -> None:
    jtis = {mint_jwt_svid(es256, SPIFFE_ID, ["a"], TTL, NOW).jti for _ in range(50)}
    assert len(jtis) == 50
    assert all(len(j) == 22 and B64URL.fullmatch(j) for j in jtis)


def test_minted_token_repr_does_not_show_the_token(es256: SigningKey) -> None:
    minted = mint_jwt_svid(es256, SPIFFE_ID, ["orders-api"], TTL, NOW)
    shown = repr(minted)
    assert minted.token not in shown
    assert minted.token.split(".")[2] not in shown
    assert minted.jti in shown


def test_minting_is_a_pure_function_of_its_inputs_for_deterministic_algorithms(
    keys: dict[JwtAlgorithm, SigningKey],
) -> None:
    key = keys[JwtAlgorithm.EDDSA]  # Ed25519 signatures are deterministic
    first = mint_jwt_svid(key, SPIFFE_ID, ["a"], TTL, NOW, jti="j")
    second = mint_jwt_svid(key, SPIFFE_ID, ["a"], TTL, NOW, jti="j")
    assert first.token == second.token


def test_sub_second_now_is_truncated_and_never_extends_the_ttl(es256: SigningKey) -> None:
    minted = mint_jwt_svid(es256, SPIFFE_ID, ["a"], TTL, NOW + dt.timedelta(microseconds=999_999))
    claims = _decode_part(minted.token, 1)
    assert claims["iat"] == int(NOW.timestamp())
    assert minted.exp == NOW + TTL


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"audiences": "orders-api"}, "audiences"),
        ({"audiences": []}, "audiences"),
        ({"audiences": [""]}, "audiences[0]"),
        ({"ttl": dt.timedelta(milliseconds=500)}, "ttl"),
        ({"now": dt.datetime(2026, 3, 1)}, "now"),  # naive on purpose
        ({"spiffe_id": "https://example.org/x"}, "spiffeID"),
        ({"jti": "has space"}, "jti"),
        ({"jti": ""}, "jti"),
    ],
)
def test_jwt_svid_inputs_are_validated(
    es256: SigningKey, kwargs: dict[str, object], field: str
) -> None:
    args: dict[str, object] = {
        "spiffe_id": SPIFFE_ID,
        "audiences": ["orders-api"],
        "ttl": TTL,
        "now": NOW,
        "jti": "j",
    }
    args.update(kwargs)
    with pytest.raises(ValidationError) as caught:
        mint_jwt_svid(es256, **args)  # type: ignore[arg-type]
    assert caught.value.field == field


# --- access tokens ----------------------------------------------------------------------------


def _access(key: SigningKey, **overrides: object) -> object:
    args: dict[str, object] = {
        "issuer": ISSUER,
        "subject": SPIFFE_ID,
        "audience": "orders-api",
        "scopes": ["orders:read", "audit:write"],
        "client_id": "payments",
        "ttl": dt.timedelta(minutes=15),
        "now": NOW,
    }
    args.update(overrides)
    return mint_access_token(key, **args)  # type: ignore[arg-type]


def test_access_token_follows_rfc9068(es256: SigningKey) -> None:
    minted = mint_access_token(
        es256,
        issuer=ISSUER,
        subject=SPIFFE_ID,
        audience="orders-api",
        scopes=["orders:read", "audit:write"],
        client_id="payments",
        ttl=dt.timedelta(minutes=15),
        now=NOW,
        extra_claims={"tenant": "acme", "limits": {"rps": 5}},
        jti="at-1",
    )
    assert _decode_part(minted.token, 0) == {"alg": "ES256", "kid": es256.kid, "typ": "at+jwt"}
    iat = int(NOW.timestamp())
    assert _decode_part(minted.token, 1) == {
        "iss": ISSUER,
        "sub": SPIFFE_ID,
        "aud": "orders-api",
        "exp": iat + 900,
        "iat": iat,
        "jti": "at-1",
        "client_id": "payments",
        "scope": "orders:read audit:write",
        "tenant": "acme",
        "limits": {"rps": 5},
    }
    claims = _pyjwt_decode(es256, minted.token, "orders-api")
    assert claims["scope"] == "orders:read audit:write"
    verifier = JwtVerifier(
        [es256.public_jwk()],
        audience="orders-api",
        issuer=ISSUER,
        profile=TokenProfile.ACCESS_TOKEN,
    )
    assert verifier.verify(minted.token, NOW).claims["tenant"] == "acme"


def test_duplicate_scopes_are_listed_once(es256: SigningKey) -> None:
    minted = _access(es256, scopes=["a", "b", "a"])
    assert _decode_part(minted.token, 1)["scope"] == "a b"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(RESERVED_CLAIMS))
def test_registered_claim_names_are_refused_in_extra_claims(es256: SigningKey, name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _access(es256, extra_claims={name: "attacker"})
    assert caught.value.field == f"claims.{name}"


@pytest.mark.parametrize("name", ["ISS", "Scope", "Client_ID", "GROUPS"])
def test_registered_claim_names_are_refused_in_any_case(es256: SigningKey, name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _access(es256, extra_claims={name: "x"})
    assert caught.value.field == f"claims.{name}"


def test_the_rfc9068_and_oidc_core_claims_are_all_reserved() -> None:
    required = {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "cnf"}
    required |= {"act", "may_act", "azp", "auth_time", "acr", "amr", "typ"}
    assert required <= RESERVED_CLAIMS


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"extra_claims": {"bad": {1, 2}}}, "claims.bad"),
        ({"extra_claims": {"nan": float("nan")}}, "claims.nan"),
        ({"extra_claims": {"": 1}}, "claims"),
        ({"scopes": []}, "scopes"),
        ({"scopes": "orders:read"}, "scopes"),
        ({"scopes": ["orders read"]}, "scopes[0]"),
        ({"scopes": ['say"hi']}, "scopes[0]"),
        ({"scopes": ["back\\slash"]}, "scopes[0]"),
        ({"issuer": ""}, "issuer"),
        ({"audience": ""}, "audience"),
        ({"client_id": ""}, "clientID"),
        ({"extra_claims": {"blob": "x" * MAX_TOKEN_BYTES}}, "claims"),
    ],
)
def test_access_token_inputs_are_validated(
    es256: SigningKey, overrides: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _access(es256, **overrides)
    assert caught.value.field == field


def test_claim_builders_are_pure_dicts_a_remote_signer_can_sign(es256: SigningKey) -> None:
    header = access_token_header(es256)
    claims = access_token_claims(
        ISSUER, SPIFFE_ID, "orders-api", ["orders:read"], "payments", TTL, NOW, "jti-1"
    )
    assert header == {"alg": "ES256", "kid": es256.kid, "typ": "at+jwt"}
    assert claims == access_token_claims(
        ISSUER, SPIFFE_ID, "orders-api", ["orders:read"], "payments", TTL, NOW, "jti-1"
    )
    assert jwt_svid_header(es256)["typ"] == "JWT"
    assert jwt_svid_claims(SPIFFE_ID, ["a"], TTL, NOW, "j")["aud"] == ["a"]


# --- JWS building blocks (the Vault Transit path) ---------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "bits", "alg"),
    [(KeyType.ECDSAP256, 256, "ES256"), (KeyType.ECDSAP384, 384, "ES384")],
)
def test_a_der_ecdsa_signature_converted_to_raw_makes_a_valid_jws(
    key_type: KeyType, bits: int, alg: str
) -> None:
    # Vault Transit returns DER; this is what its backend does with the same header+claims.
    private = generate_private_key(key_type)
    key = SigningKey(private, JwtAlgorithm(alg))
    header = jwt_svid_header(key)
    claims = jwt_svid_claims(SPIFFE_ID, ["orders-api"], TTL, NOW, "j")
    message = jws_signing_input(header, claims)
    assert isinstance(private.key, ec.EllipticCurvePrivateKey)
    hash_alg = pyjwt.algorithms.get_default_algorithms()[alg].hash_alg()  # type: ignore[attr-defined]
    der = private.key.sign(message, ec.ECDSA(hash_alg))
    raw = der_ecdsa_to_raw(der, bits)
    assert len(raw) == 2 * ((bits + 7) // 8)
    token = assemble_jws(message, raw)
    assert _pyjwt_decode(key, token, "orders-api")["sub"] == SPIFFE_ID


def test_signing_input_is_compact_json_in_base64url(es256: SigningKey) -> None:
    message = jws_signing_input({"alg": "ES256"}, {"a": 1})
    assert message == b"eyJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ"


def test_der_ecdsa_to_raw_refuses_garbage_and_oversized_integers() -> None:
    with pytest.raises(ValidationError):
        der_ecdsa_to_raw(b"\x30\x03junk", 256)
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    with pytest.raises(ValidationError):
        der_ecdsa_to_raw(encode_dss_signature(1 << 300, 1), 256)
    with pytest.raises(ValidationError):
        der_ecdsa_to_raw(encode_dss_signature(1, 1), 255)


def test_sign_jws_refuses_a_header_naming_another_key(es256: SigningKey) -> None:
    header = {**jwt_svid_header(es256), "kid": "someone-else"}
    with pytest.raises(ValidationError):
        sign_jws(es256, header, {"sub": SPIFFE_ID})


# --- signing keys -----------------------------------------------------------------------------


def test_kid_is_the_rfc7638_thumbprint_pyjwt_would_compute(es256: SigningKey) -> None:
    jwk = tokens.jwk_of(es256.private_key.public_key)
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    assert es256.kid == tokens.b64url(hashlib.sha256(canonical).digest())
    assert es256.kid == jwk_thumbprint(es256.private_key.public_key)


def test_rfc7638_example_thumbprint() -> None:
    # RFC 7638 §3.1: the example RSA key and its thumbprint.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW"
        "2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQ"
        "Fh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    public = pyjwt.PyJWK({"kty": "RSA", "n": n, "e": "AQAB"}).key
    assert jwk_thumbprint(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("alg", list(JwtAlgorithm), ids=str)
def test_public_jwk_carries_kid_alg_and_use_and_no_private_members(
    keys: dict[JwtAlgorithm, SigningKey], alg: JwtAlgorithm
) -> None:
    jwk = keys[alg].public_jwk()
    assert jwk["kid"] == keys[alg].kid
    assert jwk["alg"] == alg.value
    assert jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    independent = tokens.jwk_of(keys[alg].private_key.public_key)
    members = {"kty", "crv", "x", "y", "n", "e"}
    assert {k: v for k, v in jwk.items() if k in members} == {
        k: v for k, v in independent.items() if k in members
    }


def test_signing_key_refuses_an_algorithm_its_key_cannot_use() -> None:
    with pytest.raises(ValidationError) as caught:
        SigningKey(generate_private_key(KeyType.ECDSAP384), JwtAlgorithm.ES256)
    assert caught.value.field == "alg"


def test_for_key_picks_the_algorithm_of_the_key_type() -> None:
    assert SigningKey.for_key(generate_private_key(KeyType.ED25519)).alg is JwtAlgorithm.EDDSA
    assert SigningKey.for_key(generate_private_key(KeyType.ECDSAP384)).alg is JwtAlgorithm.ES384


def test_signing_key_repr_shows_no_key_material(es256: SigningKey) -> None:
    pem = es256.private_key.to_pkcs8_pem().decode()
    body = "".join(pem.splitlines()[1:-1])
    assert body[:40] not in repr(es256)


# --- key ring ---------------------------------------------------------------------------------


def test_rotation_keeps_the_old_kid_published_until_its_tokens_expire() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    ring = JwtKeyRing(old)
    max_ttl = dt.timedelta(hours=1)
    old_token = mint_jwt_svid(ring.active, SPIFFE_ID, ["orders-api"], max_ttl, NOW)

    rotated_at = NOW + dt.timedelta(minutes=10)
    ring = ring.rotate(new, rotated_at, max_ttl)
    assert ring.active is new
    assert [k["kid"] for k in ring.public_jwks()["keys"]] == [new.kid, old.kid]
    new_token = mint_jwt_svid(ring.active, SPIFFE_ID, ["orders-api"], max_ttl, rotated_at)

    verifier = JwtVerifier.from_jwks(ring.public_jwks(), audience="orders-api")
    assert verifier.verify(old_token.token, rotated_at).kid == old.kid
    assert verifier.verify(new_token.token, rotated_at).kid == new.kid

    # Still published at the last instant an old token could be alive...
    last = old_token.exp - dt.timedelta(seconds=1)
    assert old.kid in {k["kid"] for k in ring.prune(last).public_jwks()["keys"]}
    assert ring.prune(rotated_at + max_ttl).retired[0].key is old
    # ...and gone once every token it signed has expired.
    pruned = ring.prune(rotated_at + max_ttl + dt.timedelta(seconds=1))
    assert [k["kid"] for k in pruned.public_jwks()["keys"]] == [new.kid]


def test_publish_until_is_rounded_up_to_a_whole_second() -> None:
    ring = JwtKeyRing(SigningKey.generate())
    rotated = ring.rotate(
        SigningKey.generate(), NOW + dt.timedelta(microseconds=1), dt.timedelta(minutes=5)
    )
    assert rotated.retired[0].publish_until == NOW + dt.timedelta(minutes=5, seconds=1)


def test_a_staged_key_is_published_before_it_signs() -> None:
    active, upcoming = SigningKey.generate(), SigningKey.generate()
    ring = JwtKeyRing(active).stage(upcoming)
    assert ring.active is active
    assert {k["kid"] for k in ring.public_jwks()["keys"]} == {active.kid, upcoming.kid}
    rotated = ring.rotate(upcoming, NOW, TTL)
    assert rotated.active is upcoming
    assert rotated.staged is None


def test_rotating_past_a_staged_key_is_refused() -> None:
    ring = JwtKeyRing(SigningKey.generate()).stage(SigningKey.generate())
    with pytest.raises(ValidationError):
        ring.rotate(SigningKey.generate(), NOW, TTL)


def test_key_ring_refuses_duplicate_kids_and_bad_rotation_arguments() -> None:
    key = SigningKey.generate()
    with pytest.raises(ValidationError):
        JwtKeyRing(key).rotate(key, NOW, TTL)
    with pytest.raises(ValidationError):
        JwtKeyRing(key).stage(key)
    with pytest.raises(ValidationError):
        JwtKeyRing(key).rotate(SigningKey.generate(), NOW, dt.timedelta(0))
    with pytest.raises(ValidationError):
        JwtKeyRing(key).rotate(SigningKey.generate(), NOW.replace(tzinfo=None), TTL)
