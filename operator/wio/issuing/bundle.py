# SPDX-License-Identifier: Apache-2.0
"""Trust bundles: PEM CA bundles, the SPIFFE bundle JWK Set, and the OIDC JWKS.

The SPIFFE bundle (SPIFFE_Trust_Domain_and_Bundle.md, X509-SVID.md section 6)
is a JWK Set with one ``use: "x509-svid"`` entry per CA certificate (``x5c``
holds exactly that certificate, and there is no ``kid``) and one
``use: "jwt-svid"`` entry per JWT signing key (``kid`` required), plus
``spiffe_sequence`` and ``spiffe_refresh_hint``. Consumers use the sequence to
tell a new bundle from a replayed one, so it only ever grows: it is carried
over from the previous bundle and bumped only when the content changed.

JWT public keys arrive as JWK dicts already built by the JWT side; they are
checked to be public (no private members) before being published anywhere.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from wio.errors import ValidationError
from wio.issuing.keys import PublicKeyTypes, b64url

X509_SVID_USE = "x509-svid"
JWT_SVID_USE = "jwt-svid"

DEFAULT_REFRESH_HINT = 300
"""Seconds; SPIFFE consumers re-fetch this often. Short, because CA rotation publishes ahead."""

PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
"""Members that only private or symmetric JWKs carry (RFC 7518 section 6)."""

_EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _int_bytes(value: int) -> bytes:
    """Minimal big-endian bytes of a positive integer (RFC 7518 ``Base64urlUInt``)."""
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def public_jwk(
    public_key: PublicKeyTypes,
    kid: str | None = None,
    use: str | None = None,
    alg: str | None = None,
) -> dict[str, str]:
    """The public JWK (RFC 7517/7518/8037) of an EC P-256/P-384, Ed25519 or RSA key."""
    jwk: dict[str, str]
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        crv = _EC_CURVES.get(public_key.curve.name)
        if crv is None:
            raise ValidationError("key", f"unsupported elliptic curve {public_key.curve.name}")
        numbers = public_key.public_numbers()
        # Coordinates are fixed-length, the curve's field size (RFC 7518 6.2.1.2).
        size = (public_key.curve.key_size + 7) // 8
        jwk = {
            "kty": "EC",
            "crv": crv,
            "x": b64url(numbers.x.to_bytes(size, "big")),
            "y": b64url(numbers.y.to_bytes(size, "big")),
        }
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    elif isinstance(public_key, rsa.RSAPublicKey):
        rsa_numbers = public_key.public_numbers()
        jwk = {
            "kty": "RSA",
            "n": b64url(_int_bytes(rsa_numbers.n)),
            "e": b64url(_int_bytes(rsa_numbers.e)),
        }
    else:
        raise ValidationError("key", f"unsupported key algorithm {type(public_key).__name__}")
    if use is not None:
        jwk["use"] = use
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def _unique(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[bytes] = set()
    out = []
    for cert in certs:
        der = cert.public_bytes(serialization.Encoding.DER)
        if der not in seen:
            seen.add(der)
            out.append(cert)
    return out


def pem_bundle(certs: Iterable[x509.Certificate]) -> bytes:
    """Concatenated PEM certificates (``ca.crt``), in order, duplicates dropped."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in _unique(certs))


def _check_ca(cert: x509.Certificate, where: str) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise ValidationError(where, "an x509-svid bundle entry must be a CA certificate")


def x509_authority_jwk(cert: x509.Certificate) -> dict[str, Any]:
    """One ``x509-svid`` entry: the CA's public key, ``x5c`` with exactly that cert, no ``kid``."""
    jwk: dict[str, Any] = dict(public_jwk(cert.public_key(), use=X509_SVID_USE))  # type: ignore[arg-type]
    # x5c is standard base64, not base64url (RFC 7517 section 4.7).
    jwk["x5c"] = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")]
    return jwk


def _checked_jwt_key(key: Mapping[str, object], where: str) -> dict[str, Any]:
    if not isinstance(key, Mapping):
        raise ValidationError(where, "must be a JWK object")
    private = sorted(PRIVATE_JWK_MEMBERS & set(key))
    if private:
        # Name the members, never their values.
        raise ValidationError(
            where, f"JWK carries private members {private}; publish public keys only"
        )
    if not isinstance(key.get("kty"), str) or not key.get("kty"):
        raise ValidationError(where, "JWK needs a 'kty'")
    kid = key.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValidationError(where, "a JWT signing key needs a non-empty 'kid'")
    return json.loads(json.dumps(dict(key)))  # type: ignore[no-any-return]


def _checked_jwt_keys(jwt_keys: Sequence[Mapping[str, object]], where: str) -> list[dict[str, Any]]:
    keys = [_checked_jwt_key(k, f"{where}[{i}]") for i, k in enumerate(jwt_keys)]
    kids = [k["kid"] for k in keys]
    duplicate = next((kid for kid in kids if kids.count(kid) > 1), None)
    if duplicate is not None:
        raise ValidationError(where, f"kid {duplicate!r} appears twice")
    return keys


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class SpiffeBundle:
    """A SPIFFE bundle JWK Set. ``keys`` is kept as canonical JSON so the value stays immutable."""

    keys_json: str = field(repr=False)
    sequence: int
    refresh_hint: int

    def __post_init__(self) -> None:
        if not isinstance(self.sequence, int) or self.sequence < 0:
            raise ValidationError("spiffe_sequence", "must be a non-negative integer")
        if not isinstance(self.refresh_hint, int) or self.refresh_hint <= 0:
            raise ValidationError("spiffe_refresh_hint", "must be a positive number of seconds")
        keys = json.loads(self.keys_json)
        if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
            raise ValidationError("keys", "must be a list of JWK objects")

    @property
    def keys(self) -> list[dict[str, Any]]:
        """A fresh copy of the JWK entries."""
        return json.loads(self.keys_json)  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "spiffe_refresh_hint": self.refresh_hint,
            "spiffe_sequence": self.sequence,
        }

    def to_json(self) -> bytes:
        """The ``bundle.spiffe.json`` document."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, data: bytes | str) -> SpiffeBundle:
        """Parse a bundle document, e.g. the previous one read back from a ConfigMap."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as err:
            raise ValidationError("bundle", "not a JSON document") from err
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise ValidationError("bundle", "must be a JSON object with a 'keys' list")
        return cls(
            _canonical(doc["keys"]),
            sequence=doc.get("spiffe_sequence", 0),
            refresh_hint=doc.get("spiffe_refresh_hint", DEFAULT_REFRESH_HINT),
        )

    def x509_authorities(self) -> list[x509.Certificate]:
        """The CA certificates, read as a consumer must (X509-SVID 6.2).

        Entries with ``use: x509-svid`` and a non-empty ``x5c``; only the first
        ``x5c`` value counts; anything else is ignored.
        """
        certs = []
        for entry in self.keys:
            x5c = entry.get("x5c")
            if entry.get("use") != X509_SVID_USE or not isinstance(x5c, list) or not x5c:
                continue
            try:
                der = base64.b64decode(x5c[0], validate=True)
                certs.append(x509.load_der_x509_certificate(der))
            except ValueError as err:
                raise ValidationError("bundle.keys.x5c", "not a base64 DER certificate") from err
        return certs

    def jwt_authorities(self) -> list[dict[str, Any]]:
        """The ``jwt-svid`` entries (each with a ``kid``)."""
        return [k for k in self.keys if k.get("use") == JWT_SVID_USE and k.get("kid")]


def build_spiffe_bundle(
    x509_authorities: Sequence[x509.Certificate],
    jwt_keys: Sequence[Mapping[str, object]] = (),
    *,
    refresh_hint: int | dt.timedelta = DEFAULT_REFRESH_HINT,
    previous: SpiffeBundle | None = None,
) -> SpiffeBundle:
    """Build the SPIFFE bundle; the sequence is ``previous``'s, plus one if the content changed.

    Without a previous bundle the sequence starts at 1.
    """
    hint = (
        int(refresh_hint.total_seconds())
        if isinstance(refresh_hint, dt.timedelta)
        else refresh_hint
    )
    keys: list[dict[str, Any]] = []
    for index, cert in enumerate(_unique(x509_authorities)):
        _check_ca(cert, f"x509Authorities[{index}]")
        keys.append(x509_authority_jwk(cert))
    for jwk in _checked_jwt_keys(jwt_keys, "jwtKeys"):
        jwk["use"] = JWT_SVID_USE
        keys.append(jwk)
    keys_json = _canonical(keys)
    if previous is None:
        sequence = 1
    elif previous.keys_json == keys_json and previous.refresh_hint == hint:
        sequence = previous.sequence
    else:
        sequence = previous.sequence + 1
    return SpiffeBundle(keys_json, sequence=sequence, refresh_hint=hint)


def oidc_jwks(jwt_keys: Sequence[Mapping[str, object]]) -> dict[str, Any]:
    """The plain JWKS an OIDC discovery document points at: ``{"keys": [public JWKs]}``."""
    return {"keys": _checked_jwt_keys(jwt_keys, "jwtKeys")}
