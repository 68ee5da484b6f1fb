# SPDX-License-Identifier: Apache-2.0
"""Token forging for tests: compact JWS strings built by hand, including ones no library makes.

Verifier tests need tokens that break one rule at a time (``alg: none``, HMAC keyed with
our public key, header-embedded keys, duplicate members, bad base64...). These helpers
bypass wio's minting code entirely, so a verifier test never depends on the minter it is
meant to catch out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

PrivateKeyTypes = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKeyTypes = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: Any) -> str:
    """Compact JSON of ``value`` (any JSON value, not only objects), base64url-encoded."""
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def signing_input(header: Any, claims: Any) -> bytes:
    return f"{b64url_json(header)}.{b64url_json(claims)}".encode("ascii")


def forge(header: Any, claims: Any, signature: bytes = b"") -> str:
    """A token with the given header, claims and (possibly bogus) signature bytes."""
    return f"{signing_input(header, claims).decode()}.{b64url(signature)}"


def forge_raw(header: bytes, claims: bytes, signature: bytes = b"") -> str:
    """A token whose header and claims are arbitrary bytes (not JSON, arrays, duplicates...)."""
    return f"{b64url(header)}.{b64url(claims)}.{b64url(signature)}"


def sign_raw(key: PrivateKeyTypes, alg: str, header: bytes, claims: bytes) -> str:
    """Sign arbitrary header and claims bytes with ``key`` under ``alg`` (PyJWT primitives)."""
    message = f"{b64url(header)}.{b64url(claims)}".encode("ascii")
    signature = get_default_algorithms()[alg].sign(message, key)
    return f"{message.decode()}.{b64url(signature)}"


def sign(key: PrivateKeyTypes, alg: str, header: Any, claims: Any) -> str:
    """A correctly signed token with exactly ``header`` (whatever it contains) and ``claims``."""
    message = signing_input(header, claims)
    signature = get_default_algorithms()[alg].sign(message, key)
    return f"{message.decode()}.{b64url(signature)}"


def hmac_forge(alg: str, secret: bytes, header: Any, claims: Any) -> str:
    """An HS256/384/512 token keyed with ``secret``, built with ``hmac`` because PyJWT
    refuses PEM-looking HMAC secrets (its own defence against this very attack)."""
    message = signing_input(header, claims)
    mac = hmac.new(secret, message, _HMAC_HASHES[alg]).digest()
    return f"{message.decode()}.{b64url(mac)}"


def public_key_encodings(public_key: PublicKeyTypes, jwk: dict[str, Any]) -> dict[str, bytes]:
    """The forms an attacker would try as an HMAC secret: PEM, DER and the JWK's JSON bytes."""
    return {
        "pem": public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": json.dumps(jwk, separators=(",", ":")).encode(),
    }


def replace_claims(token: str, claims: Any) -> str:
    """``token`` with its payload swapped for ``claims`` and the original signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{b64url_json(claims)}.{signature}"


def jwk_of(public_key: PublicKeyTypes) -> dict[str, Any]:
    """The public JWK PyJWT makes for ``public_key``: an oracle independent of wio's."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return dict(get_default_algorithms()["ES256"].to_jwk(public_key, as_dict=True))
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return dict(get_default_algorithms()["EdDSA"].to_jwk(public_key, as_dict=True))
    return dict(get_default_algorithms()["RS256"].to_jwk(public_key, as_dict=True))
