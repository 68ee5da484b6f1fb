# SPDX-License-Identifier: Apache-2.0
"""Verify an X.509-SVID: RFC 5280 path validation plus the SPIFFE X509-SVID leaf rules.

Path building and signature checks are delegated to
``cryptography.x509.verification`` (a maintained RFC 5280 / CABF implementation);
the SPIFFE rules it does not know are checked here first, so each rejection
carries a precise, stable ``reason`` (a metrics label and test handle):

=========================  =====================================================
reason                     meaning
=========================  =====================================================
malformed                  not parseable as PEM/DER certificates, or empty
weak-signature-hash        signed with MD5, SHA-1 or SHA-224
unsupported-signature      signature algorithm unknown to cryptography
weak-rsa-key               RSA key under 2048 bits
unsupported-key            key algorithm or curve outside RSA, P-256/384/521, Ed25519
no-uri-san                 leaf has no URI SAN
multiple-uri-sans          leaf has more than one URI SAN
invalid-spiffe-id          the URI SAN is not a valid SPIFFE ID
no-path                    the SPIFFE ID is a bare trust domain ID
foreign-trust-domain       the SPIFFE ID is in another trust domain
no-basic-constraints       the leaf has no basicConstraints extension
leaf-is-ca                 basicConstraints cA=true on the leaf
no-key-usage               keyUsage extension missing
key-usage-not-critical     keyUsage present but not critical
key-cert-sign              keyCertSign set on the leaf
crl-sign                   cRLSign set on the leaf
no-digital-signature       digitalSignature not set
bad-eku                    EKU present without serverAuth or clientAuth
not-yet-valid / expired    a certificate in the chain is outside its validity at now
intermediate-not-ca        an intermediate lacks cA=true or keyCertSign
untrusted-chain            no valid path from the leaf to a bundle root
revoked                    the leaf's serial is on the revocation list
=========================  =====================================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509 import verification

from wio.errors import InvalidSpiffeID, SVIDVerificationError, ValidationError
from wio.models.spiffe import SpiffeID, TrustDomain

MIN_RSA_BITS = 2048
STRONG_HASHES = frozenset({"sha256", "sha384", "sha512"})
ALLOWED_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
_ACCEPTED_EKUS = frozenset(
    {x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH}
)


def _fail(reason: str, message: str) -> SVIDVerificationError:
    return SVIDVerificationError(reason, message)


@dataclass(frozen=True)
class VerifiedSVID:
    """A leaf that passed every check, its SPIFFE ID and the verified path (leaf first)."""

    spiffe_id: SpiffeID
    leaf: x509.Certificate
    path: tuple[x509.Certificate, ...]

    @property
    def serial_hex(self) -> str:
        return format(self.leaf.serial_number, "x")

    @property
    def not_before(self) -> dt.datetime:
        return self.leaf.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.leaf.not_valid_after_utc

    @property
    def dns_names(self) -> tuple[str, ...]:
        san = self.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return tuple(san.get_values_for_type(x509.DNSName))


def load_chain(chain: bytes | str | Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """Certificates from PEM text or a list; anything unreadable is ``malformed``."""
    if isinstance(chain, str):
        chain = chain.encode("utf-8", errors="replace")
    if isinstance(chain, bytes):
        if not chain.strip():
            raise _fail("malformed", "empty certificate chain")
        try:
            certs = x509.load_pem_x509_certificates(chain)
        except (ValueError, UnsupportedAlgorithm) as err:
            raise _fail("malformed", "not a readable PEM certificate chain") from err
    else:
        certs = list(chain)
        if not all(isinstance(c, x509.Certificate) for c in certs):
            raise _fail("malformed", "chain must hold x509.Certificate objects")
    if not certs:
        raise _fail("malformed", "empty certificate chain")
    return certs


def _check_algorithms(cert: x509.Certificate, what: str) -> None:
    try:
        hash_alg = cert.signature_hash_algorithm
    except UnsupportedAlgorithm as err:
        raise _fail("unsupported-signature", f"{what} uses an unknown signature algorithm") from err
    if hash_alg is not None and hash_alg.name not in STRONG_HASHES:
        raise _fail("weak-signature-hash", f"{what} is signed with {hash_alg.name.upper()}")
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as err:
        raise _fail("unsupported-key", f"{what} has an unreadable or unknown public key") from err
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise _fail(
                "weak-rsa-key", f"{what} has a {key.key_size}-bit RSA key; minimum {MIN_RSA_BITS}"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ALLOWED_CURVES:
            raise _fail("unsupported-key", f"{what} uses curve {key.curve.name}")
    elif not isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        raise _fail("unsupported-key", f"{what} has a {type(key).__name__} key")


def _check_validity(cert: x509.Certificate, what: str, now: dt.datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise _fail(
            "not-yet-valid",
            f"{what} is not valid before {cert.not_valid_before_utc.isoformat()}",
        )
    if now > cert.not_valid_after_utc:
        raise _fail("expired", f"{what} expired at {cert.not_valid_after_utc.isoformat()}")


_E = TypeVar("_E", bound=x509.ExtensionType)


def _extension(cert: x509.Certificate, kind: type[_E]) -> x509.Extension[_E] | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def _leaf_spiffe_id(leaf: x509.Certificate, trust_domain: TrustDomain) -> SpiffeID:
    san = _extension(leaf, x509.SubjectAlternativeName)
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier) if san else []
    if not uris:
        raise _fail("no-uri-san", "leaf has no URI SAN; an X.509-SVID carries its SPIFFE ID there")
    if len(uris) > 1:
        raise _fail("multiple-uri-sans", f"leaf has {len(uris)} URI SANs; exactly one is allowed")
    try:
        spiffe_id = SpiffeID.parse(uris[0], field="uriSAN")
    except InvalidSpiffeID as err:
        raise _fail("invalid-spiffe-id", f"URI SAN is not a SPIFFE ID: {err.detail}") from err
    if spiffe_id.is_trust_domain_id:
        raise _fail("no-path", f"leaf SPIFFE ID {spiffe_id} has no path (X509-SVID 3.1)")
    if spiffe_id.trust_domain != trust_domain:
        raise _fail(
            "foreign-trust-domain",
            f"leaf is in trust domain {spiffe_id.trust_domain}, expected {trust_domain}",
        )
    return spiffe_id


def _check_leaf_profile(leaf: x509.Certificate) -> None:
    bc = _extension(leaf, x509.BasicConstraints)
    if bc is None:
        # RFC 5280 lets a leaf omit it, but SPIFFE verifiers (py-spiffe among them) refuse
        # such an SVID, so wio never hands one out.
        raise _fail(
            "no-basic-constraints",
            "leaf has no basicConstraints extension (SPIFFE verifiers refuse it; a Vault or "
            "OpenBao PKI role needs basic_constraints_valid_for_non_ca=true)",
        )
    if bc.value.ca:
        raise _fail("leaf-is-ca", "leaf has basicConstraints cA=true")
    ku = _extension(leaf, x509.KeyUsage)
    if ku is None:
        raise _fail("no-key-usage", "leaf has no keyUsage extension (X509-SVID 4.3)")
    if not ku.critical:
        raise _fail("key-usage-not-critical", "leaf keyUsage must be critical (X509-SVID 4.3)")
    if ku.value.key_cert_sign:
        raise _fail("key-cert-sign", "leaf has keyCertSign set")
    if ku.value.crl_sign:
        raise _fail("crl-sign", "leaf has cRLSign set")
    if not ku.value.digital_signature:
        raise _fail("no-digital-signature", "leaf lacks digitalSignature")
    eku = _extension(leaf, x509.ExtendedKeyUsage)
    if eku is not None and not _ACCEPTED_EKUS & set(eku.value):
        names = ", ".join(oid.dotted_string for oid in eku.value) or "none"
        raise _fail("bad-eku", f"leaf EKU has neither serverAuth nor clientAuth ({names})")


def _check_intermediate(cert: x509.Certificate, index: int) -> None:
    bc = _extension(cert, x509.BasicConstraints)
    ku = _extension(cert, x509.KeyUsage)
    if bc is None or not bc.value.ca or ku is None or not ku.value.key_cert_sign:
        raise _fail(
            "intermediate-not-ca",
            f"intermediate #{index} is not a CA (needs cA=true and keyCertSign)",
        )


def _revoked_ints(revoked: Collection[int | str]) -> frozenset[int]:
    out = set()
    for serial in revoked:
        if isinstance(serial, int):
            out.add(serial)
        else:
            try:
                out.add(int(serial.replace(":", ""), 16))
            except ValueError as err:
                raise ValidationError("revokedSerials", f"{serial!r} is not a hex serial") from err
    return frozenset(out)


def _ee_policy() -> verification.ExtensionPolicy:
    # The WebPKI defaults check EKU against the verifier's purpose (clientAuth for
    # a client verifier); X509-SVID allows either purpose, and _check_leaf_profile
    # has already enforced that, so EKU is left to us here.
    return verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, None
    )


class SvidVerifier:
    """Verifies SVIDs against one trust bundle; build once, reuse for many SVIDs."""

    def __init__(
        self, bundle_certs: Sequence[x509.Certificate], trust_domain: TrustDomain | str
    ) -> None:
        self.trust_domain = (
            trust_domain if isinstance(trust_domain, TrustDomain) else TrustDomain(trust_domain)
        )
        roots = list(bundle_certs)
        if not roots:
            raise _fail("untrusted-chain", "the trust bundle is empty")
        try:
            self._store = verification.Store(roots)
        except (TypeError, ValueError) as err:
            raise _fail(
                "untrusted-chain", "the trust bundle is not a list of certificates"
            ) from err
        self._ee_policy = _ee_policy()
        self._ca_policy = verification.ExtensionPolicy.webpki_defaults_ca()

    def verify(
        self,
        chain: bytes | str | Sequence[x509.Certificate],
        now: dt.datetime,
        revoked_serials: Collection[int | str] = frozenset(),
    ) -> VerifiedSVID:
        """Verify ``chain`` (leaf first, then intermediates) at ``now``.

        ``revoked_serials`` holds ints or hex strings (as ``Issued.serial_hex``).
        Raises ``SVIDVerificationError`` with a stable ``reason``.
        """
        if now.tzinfo is None:
            raise _fail("malformed", "verification time must be timezone-aware")
        certs = load_chain(chain)
        leaf, intermediates = certs[0], certs[1:]
        try:
            _check_algorithms(leaf, "leaf")
            spiffe_id = _leaf_spiffe_id(leaf, self.trust_domain)
            _check_leaf_profile(leaf)
            _check_validity(leaf, "leaf", now)
            for index, cert in enumerate(intermediates, start=1):
                _check_algorithms(cert, f"intermediate #{index}")
                _check_intermediate(cert, index)
                _check_validity(cert, f"intermediate #{index}", now)
        except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as err:
            # Extension bodies are parsed lazily: a broken one surfaces here.
            raise _fail("malformed", "certificate has an unreadable extension") from err
        verifier = (
            verification.PolicyBuilder()
            .store(self._store)
            .time(now)
            .extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(leaf, intermediates)
        except verification.VerificationError as err:
            raise _fail("untrusted-chain", f"no valid path to a trusted root: {err}") from err
        if revoked_serials and leaf.serial_number in _revoked_ints(revoked_serials):
            raise _fail("revoked", f"leaf serial {leaf.serial_number:x} is revoked")
        return VerifiedSVID(spiffe_id, leaf, tuple(verified.chain))


def verify_svid(
    chain: bytes | str | Sequence[x509.Certificate],
    bundle_certs: Sequence[x509.Certificate],
    trust_domain: TrustDomain | str,
    now: dt.datetime,
    revoked_serials: Collection[int | str] = frozenset(),
) -> VerifiedSVID:
    """One-shot ``SvidVerifier(bundle_certs, trust_domain).verify(chain, now, revoked_serials)``."""
    return SvidVerifier(bundle_certs, trust_domain).verify(chain, now, revoked_serials)
