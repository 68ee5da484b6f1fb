# SPDX-License-Identifier: Apache-2.0
"""Verifying JWT-SVIDs and access tokens against pinned public keys, as a function of ``now``.

The verifier reads the JOSE header itself and chooses the key from its own configuration
only: each trusted JWK is pinned to one algorithm, the header's ``alg`` must equal it, and
header-supplied keys (``jwk``, ``jku``, ``x5u``, ``x5c``) are never consulted, so a token
that only verifies under a key it carries fails as ``bad-signature``. PyJWT then checks the
signature with that key and an explicit one-algorithm list; the time checks are ours,
because PyJWT reads the wall clock and wio decides against an injected ``now``.

Time rules: ``exp`` is strict (a token is dead at ``exp``, RFC 7519 §4.1.4). The leeway
covers only clock skew of the minter running ahead of us, so it applies to ``nbf`` and
``iat`` in the future and never extends a token's life: wio rotates tokens at half their
lifetime, so a holder never needs grace at the end, and a revoked key's tokens must die on
time.

Every rejection is a ``JWTVerificationError`` whose ``reason`` is one of ``REASONS``; no
message ever contains the token, and attacker-controlled values are shown truncated.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.exceptions import InvalidSubjectError

from wio.errors import InvalidSpiffeID, JWTVerificationError, ValidationError
from wio.issuing.jwt import MAX_TOKEN_BYTES, JwtAlgorithm
from wio.issuing.keys import b64url
from wio.models.spiffe import SpiffeID, TrustDomain

#: The stable ``reason`` tokens ``verify`` raises with (metric labels, tests, audit lines).
REASONS: frozenset[str] = frozenset(
    {
        "oversize",  # longer than max_size
        "malformed",  # not a compact JWS of JSON objects, or a claim of the wrong type
        "alg-none",  # alg "none" in any casing
        "alg-not-allowed",  # alg not asymmetric, or not the alg pinned for the kid
        "unknown-crit",  # a crit header: we implement no JWS extension
        "unknown-kid",  # kid missing or not among the trusted keys
        "wrong-typ",  # typ does not fit the configured profile
        "bad-signature",  # the signature does not verify with the pinned key
        "missing-claim",  # a required claim is absent
        "expired",  # now >= exp
        "not-yet-valid",  # nbf or iat beyond now + leeway
        "wrong-issuer",  # iss differs from the configured issuer (exact string equality)
        "wrong-audience",  # aud does not contain the configured audience (exact equality)
        "bad-subject",  # sub is not a SPIFFE workload ID where one is required
        "foreign-trust-domain",  # sub's trust domain is not the configured one
        "revoked",  # jti is on the revocation list
    }
)

_MAX_KID = 256
_KID = re.compile(rf"[\x20-\x7e]{{1,{_MAX_KID}}}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_MAX_LEEWAY = dt.timedelta(minutes=5)
_ALGORITHMS = frozenset(a.value for a in JwtAlgorithm)
_PYJWT_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    # Most specific first: InvalidSignatureError is a DecodeError.
    (pyjwt.InvalidSignatureError, "bad-signature"),
    (pyjwt.InvalidAlgorithmError, "alg-not-allowed"),
    (pyjwt.MissingRequiredClaimError, "missing-claim"),
    (pyjwt.InvalidAudienceError, "wrong-audience"),
    (pyjwt.InvalidIssuerError, "wrong-issuer"),
    (InvalidSubjectError, "bad-subject"),
    (pyjwt.ExpiredSignatureError, "expired"),
    (pyjwt.ImmatureSignatureError, "not-yet-valid"),
    (pyjwt.InvalidKeyError, "bad-signature"),
    (pyjwt.PyJWTError, "malformed"),
)


class TokenProfile(enum.StrEnum):
    """Which kind of token a verifier accepts; decides the ``typ`` and the required claims."""

    JWT_SVID = "jwt-svid"
    ACCESS_TOKEN = "access-token"  # noqa: S105 - a profile name, not a secret


# typ values each profile accepts, compared case-insensitively (media types are).
_TYPES: Mapping[TokenProfile, frozenset[str]] = MappingProxyType(
    {
        # JWT-SVID §3: "if present, MUST be set to either JWT or JOSE".
        TokenProfile.JWT_SVID: frozenset({"jwt", "jose"}),
        # RFC 9068 §2.1: at+jwt, and the full media type is equivalent.
        TokenProfile.ACCESS_TOKEN: frozenset({"at+jwt", "application/at+jwt"}),
    }
)
_REQUIRED: Mapping[TokenProfile | None, tuple[str, ...]] = MappingProxyType(
    {
        None: ("exp", "aud"),
        TokenProfile.JWT_SVID: ("exp", "aud", "sub"),
        # RFC 9068 §2.2 makes all of these REQUIRED.
        TokenProfile.ACCESS_TOKEN: ("exp", "aud", "iss", "sub", "iat", "jti", "client_id"),
    }
)


@dataclass(frozen=True)
class _TrustedKey:
    kid: str
    alg: JwtAlgorithm
    jwk: pyjwt.PyJWK = field(repr=False)


@dataclass(frozen=True)
class VerifiedToken:
    """A token that passed every check: its claims, its header and the kid that verified it."""

    claims: Mapping[str, Any]
    header: Mapping[str, Any]
    kid: str

    @property
    def subject(self) -> str | None:
        sub = self.claims.get("sub")
        return sub if isinstance(sub, str) else None

    @property
    def jti(self) -> str | None:
        jti = self.claims.get("jti")
        return jti if isinstance(jti, str) else None

    @property
    def expires_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.claims["exp"], dt.UTC)


@dataclass(frozen=True)
class JwtVerifier:
    """Verifies tokens against trusted public JWKs, each pinned to its ``alg``.

    ``audience`` must equal one entry of the token's ``aud``. ``issuer``, when set, must
    equal ``iss`` exactly (required for access tokens, optional for JWT-SVIDs as their spec
    makes ``iss`` optional). ``trust_domain``, when set, is the only trust domain a ``sub``
    may come from. ``profile`` selects the ``typ`` and required claims; ``None`` checks
    neither beyond ``exp`` and ``aud``.
    """

    jwks: Sequence[Mapping[str, Any]]
    audience: str
    issuer: str | None = None
    profile: TokenProfile | None = None
    trust_domain: str | None = None
    leeway: dt.timedelta = dt.timedelta(seconds=30)
    max_size: int = MAX_TOKEN_BYTES
    revoked_jtis: frozenset[str] = frozenset()
    _keys: Mapping[str, _TrustedKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.audience, str) or not self.audience:
            raise ValidationError("audience", "must be a non-empty string")
        if self.issuer is not None and (not isinstance(self.issuer, str) or not self.issuer):
            raise ValidationError("issuer", "must be a non-empty string when set")
        if self.profile is TokenProfile.ACCESS_TOKEN and self.issuer is None:
            raise ValidationError("issuer", "access tokens always carry iss (RFC 9068); set it")
        if self.profile is not None and not isinstance(self.profile, TokenProfile):
            raise ValidationError("profile", f"not a TokenProfile: {self.profile!r}")
        if self.trust_domain is not None:
            try:
                TrustDomain(self.trust_domain)
            except InvalidSpiffeID as err:
                raise ValidationError("trustDomain", err.detail) from err
        if not dt.timedelta(0) <= self.leeway <= _MAX_LEEWAY:
            raise ValidationError("leeway", f"must be between 0 and {_MAX_LEEWAY}")
        if not 0 < self.max_size <= 1024 * 1024:
            raise ValidationError("maxSize", "must be between 1 byte and 1 MiB")
        object.__setattr__(self, "revoked_jtis", frozenset(self.revoked_jtis))
        keys: dict[str, _TrustedKey] = {}
        for index, jwk in enumerate(self.jwks):
            trusted = _trusted_key(jwk, f"jwks[{index}]")
            if trusted.kid in keys:
                raise ValidationError(f"jwks[{index}].kid", f"duplicate kid {trusted.kid!r}")
            keys[trusted.kid] = trusted
        object.__setattr__(self, "jwks", tuple(MappingProxyType(dict(j)) for j in self.jwks))
        object.__setattr__(self, "_keys", MappingProxyType(keys))

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any], **settings: Any) -> JwtVerifier:
        """Build from a JWKS document (``{"keys": [...]}``); ``settings`` are the fields."""
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise ValidationError("jwks.keys", "a JWKS document needs a 'keys' list")
        return cls(keys, **settings)

    def with_revoked(self, jtis: Iterable[str]) -> JwtVerifier:
        """A verifier that also rejects the given JWT IDs."""
        return replace(self, revoked_jtis=self.revoked_jtis | frozenset(jtis))

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def verify(self, token: str, now: dt.datetime) -> VerifiedToken:
        """Return the verified token, or raise ``JWTVerificationError`` with a stable reason."""
        if not isinstance(now, dt.datetime) or now.utcoffset() is None:
            raise ValidationError("now", "must be a timezone-aware datetime")
        if not isinstance(token, str):
            raise JWTVerificationError("malformed", "token must be a string")
        # Size first, before any decoding work an attacker could inflate.
        if len(token) > self.max_size:
            raise JWTVerificationError(
                "oversize", f"token is {len(token)} characters; the limit is {self.max_size}"
            )
        if not token.isascii():
            raise JWTVerificationError("malformed", "token contains non-ASCII characters")
        segments = token.split(".")
        if len(segments) != 3:
            raise JWTVerificationError(
                "malformed", f"a compact JWS has 3 segments, this token has {len(segments)}"
            )
        header_segment, claims_segment, signature_segment = segments
        # The header decides everything about the key, so it is judged first, alone.
        header = _json_object(header_segment, "header")
        key = self._select_key(header)
        self._check_typ(header)
        # Read the claims ourselves too: PyJWT tolerates duplicate names (the last one wins)
        # and NaN, and we refuse both rather than guess which was meant.
        claims = _json_object(claims_segment, "claims")
        _b64decode(signature_segment, "signature")
        self._verify_signature(token, key)
        self._check_claims(claims, now)
        return VerifiedToken(MappingProxyType(claims), MappingProxyType(header), key.kid)

    # --- steps, in the order they run -------------------------------------------------------

    def _select_key(self, header: Mapping[str, Any]) -> _TrustedKey:
        alg = header.get("alg")
        if not isinstance(alg, str) or not alg:
            raise JWTVerificationError("malformed", "header has no alg string")
        if alg.strip().casefold() == "none":
            raise JWTVerificationError("alg-none", "unsigned tokens are never accepted")
        if alg not in _ALGORITHMS:
            # HS* lands here: a verifier holding only public keys must never treat one as
            # an HMAC secret.
            raise JWTVerificationError("alg-not-allowed", f"alg {_show(alg)} is not allowed")
        if "crit" in header:
            crit = header["crit"]
            if not isinstance(crit, list) or not crit or not all(isinstance(c, str) for c in crit):
                raise JWTVerificationError("malformed", "crit must be a non-empty list of names")
            raise JWTVerificationError(
                "unknown-crit", f"critical extensions {_show(crit)} are not understood"
            )
        if "kid" not in header:
            raise JWTVerificationError("unknown-kid", "header has no kid")
        kid = header["kid"]
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            raise JWTVerificationError(
                "malformed", f"kid must be 1-{_MAX_KID} printable ASCII characters"
            )
        key = self._keys.get(kid)
        if key is None:
            raise JWTVerificationError("unknown-kid", f"kid {_show(kid)} is not trusted")
        if alg != key.alg.value:
            raise JWTVerificationError(
                "alg-not-allowed", f"kid {_show(kid)} is pinned to {key.alg.value}, not {alg}"
            )
        return key

    def _check_typ(self, header: Mapping[str, Any]) -> None:
        if self.profile is None:
            return
        typ = header.get("typ")
        if typ is None and self.profile is TokenProfile.JWT_SVID:
            return
        if not isinstance(typ, str) or typ.casefold() not in _TYPES[self.profile]:
            raise JWTVerificationError(
                "wrong-typ", f"typ {_show(typ)} is not accepted for a {self.profile.value}"
            )

    def _verify_signature(self, token: str, key: _TrustedKey) -> None:
        required = list(_REQUIRED[self.profile])
        if self.issuer is not None and "iss" not in required:
            required.append("iss")
        options: pyjwt.types.Options = {
            "verify_signature": True,
            "enforce_minimum_key_length": True,
            # PyJWT compares against the wall clock; ours are checked against `now` below.
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_aud": True,
            "verify_iss": self.issuer is not None,
            "verify_sub": True,
            "verify_jti": True,
            "strict_aud": False,
            "require": required,
        }
        try:
            pyjwt.decode(
                token,
                key=key.jwk,
                algorithms=[key.alg.value],
                options=options,
                audience=self.audience,
                issuer=self.issuer,
            )
        except pyjwt.PyJWTError as err:
            raise _translate(err) from None

    def _check_claims(self, claims: Mapping[str, Any], now: dt.datetime) -> None:
        for name in _REQUIRED[self.profile]:
            if claims.get(name) is None:
                raise JWTVerificationError("missing-claim", f"{name} is required")
        instant = now.timestamp()
        leeway = self.leeway.total_seconds()
        exp = _numeric_date(claims, "exp")
        if exp is None:
            raise JWTVerificationError("missing-claim", "exp is required")
        if instant >= exp:
            raise JWTVerificationError("expired", "token has expired")
        nbf = _numeric_date(claims, "nbf")
        if nbf is not None and nbf > instant + leeway:
            raise JWTVerificationError("not-yet-valid", "nbf is in the future")
        iat = _numeric_date(claims, "iat")
        if iat is not None and iat > instant + leeway:
            raise JWTVerificationError("not-yet-valid", "iat is in the future")

        if self.issuer is not None:
            iss = claims.get("iss")
            if iss is None:
                raise JWTVerificationError("missing-claim", "iss is required")
            # Exact equality: no prefix, substring, case or normalisation games.
            if not isinstance(iss, str) or iss != self.issuer:
                raise JWTVerificationError("wrong-issuer", f"iss {_show(iss)} is not trusted")

        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise JWTVerificationError("wrong-audience", "aud must be a string or list of strings")
        if self.audience not in audiences:
            raise JWTVerificationError("wrong-audience", f"token is not for {self.audience!r}")

        if self.profile is TokenProfile.JWT_SVID or self.trust_domain is not None:
            self._check_spiffe_subject(claims.get("sub"))
        elif "sub" in claims and not isinstance(claims["sub"], str):
            raise JWTVerificationError("bad-subject", "sub must be a string")
        if self.profile is TokenProfile.ACCESS_TOKEN and not isinstance(
            claims.get("client_id"), str
        ):
            raise JWTVerificationError("malformed", "client_id must be a string")

        jti = claims.get("jti")
        if jti is not None:
            if not isinstance(jti, str):
                raise JWTVerificationError("malformed", "jti must be a string")
            if jti in self.revoked_jtis:
                raise JWTVerificationError("revoked", f"jti {_show(jti)} has been revoked")

    def _check_spiffe_subject(self, sub: object) -> None:
        if not isinstance(sub, str):
            raise JWTVerificationError("bad-subject", "sub must be a SPIFFE ID")
        try:
            spiffe_id = SpiffeID.parse(sub, field="sub")
        except InvalidSpiffeID as err:
            raise JWTVerificationError(
                "bad-subject", f"sub is not a SPIFFE ID: {err.detail}"
            ) from None
        if spiffe_id.is_trust_domain_id:
            raise JWTVerificationError("bad-subject", "sub is a trust domain ID, not a workload")
        if self.trust_domain is not None and spiffe_id.trust_domain.name != self.trust_domain:
            raise JWTVerificationError(
                "foreign-trust-domain",
                f"sub is in trust domain {_show(spiffe_id.trust_domain.name)}, "
                f"not {self.trust_domain!r}",
            )


# --- helpers ---------------------------------------------------------------------------------


def _trusted_key(jwk: Mapping[str, Any], where: str) -> _TrustedKey:
    """Validate one trusted JWK and parse it once, so ``verify`` never re-parses keys."""
    if not isinstance(jwk, Mapping):
        raise ValidationError(where, "a JWK must be a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise ValidationError(f"{where}.kid", f"needs a kid of 1-{_MAX_KID} printable characters")
    alg_name = jwk.get("alg")
    if not isinstance(alg_name, str):
        raise ValidationError(f"{where}.alg", "each trusted key must pin its alg")
    alg = JwtAlgorithm.parse(alg_name, field=f"{where}.alg")
    if jwk.get("kty") not in ("EC", "RSA", "OKP"):
        raise ValidationError(f"{where}.kty", "only asymmetric keys (EC, RSA, OKP) are trusted")
    if any(member in jwk for member in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise ValidationError(where, "a trusted key must be public; it has private members")
    if jwk.get("use", "sig") != "sig":
        raise ValidationError(f"{where}.use", "a verification key must have use 'sig'")
    try:
        parsed = pyjwt.PyJWK(dict(jwk), algorithm=alg.value)
    except pyjwt.PyJWTError as err:
        raise ValidationError(where, "not a usable public JWK") from err
    key = parsed.key
    fits = (
        (alg is JwtAlgorithm.ES256 and _curve(key) == "secp256r1")
        or (alg is JwtAlgorithm.ES384 and _curve(key) == "secp384r1")
        or (alg is JwtAlgorithm.EDDSA and isinstance(key, ed25519.Ed25519PublicKey))
        or (
            alg in (JwtAlgorithm.RS256, JwtAlgorithm.PS256)
            and isinstance(key, rsa.RSAPublicKey)
            and key.key_size >= 2048
        )
    )
    if not fits:
        raise ValidationError(f"{where}.alg", f"the key cannot verify {alg.value}")
    return _TrustedKey(kid, alg, parsed)


def _curve(key: object) -> str | None:
    return key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else None


def _translate(err: Exception) -> JWTVerificationError:
    for error_type, reason in _PYJWT_ERRORS:
        if isinstance(err, error_type):
            if isinstance(err, pyjwt.MissingRequiredClaimError):
                return JWTVerificationError(reason, f"{err.claim} is required")
            # PyJWT's messages never quote the token, but keep them short and ours.
            return JWTVerificationError(reason, _show(str(err)))
    return JWTVerificationError("malformed", type(err).__name__)


def _b64decode(segment: str, what: str) -> bytes:
    # Strict: Python's decoder silently skips characters outside the alphabet, which would
    # let many strings stand for one token.
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise JWTVerificationError("malformed", f"{what} is not base64url")
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise JWTVerificationError("malformed", f"{what} is not base64url") from None
    # The unused low bits of the last character must be zero, so each token has one spelling.
    if b64url(decoded) != segment:
        raise JWTVerificationError("malformed", f"{what} is not canonical base64url")
    return decoded


def _json_object(segment: str, what: str) -> dict[str, Any]:
    raw = _b64decode(segment, what)
    try:
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
        )
    except (ValueError, RecursionError):
        raise JWTVerificationError("malformed", f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise JWTVerificationError("malformed", f"{what} is not a JSON object")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        # RFC 7515 §5.2 lets parsers reject duplicate names; two readers taking different
        # copies is how confusion attacks start.
        raise ValueError("duplicate member name")
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise JWTVerificationError("malformed", f"{name} is not a NumericDate")
    return float(value)


def _show(value: object, limit: int = 64) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
