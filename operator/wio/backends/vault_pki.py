# SPDX-License-Identifier: Apache-2.0
"""``VaultPkiAuthority``: X.509-SVIDs signed by a Vault/OpenBao PKI role.

Issuance posts the CSR wio built from the workload's key to ``<mount>/sign/<role>``
with the identity as request parameters (``uri_sans`` = the SPIFFE ID, ``alt_names`` =
the DNS names, ``ttl``, ``exclude_cn_from_sans``); the role must have
``use_csr_sans: false`` so nothing in the CSR can add a name. With ``verbatim`` the CSR
goes to ``<mount>/sign-verbatim/<role>`` instead, and its SANs (the same identity, see
``build_csr``) are used as they are.

Vault is trusted to sign, not to be right: every certificate is checked before it is
returned (``check_issued``): our key, exactly our SPIFFE ID and DNS names, the lifetime we
asked for (or capped at the issuer's notAfter) within ``lifetime_tolerance``, and a valid
X.509-SVID path to the trust bundle. A role whose ``max_ttl`` silently shortens the
lifetime therefore fails loudly as ``SignerRejected``.

The trust bundle is every live root of the mount's issuers (``LIST <mount>/issuers``),
so a CA rotated inside Vault is published as soon as it exists; it is cached for
``bundle_cache_ttl``. The Vault policy the operator needs::

    path "<mount>/sign/<role>"   { capabilities = ["create", "update"] }
    path "<mount>/revoke"        { capabilities = ["create", "update"] }
    path "<mount>/issuers"       { capabilities = ["list"] }
    path "<mount>/issuer/+/json" { capabilities = ["read"] }
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from wio.backends.protocols import Capability, SvidRequest
from wio.backends.vault import VaultClient, api_path, check_mount, check_name
from wio.clock import Clock, SystemClock
from wio.errors import (
    ConfigError,
    ForeignCredential,
    SignerRejected,
    SignerUnavailable,
    SVIDVerificationError,
)
from wio.issuing.keys import public_key_fingerprint
from wio.issuing.verify_x509 import SvidVerifier
from wio.issuing.x509svid import Issued
from wio.models.spiffe import TrustDomain, namespace_of

DEFAULT_LIFETIME_TOLERANCE = dt.timedelta(seconds=60)
"""How far a granted notAfter may sit from the one asked for: clock skew between wio and
Vault plus request latency. Vault itself sets notAfter = its now + ttl exactly."""

DEFAULT_BUNDLE_CACHE_TTL = dt.timedelta(seconds=60)
"""Roots change rarely and are published ahead of use; a minute keeps reads cheap."""

_HEX_SERIAL = re.compile(r"[0-9a-fA-F]{1,40}")


@dataclass(frozen=True)
class PkiRole:
    """Admin settings of one PKI signer: the mount, the role, and how strictly to check."""

    role: str
    trust_domain: TrustDomain
    mount: str = "pki"
    verbatim: bool = False
    lifetime_tolerance: dt.timedelta = DEFAULT_LIFETIME_TOLERANCE
    bundle_cache_ttl: dt.timedelta = DEFAULT_BUNDLE_CACHE_TTL

    def __post_init__(self) -> None:
        check_name(self.role, "vaultPKI.role")
        check_mount(self.mount, "vaultPKI.mount")
        if not isinstance(self.trust_domain, TrustDomain):
            raise ConfigError("vaultPKI.trustDomain", "must be a TrustDomain")
        if not dt.timedelta(0) <= self.lifetime_tolerance <= dt.timedelta(minutes=10):
            raise ConfigError("vaultPKI.lifetimeTolerance", "must be between 0 and 10 minutes")
        if self.bundle_cache_ttl < dt.timedelta(0):
            raise ConfigError("vaultPKI.bundleCacheTTL", "must not be negative")

    @property
    def sign_target(self) -> str:
        endpoint = "sign-verbatim" if self.verbatim else "sign"
        return f"{self.mount}/{endpoint}/{self.role}"


def vault_serial(serial_hex: str) -> str:
    """``Issued.serial_hex`` (plain hex) in Vault's form: colon-separated byte pairs."""
    if not isinstance(serial_hex, str) or not _HEX_SERIAL.fullmatch(serial_hex.replace(":", "")):
        raise SignerRejected("serial must be up to 20 bytes of hex")
    value = int(serial_hex.replace(":", ""), 16)
    if value <= 0:
        raise SignerRejected("serial must be positive")
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return ":".join(f"{byte:02x}" for byte in raw)


def _self_issued(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _load_pem(text: object, what: str) -> list[x509.Certificate]:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what} missing")
    return x509.load_pem_x509_certificates(text.encode("ascii"))


def roots_of(chains: list[list[x509.Certificate]], now: dt.datetime) -> list[x509.Certificate]:
    """The trust anchors of issuer chains: self-issued certificates, or a chain's top when
    Vault does not hold the root; expired ones dropped, duplicates removed, order kept."""
    roots: list[x509.Certificate] = []
    seen: set[bytes] = set()
    for chain in chains:
        if not chain:
            continue
        anchors = [c for c in chain if _self_issued(c)] or [chain[-1]]
        for cert in anchors:
            der = _der(cert)
            if der not in seen and cert.not_valid_after_utc > now:
                seen.add(der)
                roots.append(cert)
    return roots


def check_issued(
    request: SvidRequest,
    issued: Issued,
    verifier: SvidVerifier,
    tolerance: dt.timedelta,
) -> None:
    """Refuse a signed certificate that is not exactly what ``request`` asked for.

    Pure; raises ``SignerRejected`` naming the first defect (never the certificate).
    ``SVIDVerificationError`` from the path check propagates, so the caller can retry it
    once with a fresh bundle.
    """
    cert = issued.cert
    if public_key_fingerprint(cert.public_key()) != request.key_fingerprint:  # type: ignore[arg-type]
        raise SignerRejected("signed certificate is for a different public key")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as err:
        raise SignerRejected("signed certificate has no subjectAltName") from err
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if uris != [str(request.spiffe_id)]:
        raise SignerRejected(
            f"signed certificate has {len(uris)} URI SAN(s), not exactly the requested SPIFFE ID"
        )
    dns = san.get_values_for_type(x509.DNSName)
    if sorted(dns) != sorted(request.dns_names):
        raise SignerRejected("signed certificate's DNS names differ from the request")
    if len(san) != len(uris) + len(dns):
        raise SignerRejected("signed certificate carries SAN types other than URI and DNS")
    now = request.now
    if issued.not_before > now + tolerance:
        raise SignerRejected("signed certificate is not valid yet (signer clock ahead?)")
    # Verify at a moment inside the validity window even if the signer's clock is a
    # little ahead of ours; the skew itself was bounded just above.
    verified = verifier.verify(issued.cert_chain_pem(), max(now, issued.not_before))
    if verified.spiffe_id != request.spiffe_id:  # pragma: no cover - implied by the URI check
        raise SignerRejected("signed certificate names another SPIFFE ID")
    issuer_not_after = min(c.not_valid_after_utc for c in verified.path[1:])
    expected = min(now + request.ttl, issuer_not_after)
    if abs(issued.not_after - expected) > tolerance:
        raise SignerRejected(
            f"signed certificate lives until {issued.not_after.isoformat()}, asked for "
            f"{expected.isoformat()} (does the role's max_ttl allow ttl {request.ttl}?)"
        )


class VaultPkiAuthority:
    """An ``X509Authority`` over a Vault/OpenBao PKI role (``sign`` or ``sign-verbatim``)."""

    def __init__(
        self,
        client: VaultClient,
        role: PkiRole,
        *,
        name: str = "vault-pki",
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self._role = role
        self._name = name
        self._clock: Clock = clock or SystemClock()
        self._bundle: tuple[x509.Certificate, ...] = ()
        self._verifier: SvidVerifier | None = None
        self._bundle_expires: dt.datetime | None = None
        self._bundle_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset({Capability.REVOKE, Capability.REQUIRES_CSR})

    @property
    def role(self) -> PkiRole:
        return self._role

    async def issue(self, request: SvidRequest) -> Issued:
        role = self._role
        if request.spiffe_id.trust_domain != role.trust_domain:
            raise SignerRejected(
                f"signer {self._name!r} signs for trust domain {role.trust_domain}, "
                f"not {request.spiffe_id.trust_domain}"
            )
        if request.csr_pem is None:
            raise SignerRejected(
                f"signer {self._name!r} (Vault PKI) signs CSRs only; build the request with a CSR"
            )
        body: dict[str, Any] = {
            "csr": request.csr_pem.decode("ascii"),
            "ttl": f"{int(request.ttl.total_seconds())}s",
            "format": "pem",
        }
        if role.verbatim:
            # sign-verbatim copies the CSR's names but not a profile: ask for the
            # X509-SVID key usages explicitly (digitalSignature; serverAuth + clientAuth).
            body["key_usage"] = ["DigitalSignature"]
            body["ext_key_usage"] = ["ServerAuth", "ClientAuth"]
        else:
            body["uri_sans"] = str(request.spiffe_id)
            body["exclude_cn_from_sans"] = True
            if request.dns_names:
                body["alt_names"] = ",".join(request.dns_names)
        path = api_path(role.mount, "sign-verbatim" if role.verbatim else "sign", role.role)
        data = await self._client.write("sign", role.sign_target, path, body)
        issued = self._parse_signed(data)
        await self._check(request, issued)
        return issued

    async def revoke(self, serial_hex: str, *, namespace: str) -> None:
        role = self._role
        serial = vault_serial(serial_hex)
        # Read the certificate first (PKI serves cert/<serial> to anyone): the serial came
        # from an object a tenant controls, and Vault would revoke any certificate it signed.
        data = await self._client.read(
            "read-cert", f"{role.mount}/cert", api_path(role.mount, "cert", serial)
        )
        try:
            leaf = _load_pem(data.get("certificate"), "certificate")[0]
            uris = leaf.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            ).value.get_values_for_type(x509.UniformResourceIdentifier)
        except (ValueError, x509.ExtensionNotFound, IndexError):
            uris = []
        if [namespace_of(uri) for uri in uris] != [namespace]:
            raise ForeignCredential(
                f"serial {serial_hex} is not a certificate of a workload in namespace "
                f"{namespace}; it is not revoked"
            )
        await self._client.write(
            "revoke",
            f"{role.mount}/revoke",
            api_path(role.mount, "revoke"),
            {"serial_number": serial},
        )

    async def trust_bundle(self) -> list[x509.Certificate]:
        bundle, _ = await self._bundle_and_verifier()
        return list(bundle)

    async def refresh(self) -> None:
        """Forget the cached bundle; the next use reads the issuers again."""
        self._bundle_expires = None

    # -- helpers ---------------------------------------------------------------------

    def _parse_signed(self, data: dict[str, Any]) -> Issued:
        try:
            leaf = _load_pem(data.get("certificate"), "certificate")[0]
            chain_pem = data.get("ca_chain") or [data.get("issuing_ca")]
            if isinstance(chain_pem, str):
                chain_pem = [chain_pem]
            chain = [c for pem in chain_pem for c in _load_pem(pem, "ca_chain")]
        except (ValueError, TypeError, IndexError) as err:
            raise SignerUnavailable(
                f"Vault sign on {self._role.sign_target}: unreadable certificate in response"
            ) from err
        # Intermediates only: roots reach verifiers through the trust bundle, never tls.crt.
        return Issued(leaf, tuple(c for c in chain if not _self_issued(c)))

    async def _check(self, request: SvidRequest, issued: Issued) -> None:
        for attempt in (1, 2):
            _, verifier = await self._bundle_and_verifier()
            try:
                check_issued(request, issued, verifier, self._role.lifetime_tolerance)
                return
            except SVIDVerificationError as err:
                if attempt == 1 and err.reason == "untrusted-chain":
                    # Perhaps Vault rotated its CA since we cached the bundle.
                    await self.refresh()
                    continue
                raise SignerRejected(
                    f"signed certificate from {self._role.sign_target} is not a valid "
                    f"X.509-SVID: {err.reason}"
                ) from err

    async def _bundle_and_verifier(self) -> tuple[tuple[x509.Certificate, ...], SvidVerifier]:
        async with self._bundle_lock:
            now = self._clock.now()
            if (
                self._verifier is None
                or self._bundle_expires is None
                or now >= self._bundle_expires
            ):
                bundle = tuple(await self._fetch_roots(now))
                if not bundle:
                    raise SignerUnavailable(
                        f"Vault PKI mount {self._role.mount} has no live issuer certificate"
                    )
                self._bundle = bundle
                self._verifier = SvidVerifier(bundle, self._role.trust_domain)
                self._bundle_expires = now + self._role.bundle_cache_ttl
            return self._bundle, self._verifier

    async def _fetch_roots(self, now: dt.datetime) -> list[x509.Certificate]:
        mount = self._role.mount
        listing = await self._client.list(
            "list issuers", f"{mount}/issuers", api_path(mount, "issuers")
        )
        ids = listing.get("keys") or []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise SignerUnavailable(f"Vault list issuers on {mount}/issuers: malformed response")
        issuer_docs = await asyncio.gather(
            *(
                self._client.read(
                    "read issuer", f"{mount}/issuer", api_path(mount, "issuer", i, "json")
                )
                for i in ids
            )
        )
        chains: list[list[x509.Certificate]] = []
        try:
            for doc in issuer_docs:
                pems = doc.get("ca_chain") or [doc.get("certificate")]
                chains.append([c for pem in pems for c in _load_pem(pem, "ca_chain")])
        except (ValueError, TypeError) as err:
            raise SignerUnavailable(
                f"Vault read issuer on {mount}/issuer: unreadable certificate in response"
            ) from err
        return roots_of(chains, now)
