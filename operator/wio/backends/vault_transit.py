# SPDX-License-Identifier: Apache-2.0
"""``VaultTransitSigner``: JWTs signed by a Vault/OpenBao Transit key that never leaves Vault.

Key types and the JWS algorithm each signs with:

==============  ==========================  ====================================
Transit type    JWS ``alg``                 Transit sign parameters
==============  ==========================  ====================================
ecdsa-p256      ES256                       sha2-256, ``marshaling_algorithm=jws``
ecdsa-p384      ES384                       sha2-384, ``marshaling_algorithm=jws``
ed25519         EdDSA                       (pure Ed25519 over the input)
rsa-2048/3072   RS256 (default) or PS256    sha2-256, ``pkcs1v15`` or ``pss`` with
                                            ``salt_length=hash`` (RFC 7518 3.5)
==============  ==========================  ====================================

``jws`` marshaling makes Vault return ECDSA signatures as JWS's fixed-length R||S, so no
DER conversion is needed. Inputs are never ``prehashed``: the signing input is a few hundred
bytes, so sending it whole costs nothing and lets Vault apply the hash the algorithm names.

Every signature names a ``key_version``, and every version has its own ``kid``: the RFC 7638
thumbprint of its public key, the same scheme as ``wio.issuing.jwt``, so a kid is stable
across restarts and any verifier can recompute it.

Rotation is Vault's (``transit/keys/<key>/rotate`` or ``auto_rotate_period``);
``public_jwks`` publishes every version Vault still serves, that is from
``min_decryption_version`` (Vault hides older ones) up to the latest. An admin retires
old versions by raising ``min_decryption_version`` once the longest token TTL has
passed. A new version signs only after ``activation_delay``, measured from its
creation time in Vault, so verifiers that cache the JWKS learn the new kid before any
token carries it (ARCHITECTURE.md §6).

Each signature is verified locally against the version's public key before the token
is returned. The Vault policy the operator needs::

    path "<mount>/sign/<key>" { capabilities = ["update"] }
    path "<mount>/keys/<key>" { capabilities = ["read"] }
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from wio.backends.protocols import JwtType, SignedJwt, jws_header
from wio.backends.vault import VaultClient, api_path, check_mount, check_name
from wio.clock import Clock, SystemClock
from wio.errors import ConfigError, SignerUnavailable, ValidationError
from wio.issuing.bundle import public_jwk
from wio.issuing.jwt import (
    MAX_TOKEN_BYTES,
    JwtAlgorithm,
    assemble_jws,
    jwk_thumbprint,
    jws_signing_input,
    pyjwt_algorithm,
)
from wio.issuing.keys import PublicKeyTypes, key_type_of
from wio.models.keytypes import KeyType

DEFAULT_ACTIVATION_DELAY = dt.timedelta(minutes=5)
"""A new key version signs this long after Vault created it: the SPIFFE bundle's default
refresh hint, so verifiers polling the JWKS see the new kid before any token uses it."""

DEFAULT_KEY_CACHE_TTL = dt.timedelta(seconds=30)
"""How long the key's versions are cached: one read per 30 s instead of one per token."""

_KEY_TYPES: Mapping[str, tuple[KeyType, tuple[JwtAlgorithm, ...]]] = {
    "ecdsa-p256": (KeyType.ECDSAP256, (JwtAlgorithm.ES256,)),
    "ecdsa-p384": (KeyType.ECDSAP384, (JwtAlgorithm.ES384,)),
    "ed25519": (KeyType.ED25519, (JwtAlgorithm.EDDSA,)),
    "rsa-2048": (KeyType.RSA2048, (JwtAlgorithm.RS256, JwtAlgorithm.PS256)),
    "rsa-3072": (KeyType.RSA3072, (JwtAlgorithm.RS256, JwtAlgorithm.PS256)),
}

_SIGN_PARAMS: Mapping[JwtAlgorithm, Mapping[str, str]] = {
    JwtAlgorithm.ES256: {"hash_algorithm": "sha2-256", "marshaling_algorithm": "jws"},
    JwtAlgorithm.ES384: {"hash_algorithm": "sha2-384", "marshaling_algorithm": "jws"},
    JwtAlgorithm.EDDSA: {},
    JwtAlgorithm.RS256: {"hash_algorithm": "sha2-256", "signature_algorithm": "pkcs1v15"},
    JwtAlgorithm.PS256: {
        "hash_algorithm": "sha2-256",
        "signature_algorithm": "pss",
        # RFC 7518 3.5: the salt is as long as the hash; Vault's default ("auto") is longer.
        "salt_length": "hash",
    },
}


@dataclass(frozen=True)
class TransitKey:
    """Admin settings of one Transit signer. ``algorithm`` None means the key type's
    default (RS256 for RSA); PS256 must be asked for."""

    key: str
    mount: str = "transit"
    algorithm: JwtAlgorithm | None = None
    activation_delay: dt.timedelta = DEFAULT_ACTIVATION_DELAY
    cache_ttl: dt.timedelta = DEFAULT_KEY_CACHE_TTL

    def __post_init__(self) -> None:
        check_name(self.key, "vaultTransit.key")
        check_mount(self.mount, "vaultTransit.mount")
        if self.algorithm is not None and not isinstance(self.algorithm, JwtAlgorithm):
            raise ConfigError("vaultTransit.algorithm", "must be a JwtAlgorithm")
        if not dt.timedelta(0) <= self.activation_delay <= dt.timedelta(days=1):
            raise ConfigError("vaultTransit.activationDelay", "must be between 0 and 1 day")
        if self.cache_ttl < dt.timedelta(0):
            raise ConfigError("vaultTransit.cacheTTL", "must not be negative")

    @property
    def target(self) -> str:
        return f"{self.mount}/keys/{self.key}"


@dataclass(frozen=True)
class KeyVersion:
    """One version of a Transit key: its number, public key, kid and creation time."""

    number: int
    public_key: PublicKeyTypes = field(repr=False)
    kid: str
    created: dt.datetime
    jwk: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True)
class TransitKeyState:
    """What Vault says about the key, parsed and checked once per cache period."""

    alg: JwtAlgorithm
    versions: tuple[KeyVersion, ...]  # ascending by number, all publishable
    min_encryption_version: int

    def signing_version(self, now: dt.datetime, activation_delay: dt.timedelta) -> KeyVersion:
        """The newest version created at least ``activation_delay`` ago; when none is that
        old (a brand-new key), the oldest version allowed to sign."""
        allowed = [v for v in self.versions if v.number >= self.min_encryption_version]
        if not allowed:
            raise SignerUnavailable("Transit key has no version allowed to sign")
        active = [v for v in allowed if v.created + activation_delay <= now]
        return active[-1] if active else allowed[0]


def parse_transit_key(
    data: Mapping[str, Any], configured: JwtAlgorithm | None, where: str
) -> TransitKeyState:
    """Check and parse a ``<mount>/keys/<key>`` read; pure. Misfit keys are ``ConfigError``."""
    key_type = data.get("type")
    if not isinstance(key_type, str) or key_type not in _KEY_TYPES:
        allowed = ", ".join(_KEY_TYPES)
        raise ConfigError(where, f"Transit key type {key_type!r} cannot sign JWTs; use {allowed}")
    wio_type, algorithms = _KEY_TYPES[key_type]
    alg = configured or algorithms[0]
    if alg not in algorithms:
        raise ConfigError(where, f"a {key_type} key cannot sign {alg.value}")
    if not data.get("supports_signing", False):
        raise ConfigError(where, "the Transit key does not support signing")
    if data.get("derived"):
        raise ConfigError(where, "derived Transit keys need a context per signature; use another")
    keys = data.get("keys")
    if not isinstance(keys, Mapping) or not keys:
        raise ValueError("no key versions in response")
    floor = max(
        int(data.get("min_available_version") or 0), int(data.get("min_decryption_version") or 0)
    )
    versions = []
    for number_text, info in keys.items():
        number = int(number_text)
        if number < floor:
            continue
        public_key = _public_key(info.get("public_key"), key_type)
        if key_type_of(public_key) is not wio_type:
            raise ValueError("public key does not match the key type")
        created = dt.datetime.fromisoformat(str(info.get("creation_time")))
        if created.tzinfo is None:
            raise ValueError("creation_time has no timezone")
        kid = jwk_thumbprint(public_key)
        jwk = public_jwk(public_key, kid=kid, use="sig", alg=alg.value)
        versions.append(KeyVersion(number, public_key, kid, created, jwk))
    if not versions:
        raise ValueError("no publishable key versions")
    versions.sort(key=lambda v: v.number)
    return TransitKeyState(alg, tuple(versions), int(data.get("min_encryption_version") or 0))


def _public_key(value: object, key_type: str) -> PublicKeyTypes:
    if not isinstance(value, str) or not value:
        raise ValueError("public key missing")
    if key_type == "ed25519":
        # Transit gives Ed25519 public keys as base64 of the 32 raw bytes, others as PEM.
        return ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(value, validate=True))
    loaded = serialization.load_pem_public_key(value.encode("ascii"))
    key_type_of(loaded)  # type: ignore[arg-type]  # refuses anything wio does not sign with
    return loaded  # type: ignore[return-value]


class VaultTransitSigner:
    """A ``JwtSigner`` over a Vault/OpenBao Transit key."""

    def __init__(
        self,
        client: VaultClient,
        key: TransitKey,
        *,
        name: str = "vault-transit",
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self._key = key
        self._name = name
        self._clock: Clock = clock or SystemClock()
        self._state: TransitKeyState | None = None
        self._state_expires: dt.datetime | None = None
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def key(self) -> TransitKey:
        return self._key

    async def sign(
        self, claims: Mapping[str, Any], *, typ: JwtType = JwtType.JWT_SVID
    ) -> SignedJwt:
        state = await self._current()
        version = state.signing_version(self._clock.now(), self._key.activation_delay)
        header = jws_header(state.alg, version.kid, typ)
        signing_input = jws_signing_input(header, claims)
        if len(signing_input) >= MAX_TOKEN_BYTES:
            raise ValidationError("claims", f"the token would exceed {MAX_TOKEN_BYTES} bytes")
        body: dict[str, Any] = {
            "input": base64.b64encode(signing_input).decode("ascii"),
            "key_version": version.number,
            **_SIGN_PARAMS[state.alg],
        }
        key = self._key
        data = await self._client.write(
            "sign", f"{key.mount}/sign/{key.key}", api_path(key.mount, "sign", key.key), body
        )
        signature = self._raw_signature(data, version, state.alg)
        if not pyjwt_algorithm(state.alg).verify(signing_input, version.public_key, signature):
            # Our cached view of the key disagrees with Vault's: read it again next time.
            await self.refresh()
            raise SignerUnavailable(
                f"Vault sign on {key.mount}/sign/{key.key}: signature did not verify "
                f"with key version {version.number}"
            )
        token = assemble_jws(signing_input, signature)
        if len(token) > MAX_TOKEN_BYTES:
            raise ValidationError("claims", f"the token would exceed {MAX_TOKEN_BYTES} bytes")
        return SignedJwt(token, version.kid, state.alg)

    async def public_jwks(self) -> list[dict[str, Any]]:
        state = await self._current()
        signing = state.signing_version(self._clock.now(), self._key.activation_delay)
        others = [v for v in reversed(state.versions) if v.number != signing.number]
        return [dict(v.jwk) for v in (signing, *others)]

    async def refresh(self) -> None:
        """Forget the cached key versions (after a rotation, say); the next call reads them."""
        self._state_expires = None

    async def _current(self) -> TransitKeyState:
        async with self._lock:
            now = self._clock.now()
            if self._state is None or self._state_expires is None or now >= self._state_expires:
                key = self._key
                data = await self._client.read(
                    "read key", key.target, api_path(key.mount, "keys", key.key)
                )
                try:
                    self._state = parse_transit_key(data, key.algorithm, "vaultTransit.key")
                except (ValueError, TypeError, KeyError, UnsupportedAlgorithm) as err:
                    raise SignerUnavailable(
                        f"Vault read key on {key.target}: malformed response"
                    ) from err
                except ValidationError as err:
                    raise SignerUnavailable(
                        f"Vault read key on {key.target}: unsupported public key"
                    ) from err
                self._state_expires = now + key.cache_ttl
            return self._state

    def _raw_signature(
        self, data: Mapping[str, Any], version: KeyVersion, alg: JwtAlgorithm
    ) -> bytes:
        where = f"Vault sign on {self._key.mount}/sign/{self._key.key}"
        value = data.get("signature")
        prefix = f"vault:v{version.number}:"
        if not isinstance(value, str) or not value.startswith(prefix):
            raise SignerUnavailable(f"{where}: signature missing or from another key version")
        encoded = value[len(prefix) :]
        try:
            if "marshaling_algorithm" in _SIGN_PARAMS[alg]:
                # JWS marshaling is base64url without padding.
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            return base64.b64decode(encoded, validate=True)
        except ValueError as err:  # binascii.Error is a ValueError
            raise SignerUnavailable(f"{where}: signature is not base64") from err
