# SPDX-License-Identifier: Apache-2.0
"""The two seams every signer backend implements, and the values that cross them.

``X509Authority`` signs X.509-SVIDs; ``JwtSigner`` signs JWTs. Both are small typed
Protocols with async methods, because the operator runs on asyncio and a remote signer
must never block the event loop. One conformance suite
(``tests/integration/test_backend_conformance.py``) runs the same assertions against
every implementation: the local CA, Vault/OpenBao PKI and Transit, and the test fakes.

The workload's private key never crosses this seam: an authority receives an
``SvidRequest`` carrying the public key and, for backends that declare
``Capability.REQUIRES_CSR``, a PKCS#10 CSR that wio built and self-signed with the key.

Optional features are declared in ``capabilities`` rather than discovered by trying:
a caller checks ``Capability.REVOKE in authority.capabilities`` before revoking, and an
authority asked for something it does not declare raises ``Unsupported``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from wio.errors import SignerRejected, ValidationError
from wio.issuing.jwt import JwtAlgorithm
from wio.issuing.keys import (
    PrivateKey,
    PublicKeyTypes,
    certificate_hash_for,
    public_key_fingerprint,
)
from wio.issuing.x509svid import Issued
from wio.models.dns import check_dns_name
from wio.models.spiffe import SpiffeID

_ONE_SECOND = dt.timedelta(seconds=1)


class Unsupported(SignerRejected):
    """The backend does not offer this operation (it is not in its ``capabilities``).

    A ``SignerRejected``: asking again will not help. Callers should check
    ``capabilities`` first; this error is the backstop, not the protocol.
    """


class Capability(enum.Enum):
    """Optional features an ``X509Authority`` declares."""

    REVOKE = "revoke"
    """``revoke(serial, namespace=…)`` tells the upstream signer (for example Vault PKI's CRL)."""

    REQUIRES_CSR = "requires-csr"
    """``issue`` needs ``SvidRequest.csr_pem``: the signer only accepts PKCS#10 requests."""


@dataclass(frozen=True)
class SvidRequest:
    """What an authority needs to sign one X.509-SVID; validated on construction.

    ``now`` is the caller's time of issuance (injected clock): lifetimes are asked for
    relative to it and checked against it. ``csr_pem``, when present, must be
    self-signed by the key whose public half is ``public_key``; its subject and SANs
    carry the same identity for signers that copy them (``sign-verbatim``).
    """

    spiffe_id: SpiffeID
    public_key: PublicKeyTypes = field(repr=False)
    ttl: dt.timedelta
    now: dt.datetime
    dns_names: tuple[str, ...] = ()
    csr_pem: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.spiffe_id, SpiffeID):
            raise ValidationError("spiffeID", "must be a SpiffeID")
        if self.spiffe_id.is_trust_domain_id:
            raise ValidationError("spiffeID", "a workload SVID needs a SPIFFE ID with a path")
        if not isinstance(self.ttl, dt.timedelta) or self.ttl < _ONE_SECOND:
            raise ValidationError("ttl", "must be at least one second")
        if not isinstance(self.now, dt.datetime) or self.now.utcoffset() is None:
            raise ValidationError("now", "must be a timezone-aware datetime")
        if not isinstance(self.dns_names, tuple):
            raise ValidationError("dnsNames", "must be a tuple")
        if self.dns_names:
            for name in self.dns_names:
                check_dns_name(name)
            if len(set(self.dns_names)) != len(self.dns_names):
                raise ValidationError("dnsNames", "a DNS name is listed twice")
        if self.csr_pem is not None:
            _check_csr_matches(self.csr_pem, self.public_key)

    @classmethod
    def for_key(
        cls,
        key: PrivateKey,
        spiffe_id: SpiffeID,
        *,
        ttl: dt.timedelta,
        now: dt.datetime,
        dns_names: Sequence[str] = (),
        with_csr: bool = False,
    ) -> SvidRequest:
        """A request for ``key``'s public half; with a CSR when the signer needs one."""
        names = tuple(dns_names)
        csr = build_csr(key, spiffe_id, names) if with_csr else None
        return cls(spiffe_id, key.public_key, ttl, now, names, csr)

    @property
    def key_fingerprint(self) -> str:
        return public_key_fingerprint(self.public_key)


def build_csr(key: PrivateKey, spiffe_id: SpiffeID, dns_names: Sequence[str] = ()) -> bytes:
    """A PKCS#10 CSR for ``key`` with an empty subject and the SVID's SANs, as PEM.

    The SANs matter only to signers that copy them (``sign-verbatim``); a role-based
    signer takes the identity from the request parameters instead.
    """
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(str(spiffe_id))]
    sans.extend(x509.DNSName(name) for name in dns_names)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .sign(key.key, certificate_hash_for(key.key))
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def _check_csr_matches(csr_pem: bytes, public_key: PublicKeyTypes) -> None:
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
        signature_ok = csr.is_signature_valid
        csr_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as err:
        raise ValidationError("csr", "not a readable PEM certificate request") from err
    if not signature_ok:
        raise ValidationError("csr", "CSR self-signature does not verify")
    if public_key_fingerprint(csr_key) != public_key_fingerprint(public_key):  # type: ignore[arg-type]
        raise ValidationError("csr", "CSR is for a different key than the request")


@runtime_checkable
class X509Authority(Protocol):
    """Signs X.509-SVIDs for public keys wio generated; publishes the roots that verify them."""

    @property
    def name(self) -> str:
        """The signer name admins configure and tenants reference."""
        ...

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Optional features this authority offers; fixed for its lifetime."""
        ...

    async def issue(self, request: SvidRequest) -> Issued:
        """Sign an SVID for ``request``; the result is validated before it is returned.

        Raises ``SignerUnavailable`` (retry later) or ``SignerRejected`` (fix the request
        or the signer's configuration).
        """
        ...

    async def revoke(self, serial_hex: str, *, namespace: str) -> None:
        """Revoke upstream the certificate with this serial (``Issued.serial_hex`` form), only
        if it names a workload of ``namespace``: an upstream CA revokes by serial across all it
        signed, so a serial copied from another namespace's certificate must revoke nothing.

        Raises ``ForeignCredential`` for a certificate of another namespace (or none), and
        ``Unsupported`` unless ``Capability.REVOKE`` is declared.
        """
        ...

    async def trust_bundle(self) -> list[x509.Certificate]:
        """Every root a verifier needs for what this authority signed (and will sign soon)."""
        ...


class JwtType(enum.StrEnum):
    """The ``typ`` header of the tokens wio mints."""

    JWT_SVID = "JWT"
    """JWT-SVID section 3: ``JWT`` (or ``JOSE``)."""

    ACCESS_TOKEN = "at+jwt"  # noqa: S105 - a media type, not a secret
    """RFC 9068 section 2.1: keeps an access token from passing as an ID token."""


def jws_header(alg: JwtAlgorithm, kid: str, typ: JwtType) -> dict[str, str]:
    """The only header shape wio signs: ``alg``, ``kid`` and ``typ``, nothing else."""
    if not isinstance(alg, JwtAlgorithm):
        raise ValidationError("alg", f"not a JwtAlgorithm: {alg!r}")
    if not isinstance(typ, JwtType):
        raise ValidationError("typ", f"not a JwtType: {typ!r}")
    if not isinstance(kid, str) or not kid:
        raise ValidationError("kid", "must be a non-empty string")
    return {"alg": alg.value, "kid": kid, "typ": typ.value}


@dataclass(frozen=True)
class SignedJwt:
    """A compact JWS and the facts about its signature; ``repr`` never shows the token."""

    token: str = field(repr=False)
    kid: str
    alg: JwtAlgorithm


@runtime_checkable
class JwtSigner(Protocol):
    """Signs JWT claims with a key it chooses, and publishes every key a verifier needs.

    The signer builds the header itself (``jws_header``) from its current ``alg`` and
    ``kid``: callers never name a key, so a rotation needs no caller changes.
    """

    @property
    def name(self) -> str:
        """The signer name admins configure and tenants reference."""
        ...

    async def sign(
        self, claims: Mapping[str, Any], *, typ: JwtType = JwtType.JWT_SVID
    ) -> SignedJwt:
        """Sign ``claims`` (already built, e.g. by ``jwt_svid_claims``) under header ``typ``."""
        ...

    async def public_jwks(self) -> list[dict[str, Any]]:
        """Public JWKs (each with ``kid``, ``alg``, ``use: sig``) of every key still valid:
        the signing key, keys staged to sign next, and retired keys whose tokens may
        not have expired yet."""
        ...
