# SPDX-License-Identifier: Apache-2.0
"""Private keys of the types wio offers: generation, PKCS#8 PEM, and stable fingerprints.

A ``PrivateKey`` wraps the ``cryptography`` key object once; signing code keeps
the wrapper and never re-parses PEM per signature.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeAlias

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from wio.errors import ValidationError
from wio.models.keytypes import KeyType as KeyType  # re-exported: key-making code imports it here

PrivateKeyTypes: TypeAlias = (
    ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
)
PublicKeyTypes: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def generate_private_key(key_type: KeyType) -> PrivateKey:
    """Make a fresh private key of ``key_type`` from the OS random source."""
    key: PrivateKeyTypes
    match key_type:
        case KeyType.ECDSAP256:
            key = ec.generate_private_key(ec.SECP256R1())
        case KeyType.ECDSAP384:
            key = ec.generate_private_key(ec.SECP384R1())
        case KeyType.ED25519:
            key = ed25519.Ed25519PrivateKey.generate()
        case KeyType.RSA2048:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        case KeyType.RSA3072:
            key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return PrivateKey(key)


def key_type_of(key: PrivateKeyTypes | PublicKeyTypes) -> KeyType:
    """Name the ``KeyType`` of a key object; refuse any key wio would not issue."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return KeyType.ECDSAP256
        if isinstance(key.curve, ec.SECP384R1):
            return KeyType.ECDSAP384
        raise ValidationError("key", f"unsupported elliptic curve {key.curve.name}")
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return KeyType.ED25519
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size == 2048:
            return KeyType.RSA2048
        if key.key_size == 3072:
            return KeyType.RSA3072
        raise ValidationError("key", f"unsupported RSA key size {key.key_size}")
    raise ValidationError("key", f"unsupported key algorithm {type(key).__name__}")


def public_key_fingerprint(public_key: PublicKeyTypes) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, as lowercase hex: stable across encodings."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True, eq=False)
class PrivateKey:
    """A parsed private key with the facts callers keep asking for, computed once.

    ``repr`` never shows key material. The fingerprint is computed on first use (a DER
    encoding and a SHA-256, about a tenth of an issuance's cost, that the signing path
    itself never needs).
    """

    key: PrivateKeyTypes = field(repr=False)
    key_type: KeyType = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_type", key_type_of(self.key))

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the public key's DER SubjectPublicKeyInfo, lowercase hex."""
        return public_key_fingerprint(self.key.public_key())

    @cached_property
    def certificate_hash(self) -> hashes.SHA256 | hashes.SHA384 | None:
        """``certificate_hash_for(self.key)``, decided once for a key that signs many leaves."""
        return certificate_hash_for(self.key)

    @property
    def public_key(self) -> PublicKeyTypes:
        return self.key.public_key()

    def to_pkcs8_pem(self) -> bytes:
        """The key as unencrypted PKCS#8 PEM, the form ``tls.key`` carries."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, pem: bytes) -> PrivateKey:
        """Load a PEM private key (PKCS#8 or traditional); errors never echo the input."""
        try:
            loaded = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as err:
            raise ValidationError("key", "not a readable unencrypted PEM private key") from err
        if not isinstance(
            loaded, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
        ):
            raise ValidationError("key", f"unsupported key algorithm {type(loaded).__name__}")
        return cls(loaded)

    def matches(self, public_key: PublicKeyTypes) -> bool:
        """True when ``public_key`` is this key's public half."""
        return public_key_fingerprint(public_key) == self.fingerprint


def signature_hash_for(key: PrivateKeyTypes) -> hashes.HashAlgorithm | None:
    """The hash to sign certificates with for ``key``: None for Ed25519, SHA-384 for P-384."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        return hashes.SHA384()
    return hashes.SHA256()


def certificate_hash_for(key: PrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384 | None:
    """``signature_hash_for`` narrowed to the types ``CertificateBuilder.sign`` accepts."""
    chosen = signature_hash_for(key)
    if chosen is None or isinstance(chosen, hashes.SHA256 | hashes.SHA384):
        return chosen
    raise ValidationError("key", f"no certificate signature hash for {chosen.name}")


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE wants."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
