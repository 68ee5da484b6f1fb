# SPDX-License-Identifier: Apache-2.0
"""The named signers of the admin configuration, and the trust material they publish together.

Tenants name a signer (``spec.signer``); admins configure what it is. Every signer of one
trust domain contributes its roots to one trust bundle and its JWT keys to one JWKS.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from wio.backends.protocols import Capability, JwtSigner, X509Authority
from wio.errors import SignerRejected
from wio.issuing.bundle import pem_bundle
from wio.issuing.ca import cert_fingerprint

# How long a fetched bundle is reused before the signers are asked again. Upstream CAs change
# rarely, and every issuance needs the bundle.
BUNDLE_TTL_SECONDS = 30.0


@dataclass(frozen=True)
class Signer:
    name: str
    x509: X509Authority
    jwt: JwtSigner

    @property
    def x509_needs_csr(self) -> bool:
        return Capability.REQUIRES_CSR in self.x509.capabilities

    @property
    def x509_revokes(self) -> bool:
        return Capability.REVOKE in self.x509.capabilities


class SignerSet:
    def __init__(self, signers: Mapping[str, Signer]) -> None:
        self._signers = dict(signers)
        self._bundle: list[x509.Certificate] = []
        self._bundle_at = float("-inf")
        self._bundle_pem: tuple[list[x509.Certificate] | None, bytes] = (None, b"")
        self._jwks: list[dict[str, Any]] = []
        self._jwks_at = float("-inf")
        self._anchors: tuple[list[x509.Certificate] | None, frozenset[str] | None] = (None, None)
        self._kids: tuple[list[dict[str, Any]] | None, frozenset[str] | None] = (None, None)

    def names(self) -> list[str]:
        return sorted(self._signers)

    def get(self, name: str) -> Signer:
        try:
            return self._signers[name]
        except KeyError:
            raise SignerRejected(
                f"signer {name!r} is not configured; configured: {', '.join(self.names())}"
            ) from None

    def invalidate(self) -> None:
        """Forget cached bundles (after a CA or key rotation)."""
        self._bundle_at = self._jwks_at = float("-inf")

    async def refresh(self) -> None:
        """Read every signer's bundle and keys again now (after a rollover)."""
        self.invalidate()
        await self.trust_bundle()
        await self.jwt_public_jwks()

    def trusted_anchors(self) -> frozenset[str] | None:
        """Fingerprints of the cached trust bundle's CAs; None before the first read."""
        bundle = self._bundle
        if self._anchors[0] is not bundle:
            fingerprints = frozenset(cert_fingerprint(c) for c in bundle) if bundle else None
            self._anchors = (bundle, fingerprints)
        return self._anchors[1]

    def published_kids(self) -> frozenset[str] | None:
        """kids of the cached JWKS; None before the first read."""
        jwks = self._jwks
        if self._kids[0] is not jwks:
            kids = frozenset(str(k.get("kid")) for k in jwks) if jwks else None
            self._kids = (jwks, kids)
        return self._kids[1]

    async def trust_bundle(self) -> list[x509.Certificate]:
        if time.monotonic() - self._bundle_at > BUNDLE_TTL_SECONDS:
            seen: dict[bytes, x509.Certificate] = {}
            for signer in self._signers.values():
                for cert in await signer.x509.trust_bundle():
                    seen.setdefault(cert.fingerprint(hashes.SHA256()), cert)
            self._bundle = list(seen.values())
            self._bundle_at = time.monotonic()
        return self._bundle

    def cached_trust_bundle(self) -> list[x509.Certificate]:
        """The last bundle fetched, for synchronous callers (watch-event handling)."""
        return self._bundle

    async def trust_bundle_pem(self) -> bytes:
        bundle = await self.trust_bundle()
        if self._bundle_pem[0] is not bundle:
            self._bundle_pem = (bundle, pem_bundle(bundle))
        return self._bundle_pem[1]

    async def jwt_public_jwks(self) -> list[dict[str, Any]]:
        if time.monotonic() - self._jwks_at > BUNDLE_TTL_SECONDS:
            seen: dict[str, dict[str, Any]] = {}
            for signer in self._signers.values():
                for jwk in await signer.jwt.public_jwks():
                    seen.setdefault(str(jwk.get("kid")), jwk)
            self._jwks = list(seen.values())
            self._jwks_at = time.monotonic()
        return self._jwks
