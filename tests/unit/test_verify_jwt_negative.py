# SPDX-License-Identifier: Apache-2.0
"""The JWT verifier rejects every bad token in a negative matrix, each with the right reason,
and never quotes the token in its error. Good tokens made the same way pass, so each
rejection is caused by the one thing the case breaks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import tokens
from wio.errors import JWTVerificationError, ValidationError
from wio.issuing.jwt import JwtAlgorithm, SigningKey, mint_access_token, mint_jwt_svid
from wio.issuing.keys import KeyType, generate_private_key
from wio.issuing.verify_jwt import REASONS, JwtVerifier, TokenProfile

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
T = int(NOW.timestamp())
ISSUER = "https://issuer.example.org"
AUDIENCE = "orders-api"
SUB = "spiffe://example.org/ns/payments/sa/payments"

# Keys are made once at import: the cases below are data, built before any test runs.
OURS = SigningKey.generate(JwtAlgorithm.ES256)
OURS_P384 = SigningKey.generate(JwtAlgorithm.ES384)
ATTACKER = ec.generate_private_key(ec.SECP256R1())
OUR_EC = OURS.private_key.key
assert isinstance(OUR_EC, ec.EllipticCurvePrivateKey)

SVID = JwtVerifier(
    [OURS.public_jwk(), OURS_P384.public_jwk()],
    audience=AUDIENCE,
    issuer=ISSUER,
    profile=TokenProfile.JWT_SVID,
    trust_domain="example.org",
    revoked_jtis=frozenset({"revoked-jti"}),
)
ACCESS = JwtVerifier(
    [OURS.public_jwk()], audience=AUDIENCE, issuer=ISSUER, profile=TokenProfile.ACCESS_TOKEN
)
VERIFIERS = {"svid": SVID, "access": ACCESS}


def header(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"alg": "ES256", "kid": OURS.kid, "typ": "JWT"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": SUB,
        "aud": [AUDIENCE],
        "exp": T + 300,
        "iat": T,
        "jti": "jti-1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def access_header(**changes: Any) -> dict[str, Any]:
    return header(**{"typ": "at+jwt", **changes})


def access_claims(**changes: Any) -> dict[str, Any]:
    return claims(**{"aud": AUDIENCE, "client_id": "payments", "scope": "orders:read", **changes})


def signed(h: dict[str, Any] | None = None, c: dict[str, Any] | None = None) -> str:
    """Signed by our key, so only what the case changed can be wrong."""
    return tokens.sign(OUR_EC, "ES256", header() if h is None else h, claims() if c is None else c)


def attacker_signed(h: dict[str, Any]) -> str:
    return tokens.sign(ATTACKER, "ES256", h, claims())


def _attacker_cert() -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ATTACKER.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(ATTACKER, hashes.SHA256())
    )


ATTACKER_JWK = tokens.jwk_of(ATTACKER.public_key())
ATTACKER_X5C = tokens.b64url(_attacker_cert().public_bytes(serialization.Encoding.DER))
OUR_ENCODINGS = tokens.public_key_encodings(OURS.private_key.public_key, OURS.public_jwk())


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], str]
    reason: str
    verifier: str = "svid"


CASES: list[Case] = []


def case(name: str, reason: str, verifier: str = "svid") -> Callable[[Callable[[], str]], None]:
    def register(make: Callable[[], str]) -> None:
        CASES.append(Case(name, make, reason, verifier))

    return register


# --- alg: none, in every casing, unsigned and with a fake signature --------------------------

for _casing in ("none", "None", "NONE", "nOnE"):
    for _sig_name, _sig in (("unsigned", b""), ("fake-signature", b"\x01" * 64)):
        CASES.append(
            Case(
                f"alg-{_casing}-{_sig_name}",
                lambda c=_casing, s=_sig: tokens.forge(header(alg=c), claims(), s),
                "alg-none",
            )
        )
CASES.append(
    Case(
        "alg-none-without-kid",
        lambda: tokens.forge(header(alg="none", kid=...), claims()),
        "alg-none",
    )
)

# --- HMAC keyed with our public key (the classic key-confusion attack) -----------------------

for _alg in ("HS256", "HS384", "HS512"):
    for _form, _secret in OUR_ENCODINGS.items():
        CASES.append(
            Case(
                f"{_alg}-keyed-with-public-{_form}",
                lambda a=_alg, k=_secret: tokens.hmac_forge(a, k, header(alg=a), claims()),
                "alg-not-allowed",
            )
        )
CASES.append(
    Case(
        "HS256-without-kid",
        lambda: tokens.hmac_forge("HS256", OUR_ENCODINGS["pem"], header(alg="HS256", kid=...), {}),
        "alg-not-allowed",
    )
)


@case("alg-RS256-not-in-allowlist-for-ec-kid", "alg-not-allowed")
def _() -> str:
    return tokens.forge(header(alg="RS256"), claims(), b"\x00" * 256)


@case("alg-lowercase-es256", "alg-not-allowed")
def _() -> str:
    return tokens.forge(header(alg="es256"), claims(), b"\x00" * 64)


@case("alg-missing", "malformed")
def _() -> str:
    return signed(header(alg=...))


@case("alg-not-a-string", "malformed")
def _() -> str:
    return signed(header(alg=["ES256"]))


# --- kid ------------------------------------------------------------------------------------


@case("unknown-kid", "unknown-kid")
def _() -> str:
    return signed(header(kid="not-one-of-ours"))


@case("missing-kid", "unknown-kid")
def _() -> str:
    return signed(header(kid=...))


@case("kid-10KiB", "malformed")
def _() -> str:
    return signed(header(kid="k" * 10 * 1024))


@case("kid-control-characters", "malformed")
def _() -> str:
    return signed(header(kid="abc\x00\x1b[31m"))


@case("kid-not-a-string", "malformed")
def _() -> str:
    return signed(header(kid=7))


@case("kid-of-es384-key-with-es256-alg", "alg-not-allowed")
def _() -> str:
    return signed(header(kid=OURS_P384.kid))


@case("es256-kid-with-es384-alg", "alg-not-allowed")
def _() -> str:
    p384 = OURS_P384.private_key.key
    return tokens.sign(p384, "ES384", header(alg="ES384"), claims())  # type: ignore[arg-type]


# --- iss ------------------------------------------------------------------------------------

for _label, _iss in (
    ("prefix", "https://issuer.example"),
    ("suffix-extended", "https://issuer.example.org.evil.com"),
    ("trailing-slash", "https://issuer.example.org/"),
    ("substring", "issuer.example.org"),
    ("case-variant", "https://ISSUER.example.org"),
    ("superstring", "xhttps://issuer.example.orgx"),
    ("list-of-ours", [ISSUER]),
):
    CASES.append(Case(f"iss-{_label}", lambda i=_iss: signed(c=claims(iss=i)), "wrong-issuer"))


@case("iss-missing", "missing-claim")
def _() -> str:
    return signed(c=claims(iss=...))


# --- aud ------------------------------------------------------------------------------------


@case("aud-missing", "missing-claim")
def _() -> str:
    return signed(c=claims(aud=...))


@case("aud-other-value", "wrong-audience")
def _() -> str:
    return signed(c=claims(aud="billing-api"))


@case("aud-list-without-ours", "wrong-audience")
def _() -> str:
    return signed(c=claims(aud=["billing-api", "orders-api-v2", "orders"]))


@case("aud-case-variant", "wrong-audience")
def _() -> str:
    return signed(c=claims(aud=["Orders-API"]))


@case("aud-empty-list", "missing-claim")
def _() -> str:
    return signed(c=claims(aud=[]))


@case("aud-object", "wrong-audience")
def _() -> str:
    return signed(c=claims(aud={"orders-api": True}))


# --- exp, nbf, iat --------------------------------------------------------------------------


@case("exp-missing", "missing-claim")
def _() -> str:
    return signed(c=claims(exp=...))


@case("expired", "expired")
def _() -> str:
    return signed(c=claims(exp=T - 1, iat=T - 301))


@case("expired-exactly-now", "expired")
def _() -> str:
    return signed(c=claims(exp=T))


@case("expired-within-leeway", "expired")
def _() -> str:
    # exp is strict: the leeway is for clock skew on nbf/iat only.
    return signed(c=claims(exp=T - 10))


@case("exp-as-string", "malformed")
def _() -> str:
    return signed(c=claims(exp=str(T + 300)))


@case("exp-as-bool", "malformed")
def _() -> str:
    return signed(c=claims(exp=True))


@case("nbf-beyond-leeway", "not-yet-valid")
def _() -> str:
    return signed(c=claims(nbf=T + 31))


@case("iat-beyond-leeway", "not-yet-valid")
def _() -> str:
    return signed(c=claims(iat=T + 3600, exp=T + 7200))


@case("nbf-as-string", "malformed")
def _() -> str:
    return signed(c=claims(nbf="soon"))


# --- crit -----------------------------------------------------------------------------------


@case("crit-unknown-extension", "unknown-crit")
def _() -> str:
    return signed(header(crit=["urn:example:ext"], **{"urn:example:ext": 1}))


@case("crit-b64-false", "unknown-crit")
def _() -> str:
    return signed(header(crit=["b64"], b64=False))


@case("crit-not-a-list", "malformed")
def _() -> str:
    return signed(header(crit="exp"))


@case("crit-empty-list", "malformed")
def _() -> str:
    return signed(header(crit=[]))


# --- header-supplied keys are never used: signed by the attacker, with our kid ---------------

for _member, _value in (
    ("jwk", ATTACKER_JWK),
    ("jku", "https://attacker.example/jwks.json"),
    ("x5u", "https://attacker.example/cert.pem"),
    ("x5c", [ATTACKER_X5C]),
):
    CASES.append(
        Case(
            f"header-{_member}-attacker-key",
            lambda m=_member, v=_value: attacker_signed(header(**{m: v})),
            "bad-signature",
        )
    )


@case("header-jwk-attacker-key-attacker-kid", "unknown-kid")
def _() -> str:
    return attacker_signed(header(kid="attacker", jwk=ATTACKER_JWK))


# --- revocation, size, structure -------------------------------------------------------------


@case("revoked-jti", "revoked")
def _() -> str:
    return signed(c=claims(jti="revoked-jti"))


@case("oversize", "oversize")
def _() -> str:
    return signed(c=claims(pad="x" * 16 * 1024))


@case("two-segments", "malformed")
def _() -> str:
    return ".".join(signed().split(".")[:2])


@case("four-segments", "malformed")
def _() -> str:
    return signed() + ".AAAA"


@case("one-segment", "malformed")
def _() -> str:
    return signed().split(".")[0]


@case("empty-string", "malformed")
def _() -> str:
    return ""


@case("header-bad-base64", "malformed")
def _() -> str:
    _, payload, sig = signed().split(".")
    return f"eyJhbGciOiJFUzI1NiJ9!.{payload}.{sig}"


@case("header-padded-base64", "malformed")
def _() -> str:
    head, payload, sig = signed().split(".")
    return f"{head}==.{payload}.{sig}"


@case("signature-bad-base64", "malformed")
def _() -> str:
    head, payload, _ = signed().split(".")
    return f"{head}.{payload}.***"


@case("non-ascii", "malformed")
def _() -> str:
    return signed() + "é"


@case("header-not-json", "malformed")
def _() -> str:
    return tokens.forge_raw(b"{alg: ES256", json.dumps(claims()).encode(), b"\x00" * 64)


@case("header-json-array", "malformed")
def _() -> str:
    return tokens.forge_raw(json.dumps([header()]).encode(), b"{}", b"\x00" * 64)


@case("header-json-string", "malformed")
def _() -> str:
    return tokens.forge_raw(b'"ES256"', b"{}", b"\x00" * 64)


@case("header-duplicate-alg", "malformed")
def _() -> str:
    raw = f'{{"alg":"none","alg":"ES256","kid":"{OURS.kid}"}}'.encode()
    return tokens.sign_raw(OUR_EC, "ES256", raw, json.dumps(claims()).encode())


@case("header-nan", "malformed")
def _() -> str:
    raw = f'{{"alg":"ES256","kid":"{OURS.kid}","x":NaN}}'.encode()
    return tokens.sign_raw(OUR_EC, "ES256", raw, json.dumps(claims()).encode())


@case("claims-json-array", "malformed")
def _() -> str:
    return tokens.sign_raw(OUR_EC, "ES256", json.dumps(header()).encode(), b'["sub"]')


@case("claims-not-json", "malformed")
def _() -> str:
    return tokens.sign_raw(OUR_EC, "ES256", json.dumps(header()).encode(), b"sub=me")


@case("claims-duplicate-aud", "malformed")
def _() -> str:
    raw = json.dumps(claims())[:-1] + ', "aud": ["billing-api"]}'
    return tokens.sign_raw(OUR_EC, "ES256", json.dumps(header()).encode(), raw.encode())


# --- signature ------------------------------------------------------------------------------


@case("signed-by-another-key-with-our-kid", "bad-signature")
def _() -> str:
    return attacker_signed(header())


@case("tampered-payload", "bad-signature")
def _() -> str:
    return tokens.replace_claims(signed(), claims(sub="spiffe://example.org/ns/admin/sa/root"))


@case("truncated-signature", "bad-signature")
def _() -> str:
    head, payload, sig = signed().split(".")
    raw = pyjwt.utils.base64url_decode(sig)
    return f"{head}.{payload}.{tokens.b64url(raw[:-1])}"


@case("signature-non-canonical-base64", "malformed")
def _() -> str:
    # 64 bytes encode to 86 characters, the last carrying 4 unused bits that must be zero.
    head, payload, sig = signed().split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(sig[-1]) | 1]
    return f"{head}.{payload}.{sig[:-1]}{last}"


@case("empty-signature", "bad-signature")
def _() -> str:
    head, payload, _ = signed().split(".")
    return f"{head}.{payload}."


@case("signature-of-another-token", "bad-signature")
def _() -> str:
    other = signed(c=claims(jti="other"))
    head, payload, _ = signed().split(".")
    return f"{head}.{payload}.{other.split('.')[2]}"


# --- typ ------------------------------------------------------------------------------------


@case("svid-with-typ-at+jwt", "wrong-typ")
def _() -> str:
    return signed(header(typ="at+jwt"))


@case("svid-with-typ-not-a-string", "wrong-typ")
def _() -> str:
    return signed(header(typ=1))


@case("access-token-with-typ-JWT", "wrong-typ", "access")
def _() -> str:
    return signed(access_header(typ="JWT"), access_claims())


@case("access-token-without-typ", "wrong-typ", "access")
def _() -> str:
    return signed(access_header(typ=...), access_claims())


@case("access-token-missing-client_id", "missing-claim", "access")
def _() -> str:
    return signed(access_header(), access_claims(client_id=...))


@case("access-token-missing-jti", "missing-claim", "access")
def _() -> str:
    return signed(access_header(), access_claims(jti=...))


@case("access-token-missing-iat", "missing-claim", "access")
def _() -> str:
    return signed(access_header(), access_claims(iat=...))


# --- JWT-SVID subject -----------------------------------------------------------------------


@case("sub-foreign-trust-domain", "foreign-trust-domain")
def _() -> str:
    return signed(c=claims(sub="spiffe://evil.example/ns/payments/sa/payments"))


@case("sub-trust-domain-suffix", "foreign-trust-domain")
def _() -> str:
    return signed(c=claims(sub="spiffe://example.org.evil/ns/payments/sa/payments"))


@case("sub-not-a-spiffe-id", "bad-subject")
def _() -> str:
    return signed(c=claims(sub="payments"))


@case("sub-https-uri", "bad-subject")
def _() -> str:
    return signed(c=claims(sub="https://example.org/ns/payments/sa/payments"))


@case("sub-trust-domain-id", "bad-subject")
def _() -> str:
    return signed(c=claims(sub="spiffe://example.org"))


@case("sub-dot-dot-segment", "bad-subject")
def _() -> str:
    return signed(c=claims(sub="spiffe://example.org/ns/../sa/payments"))


@case("sub-upper-case-scheme", "bad-subject")
def _() -> str:
    return signed(c=claims(sub="SPIFFE://example.org/ns/payments/sa/payments"))


@case("sub-missing", "missing-claim")
def _() -> str:
    return signed(c=claims(sub=...))


@case("sub-not-a-string", "bad-subject")
def _() -> str:
    return signed(c=claims(sub=["spiffe://example.org/ns/payments/sa/payments"]))


# --- the tests ------------------------------------------------------------------------------


def test_the_matrix_is_large_and_uses_only_documented_reasons() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.reason for c in CASES} <= REASONS


@pytest.mark.parametrize("bad", CASES, ids=[c.name for c in CASES])
def test_bad_token_is_rejected_with_the_right_reason(bad: Case) -> None:
    token = bad.make()
    with pytest.raises(JWTVerificationError) as caught:
        VERIFIERS[bad.verifier].verify(token, NOW)
    assert caught.value.reason == bad.reason, str(caught.value)
    message = str(caught.value)
    assert token not in message or not token
    for segment in token.split("."):
        if len(segment) >= 16:
            assert segment not in message


def test_good_tokens_built_the_same_way_pass() -> None:
    assert SVID.verify(signed(), NOW).subject == SUB
    assert ACCESS.verify(signed(access_header(), access_claims()), NOW).jti == "jti-1"
    assert ACCESS.verify(signed(access_header(typ="application/AT+JWT"), access_claims()), NOW)
    assert SVID.verify(signed(header(typ=...)), NOW)
    assert SVID.verify(signed(header(typ="jose")), NOW)
    assert SVID.verify(signed(c=claims(aud=AUDIENCE)), NOW)


def test_leeway_covers_clock_skew_on_nbf_and_iat_only() -> None:
    assert SVID.verify(signed(c=claims(nbf=T + 30, iat=T + 30)), NOW)
    assert SVID.verify(signed(c=claims(exp=T + 1)), NOW)


def test_a_token_header_keys_are_ignored_even_when_ours() -> None:
    # Embedding our own public key changes nothing: the pinned key verifies it.
    token = signed(header(jwk=OURS.public_jwk(), jku="https://attacker.example/jwks"))
    assert SVID.verify(token, NOW).kid == OURS.kid


def test_jwt_svid_without_issuer_configured_does_not_need_iss() -> None:
    verifier = JwtVerifier([OURS.public_jwk()], audience=AUDIENCE, profile=TokenProfile.JWT_SVID)
    minted = mint_jwt_svid(OURS, SUB, [AUDIENCE], dt.timedelta(minutes=5), NOW)
    assert verifier.verify(minted.token, NOW).subject == SUB


def test_revocation_can_be_added_to_a_verifier() -> None:
    minted = mint_access_token(
        OURS, ISSUER, SUB, AUDIENCE, ["orders:read"], "payments", dt.timedelta(minutes=5), NOW
    )
    assert ACCESS.verify(minted.token, NOW)
    with pytest.raises(JWTVerificationError) as caught:
        ACCESS.with_revoked([minted.jti]).verify(minted.token, NOW)
    assert caught.value.reason == "revoked"


def test_a_rejected_minted_token_never_appears_in_the_message() -> None:
    minted = mint_jwt_svid(OURS, SUB, [AUDIENCE], dt.timedelta(minutes=5), NOW)
    verifier = JwtVerifier([OURS.public_jwk()], audience=AUDIENCE, profile=TokenProfile.JWT_SVID)
    with pytest.raises(JWTVerificationError) as caught:
        verifier.verify(minted.token, NOW + dt.timedelta(hours=1))
    assert caught.value.reason == "expired"
    assert minted.token not in str(caught.value)


# --- verifier configuration is validated -----------------------------------------------------


def _hmac_jwk() -> dict[str, Any]:
    return {"kty": "oct", "k": tokens.b64url(b"secret"), "kid": "h", "alg": "HS256"}


@pytest.mark.parametrize(
    ("jwks", "kwargs"),
    [
        ([{**OURS.public_jwk(), "alg": ...}], {}),  # alg not pinned
        ([{k: v for k, v in OURS.public_jwk().items() if k != "kid"}], {}),
        ([{**OURS.public_jwk(), "alg": "ES384"}], {}),  # curve does not fit alg
        ([{**OURS.public_jwk(), "alg": "HS256"}], {}),
        ([_hmac_jwk()], {}),
        ([{**OURS.public_jwk(), "use": "enc"}], {}),
        ([OURS.public_jwk(), OURS.public_jwk()], {}),  # duplicate kid
        ([{**OURS.public_jwk(), "d": "AAAA"}], {}),  # private member
        ([OURS.public_jwk()], {"audience": ""}),
        ([OURS.public_jwk()], {"profile": TokenProfile.ACCESS_TOKEN}),  # no issuer
        ([OURS.public_jwk()], {"trust_domain": "Example.ORG"}),
        ([OURS.public_jwk()], {"leeway": dt.timedelta(hours=1)}),
        ([OURS.public_jwk()], {"max_size": 0}),
    ],
)
def test_verifier_configuration_is_validated(
    jwks: list[dict[str, Any]], kwargs: dict[str, Any]
) -> None:
    cleaned = [{k: v for k, v in jwk.items() if v is not ...} for jwk in jwks]
    settings: dict[str, Any] = {"audience": AUDIENCE}
    settings.update(kwargs)
    with pytest.raises(ValidationError):
        JwtVerifier(cleaned, **settings)


def test_verifier_keeps_an_rsa_and_eddsa_key_pinned_to_their_algorithms() -> None:
    rsa_key = SigningKey(generate_private_key(KeyType.RSA2048), JwtAlgorithm.PS256)
    ed_key = SigningKey.generate(JwtAlgorithm.EDDSA)
    verifier = JwtVerifier([rsa_key.public_jwk(), ed_key.public_jwk()], audience=AUDIENCE)
    ps = mint_jwt_svid(rsa_key, SUB, [AUDIENCE], dt.timedelta(minutes=5), NOW)
    assert verifier.verify(ps.token, NOW).kid == rsa_key.kid
    # The same RSA key signing RS256 is refused: the kid is pinned to PS256.
    rs_private = rsa_key.private_key.key
    forged = tokens.sign(rs_private, "RS256", header(alg="RS256", kid=rsa_key.kid), claims())  # type: ignore[arg-type]
    with pytest.raises(JWTVerificationError) as caught:
        verifier.verify(forged, NOW)
    assert caught.value.reason == "alg-not-allowed"
