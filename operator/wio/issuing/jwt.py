# SPDX-License-Identifier: Apache-2.0
"""JWT signing keys, the key ring that rotates them, and minting of JWT-SVIDs and access tokens.

Minting is split in three pure steps so that every signer produces byte-identical tokens:

1. build the header and claims (``jwt_svid_header``/``jwt_svid_claims``,
   ``access_token_header``/``access_token_claims``): plain dicts, functions of ``now``;
2. make the JWS signing input (``jws_signing_input``): ``b64url(header) "." b64url(claims)``;
3. sign it and assemble the compact JWS (``sign_jws`` for a local key; a Vault Transit
   backend signs the same signing input remotely, converts its DER ECDSA signature with
   ``der_ecdsa_to_raw`` and calls ``assemble_jws``).

Headers carry only ``alg``, ``kid`` and ``typ``: nothing a verifier could be tempted to use
for key selection (``jwk``, ``jku``, ``x5c``...) ever leaves this module.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import Algorithm, get_default_algorithms

from wio.errors import ValidationError
from wio.issuing.keys import KeyType, PrivateKey, PublicKeyTypes, b64url, generate_private_key
from wio.models.claims import RESERVED_CLAIMS

#: Largest token we mint; equals the verifier's default limit so we never mint what we reject.
MAX_TOKEN_BYTES = 16 * 1024

_JTI_BYTES = 16  # 128 random bits: collisions are not a concern at any issuance rate
_MAX_TEXT = 256  # longest kid/jti/client_id/scope token we accept, in characters
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")


class JwtAlgorithm(enum.StrEnum):
    """JWS algorithms wio signs with; asymmetric only, so verifiers never hold a secret."""

    ES256 = "ES256"
    ES384 = "ES384"
    EDDSA = "EdDSA"
    RS256 = "RS256"
    PS256 = "PS256"

    @classmethod
    def parse(cls, value: str, *, field: str = "alg") -> JwtAlgorithm:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(a.value for a in cls)
            raise ValidationError(
                field, f"unknown JWT algorithm {value!r}; allowed: {allowed}"
            ) from None

    @classmethod
    def default_for(cls, key_type: KeyType) -> JwtAlgorithm:
        """The algorithm a key of ``key_type`` signs with unless told otherwise."""
        match key_type:
            case KeyType.ECDSAP256:
                return cls.ES256
            case KeyType.ECDSAP384:
                return cls.ES384
            case KeyType.ED25519:
                return cls.EDDSA
            case KeyType.RSA2048 | KeyType.RSA3072:
                return cls.RS256

    def accepts(self, key_type: KeyType) -> bool:
        """True when a key of ``key_type`` may sign with this algorithm."""
        match self:
            case JwtAlgorithm.ES256:
                return key_type is KeyType.ECDSAP256
            case JwtAlgorithm.ES384:
                return key_type is KeyType.ECDSAP384
            case JwtAlgorithm.EDDSA:
                return key_type is KeyType.ED25519
            case JwtAlgorithm.RS256 | JwtAlgorithm.PS256:
                return key_type.is_rsa

    @property
    def key_type(self) -> KeyType:
        """The key type ``SigningKey.generate`` makes for this algorithm."""
        match self:
            case JwtAlgorithm.ES256:
                return KeyType.ECDSAP256
            case JwtAlgorithm.ES384:
                return KeyType.ECDSAP384
            case JwtAlgorithm.EDDSA:
                return KeyType.ED25519
            case JwtAlgorithm.RS256 | JwtAlgorithm.PS256:
                return KeyType.RSA2048


# PyJWT's algorithm objects are stateless; build them once rather than per key or signature.
_PYJWT_ALGORITHMS: Mapping[str, Algorithm] = MappingProxyType(
    {alg.value: get_default_algorithms()[alg.value] for alg in JwtAlgorithm}
)


def pyjwt_algorithm(alg: JwtAlgorithm) -> Algorithm:
    """PyJWT's implementation of ``alg`` (shared, stateless)."""
    return _PYJWT_ALGORITHMS[alg.value]


def _uint_b64(value: int, length: int | None = None) -> str:
    if length is None:
        length = max(1, (value.bit_length() + 7) // 8)
    return b64url(value.to_bytes(length, "big"))


def _public_jwk_members(public_key: PublicKeyTypes) -> dict[str, str]:
    """The RFC 7517 public members of ``public_key``, exactly those RFC 7638 thumbprints hash.

    A local stand-in for ``wio.issuing.bundle.public_jwk`` so this module does not depend on
    it; both produce the same members for the same key.
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        size = (public_key.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}.get(public_key.curve.name)
        if crv is None:
            raise ValidationError("key", f"unsupported elliptic curve {public_key.curve.name}")
        return {
            "crv": crv,
            "kty": "EC",
            "x": _uint_b64(numbers.x, size),
            "y": _uint_b64(numbers.y, size),
        }
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    if isinstance(public_key, rsa.RSAPublicKey):
        rsa_numbers = public_key.public_numbers()
        return {"e": _uint_b64(rsa_numbers.e), "kty": "RSA", "n": _uint_b64(rsa_numbers.n)}
    raise ValidationError("key", f"unsupported key algorithm {type(public_key).__name__}")


def jwk_thumbprint(public_key: PublicKeyTypes) -> str:
    """The RFC 7638 SHA-256 JWK thumbprint of ``public_key``, unpadded base64url (43 chars)."""
    members = _public_jwk_members(public_key)
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


@dataclass(frozen=True, eq=False)
class SigningKey:
    """A private key bound to one JWS algorithm, with its ``kid`` and PyJWT objects cached.

    The ``kid`` is the key's RFC 7638 thumbprint, so it is stable across restarts and
    encodings and any verifier can recompute it from the published JWK. ``repr`` never
    shows key material.
    """

    private_key: PrivateKey
    alg: JwtAlgorithm = JwtAlgorithm.ES256
    kid: str = field(init=False)
    _jws_algorithm: Algorithm = field(init=False, repr=False)
    _public_jwk: Mapping[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.alg, JwtAlgorithm):
            raise ValidationError("alg", f"not a JwtAlgorithm: {self.alg!r}")
        if not self.alg.accepts(self.private_key.key_type):
            raise ValidationError(
                "alg",
                f"{self.alg.value} cannot sign with a {self.private_key.key_type.value} key",
            )
        public_key = self.private_key.public_key
        kid = jwk_thumbprint(public_key)
        jwk = {**_public_jwk_members(public_key), "kid": kid, "alg": self.alg.value, "use": "sig"}
        object.__setattr__(self, "kid", kid)
        object.__setattr__(self, "_jws_algorithm", pyjwt_algorithm(self.alg))
        object.__setattr__(self, "_public_jwk", MappingProxyType(jwk))

    @classmethod
    def for_key(cls, private_key: PrivateKey, alg: JwtAlgorithm | None = None) -> SigningKey:
        """Wrap ``private_key``, signing with ``alg`` or the default for its key type."""
        return cls(private_key, alg or JwtAlgorithm.default_for(private_key.key_type))

    @classmethod
    def generate(cls, alg: JwtAlgorithm = JwtAlgorithm.ES256) -> SigningKey:
        """A fresh key for ``alg`` from the OS random source (RSA-2048 for RS256/PS256)."""
        return cls(generate_private_key(alg.key_type), alg)

    def public_jwk(self) -> dict[str, str]:
        """The public JWK with ``kid``, ``alg`` and ``use: sig``; a fresh dict each call."""
        return dict(self._public_jwk)

    def sign(self, signing_input: bytes) -> bytes:
        """The raw JWS signature (R||S for ECDSA) over ``signing_input``."""
        return self._jws_algorithm.sign(signing_input, self.private_key.key)


@dataclass(frozen=True)
class RetiredKey:
    """A key that no longer signs but stays published until what it signed has expired."""

    key: SigningKey
    publish_until: dt.datetime

    def __post_init__(self) -> None:
        _require_aware(self.publish_until, "publish_until")


@dataclass(frozen=True)
class JwtKeyRing:
    """The active signing key, an optional staged next key and the retired keys still published.

    Rotation overlaps: a key staged with ``stage`` is published before it signs anything (so
    verifiers caching the JWKS learn it in time), and the key ``rotate`` retires stays
    published until every token it could have signed has expired.
    """

    active: SigningKey
    retired: tuple[RetiredKey, ...] = ()
    staged: SigningKey | None = None
    # When the staged key starts signing (an on-demand rollover); None: when told to.
    activate_staged_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "retired", tuple(self.retired))
        if self.activate_staged_at is not None:
            if self.staged is None:
                raise ValidationError("keyRing.activateAt", "set only while a key is staged")
            _require_aware(self.activate_staged_at, "activate_staged_at")
        kids = [k.kid for k in self.published_keys()]
        if len(kids) != len(set(kids)):
            raise ValidationError("keyRing", "a kid appears more than once in the key ring")

    def published_keys(self) -> tuple[SigningKey, ...]:
        """Every key a verifier must know: active, staged, then retired (newest first)."""
        staged = (self.staged,) if self.staged is not None else ()
        return (self.active, *staged, *(r.key for r in self.retired))

    def stage(self, next_key: SigningKey, activate_at: dt.datetime | None = None) -> JwtKeyRing:
        """A ring that publishes ``next_key`` without signing with it yet; with
        ``activate_at``, ``activation_due`` says when to ``rotate`` to it."""
        if any(k.kid == next_key.kid for k in self.published_keys()):
            raise ValidationError("keyRing", f"key {next_key.kid} is already in the ring")
        return JwtKeyRing(self.active, self.retired, next_key, activate_at)

    def schedule_rollover(self, new_key: SigningKey, activate_at: dt.datetime) -> JwtKeyRing:
        """An on-demand rollover: publish ``new_key`` now (a key already staged is kept: it
        has been published longer) and sign with it from ``activate_at``."""
        _require_aware(activate_at, "activate_at")
        if self.staged is not None:
            return JwtKeyRing(self.active, self.retired, self.staged, activate_at)
        return self.stage(new_key, activate_at)

    def activation_due(self, now: dt.datetime) -> bool:
        """True when a staged key's scheduled activation time has come."""
        return self.activate_staged_at is not None and now >= self.activate_staged_at

    def distrust(self, new_key: SigningKey) -> JwtKeyRing:
        """Emergency: sign with ``new_key`` from now on and stop publishing the active and
        staged keys at once (they were stored together); retired keys stay published."""
        if any(k.kid == new_key.kid for k in self.published_keys()):
            raise ValidationError("keyRing", f"key {new_key.kid} is already in the ring")
        return JwtKeyRing(new_key, self.retired)

    def rotate(
        self, new_key: SigningKey, now: dt.datetime, max_token_ttl: dt.timedelta
    ) -> JwtKeyRing:
        """A ring signing with ``new_key``; the old active key is published until
        ``now + max_token_ttl`` (rounded up to a whole second), the latest expiry of anything
        it signed. ``max_token_ttl`` should include the verifiers' clock-skew allowance.
        """
        _require_aware(now, "now")
        if max_token_ttl <= dt.timedelta(0):
            raise ValidationError("maxTokenTTL", "must be positive")
        if new_key.kid == self.active.kid:
            raise ValidationError("keyRing", "the new key is already the active key")
        if self.staged is not None and self.staged.kid != new_key.kid:
            raise ValidationError(
                "keyRing", f"key {self.staged.kid} is staged; rotate to it, not to another key"
            )
        until = _ceil_second(now + max_token_ttl)
        retired = tuple(r for r in self.retired if r.key.kid != new_key.kid)
        return JwtKeyRing(new_key, (RetiredKey(self.active, until), *retired), None)

    def prune(self, now: dt.datetime) -> JwtKeyRing:
        """A ring without retired keys whose tokens have all expired (``publish_until < now``)."""
        _require_aware(now, "now")
        kept = tuple(r for r in self.retired if r.publish_until >= now)
        if len(kept) == len(self.retired):
            return self
        return JwtKeyRing(self.active, kept, self.staged, self.activate_staged_at)

    def key_for(self, kid: str) -> SigningKey | None:
        """The published key with ``kid``, if any."""
        return next((k for k in self.published_keys() if k.kid == kid), None)

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWKS document (``{"keys": [...]}``) verifiers fetch."""
        return {"keys": [k.public_jwk() for k in self.published_keys()]}


@dataclass(frozen=True)
class MintedToken:
    """A signed token and the facts about it callers store; ``repr`` never shows the token."""

    token: str = field(repr=False)
    jti: str
    exp: dt.datetime
    kid: str

    def __post_init__(self) -> None:
        _require_aware(self.exp, "exp")


# --- pure building blocks -------------------------------------------------------------------


def jws_signing_input(header: Mapping[str, Any], claims: Mapping[str, Any]) -> bytes:
    """``b64url(header) "." b64url(claims)`` with compact JSON: what every signer signs."""
    return b".".join((_b64url_json(header).encode("ascii"), _b64url_json(claims).encode("ascii")))


def assemble_jws(signing_input: bytes, raw_signature: bytes) -> str:
    """The compact JWS: the signing input, a dot, and the raw signature in base64url."""
    if not raw_signature:
        raise ValidationError("signature", "empty signature")
    return f"{signing_input.decode('ascii')}.{b64url(raw_signature)}"


def der_ecdsa_to_raw(signature: bytes, key_size: int) -> bytes:
    """Convert a DER (ASN.1) ECDSA signature to JWS's fixed-length R||S form (RFC 7518 §3.4).

    ``key_size`` is the curve size in bits (256 for P-256, 384 for P-384); Vault Transit and
    most HSMs return DER, JWS wants each integer left-padded to the curve's byte length.
    """
    if key_size not in (256, 384, 521):
        raise ValidationError("keySize", f"unsupported ECDSA key size {key_size}")
    length = (key_size + 7) // 8
    try:
        r, s = decode_dss_signature(signature)
    except ValueError as err:
        raise ValidationError("signature", "not a DER ECDSA signature") from err
    if not (0 < r < 1 << key_size and 0 < s < 1 << key_size):
        raise ValidationError("signature", f"ECDSA signature does not fit a {key_size}-bit curve")
    return r.to_bytes(length, "big") + s.to_bytes(length, "big")


def sign_jws(key: SigningKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """Sign ``header`` and ``claims`` with a local key; the header must name this key."""
    if header.get("alg") != key.alg.value or header.get("kid") != key.kid:
        raise ValidationError("header", "alg and kid must be those of the signing key")
    signing_input = jws_signing_input(header, claims)
    if len(signing_input) >= MAX_TOKEN_BYTES:
        raise ValidationError("claims", f"the token would exceed {MAX_TOKEN_BYTES} bytes")
    token = assemble_jws(signing_input, key.sign(signing_input))
    if len(token) > MAX_TOKEN_BYTES:
        raise ValidationError("claims", f"the token would exceed {MAX_TOKEN_BYTES} bytes")
    return token


def jwt_svid_header(key: SigningKey) -> dict[str, str]:
    """The JWT-SVID header: ``alg``, ``kid`` and ``typ: JWT``, nothing else (JWT-SVID §3)."""
    return {"alg": key.alg.value, "kid": key.kid, "typ": "JWT"}


def access_token_header(key: SigningKey) -> dict[str, str]:
    """The RFC 9068 access-token header: ``typ: at+jwt`` keeps it from passing as an ID token."""
    return {"alg": key.alg.value, "kid": key.kid, "typ": "at+jwt"}


def new_jti() -> str:
    """128 random bits from ``secrets``, base64url: a JWT ID nobody can predict."""
    return b64url(secrets.token_bytes(_JTI_BYTES))


def jwt_svid_claims(
    spiffe_id: str,
    audiences: Sequence[str],
    ttl: dt.timedelta,
    now: dt.datetime,
    jti: str,
) -> dict[str, Any]:
    """The JWT-SVID claims ``sub``, ``aud`` (always a list), ``exp``, ``iat`` and ``jti``."""
    if not isinstance(spiffe_id, str) or not spiffe_id.startswith("spiffe://"):
        raise ValidationError("spiffeID", "must be a spiffe:// URI")
    iat, exp = _times(now, ttl)
    return {
        "sub": spiffe_id,
        "aud": _audiences(audiences),
        "exp": exp,
        "iat": iat,
        "jti": _text(jti, "jti"),
    }


def access_token_claims(
    issuer: str,
    subject: str,
    audience: str,
    scopes: Sequence[str],
    client_id: str,
    ttl: dt.timedelta,
    now: dt.datetime,
    jti: str,
    extra_claims: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The RFC 9068 claims; ``extra_claims`` may not touch any name in ``RESERVED_CLAIMS``.

    At least one scope is required: a scoped credential with no scope grants nothing and is
    more likely a mistake than a wish.
    """
    if not isinstance(issuer, str) or not issuer:
        raise ValidationError("issuer", "must be a non-empty string")
    if not isinstance(subject, str) or not subject:
        raise ValidationError("subject", "must be a non-empty string")
    if not isinstance(audience, str) or not audience:
        raise ValidationError("audience", "must be a non-empty string")
    iat, exp = _times(now, ttl)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": exp,
        "iat": iat,
        "jti": _text(jti, "jti"),
        "client_id": _text(client_id, "clientID"),
        "scope": _scope(scopes),
    }
    # No extra claim can overwrite a registered one: RESERVED_CLAIMS covers every key above.
    for name, value in (extra_claims or {}).items():
        claims[_extra_claim_name(name)] = _json_value(value, f"claims.{name}")
    return claims


def mint_jwt_svid(
    key: SigningKey,
    spiffe_id: str,
    audiences: Sequence[str],
    ttl: dt.timedelta,
    now: dt.datetime,
    jti: str | None = None,
) -> MintedToken:
    """Mint a JWT-SVID for ``spiffe_id``; pure given ``now`` and ``jti`` (random when None)."""
    jti = new_jti() if jti is None else jti
    claims = jwt_svid_claims(spiffe_id, audiences, ttl, now, jti)
    token = sign_jws(key, jwt_svid_header(key), claims)
    return MintedToken(token, jti, _from_timestamp(claims["exp"]), key.kid)


def mint_access_token(
    key: SigningKey,
    issuer: str,
    subject: str,
    audience: str,
    scopes: Sequence[str],
    client_id: str,
    ttl: dt.timedelta,
    now: dt.datetime,
    extra_claims: Mapping[str, Any] | None = None,
    jti: str | None = None,
) -> MintedToken:
    """Mint an RFC 9068 JWT access token; pure given ``now`` and ``jti`` (random when None)."""
    jti = new_jti() if jti is None else jti
    claims = access_token_claims(
        issuer, subject, audience, scopes, client_id, ttl, now, jti, extra_claims
    )
    token = sign_jws(key, access_token_header(key), claims)
    return MintedToken(token, jti, _from_timestamp(claims["exp"]), key.kid)


# --- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnverifiedToken:
    """The header and claims of a compact JWS, NOT verified: only for recognising a token wio
    wrote (its ``jti``, the ``kid`` that signed it). Never a basis for trusting anything."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]

    def string(self, part: Mapping[str, Any], name: str) -> str | None:
        value = part.get(name)
        return value if isinstance(value, str) and value else None

    @property
    def kid(self) -> str | None:
        return self.string(self.header, "kid")

    @property
    def jti(self) -> str | None:
        return self.string(self.claims, "jti")


def parse_unverified(token: bytes) -> UnverifiedToken | None:
    """Split and decode a compact JWS without checking its signature; None if malformed."""
    parts = token.split(b".")
    if len(parts) != 3 or len(token) > MAX_TOKEN_BYTES:
        return None
    try:
        header, claims = (
            json.loads(base64.urlsafe_b64decode(p + b"=" * (-len(p) % 4))) for p in parts[:2]
        )
    except (binascii.Error, ValueError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return UnverifiedToken(header, claims)


def _b64url_json(value: Mapping[str, Any]) -> str:
    # Compact separators: the signing input is what Vault Transit signs too, so it must not
    # depend on whitespace choices; allow_nan=False because NaN is not JSON.
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return b64url(text.encode("ascii"))


def _require_aware(when: dt.datetime, name: str) -> None:
    if not isinstance(when, dt.datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise ValidationError(name, "must be a timezone-aware datetime")


def _ceil_second(when: dt.datetime) -> dt.datetime:
    floor = when.replace(microsecond=0)
    return floor if floor == when else floor + dt.timedelta(seconds=1)


def _from_timestamp(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _times(now: dt.datetime, ttl: dt.timedelta) -> tuple[int, int]:
    _require_aware(now, "now")
    if not isinstance(ttl, dt.timedelta) or ttl < dt.timedelta(seconds=1):
        raise ValidationError("ttl", "must be at least one second")
    # NumericDates are whole seconds; truncating iat and adding whole seconds of TTL means a
    # token never lives longer than asked.
    iat = int(now.timestamp())
    return iat, iat + int(ttl.total_seconds())


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not _PRINTABLE.fullmatch(value) or len(value) > _MAX_TEXT:
        raise ValidationError(name, f"must be 1-{_MAX_TEXT} printable ASCII characters")
    return value


def _audiences(audiences: Sequence[str]) -> list[str]:
    if isinstance(audiences, str):
        # A bare string is a sequence of characters: ["o", "r", ...] is never what was meant.
        raise ValidationError("audiences", "must be a list of strings, not a string")
    result: list[str] = []
    for index, audience in enumerate(audiences):
        if not isinstance(audience, str) or not audience or len(audience) > 2048:
            raise ValidationError(f"audiences[{index}]", "must be a non-empty string")
        if audience not in result:
            result.append(audience)
    if not result:
        raise ValidationError("audiences", "at least one audience is required")
    return result


def _scope(scopes: Sequence[str]) -> str:
    if isinstance(scopes, str):
        raise ValidationError("scopes", "must be a list of strings, not a string")
    seen: list[str] = []
    for index, scope in enumerate(scopes):
        if (
            not isinstance(scope, str)
            or not _SCOPE_TOKEN.fullmatch(scope)
            or len(scope) > _MAX_TEXT
        ):
            raise ValidationError(f"scopes[{index}]", "not an RFC 6749 scope token")
        if scope not in seen:
            seen.append(scope)
    if not seen:
        raise ValidationError("scopes", "at least one scope is required")
    return " ".join(seen)


def _extra_claim_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > _MAX_TEXT or not name.isprintable():
        raise ValidationError("claims", "claim names must be 1-256 printable characters")
    if name.casefold() in RESERVED_CLAIMS:
        raise ValidationError(f"claims.{name}", "is a registered claim name and cannot be set")
    return name


def _json_value(value: Any, name: str) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValidationError(
            name, "must be a JSON value (string, number, bool, list, object)"
        ) from err
    return value
