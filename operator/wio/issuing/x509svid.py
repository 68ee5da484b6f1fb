# SPDX-License-Identifier: Apache-2.0
"""X.509-SVIDs: build the certificate template, then sign it (ARCHITECTURE.md §8).

``build_svid_template`` is a pure function of its inputs and ``now``: it decides
every field of the leaf (SPIFFE ID, DNS names, validity, serial, issuer) and
validates them, so the rules of the X509-SVID profile live in one place that
tests can read back without a signature. ``sign_svid`` then turns a template
into a certificate with the fixed profile:

- exactly one URI SAN (the SPIFFE ID) plus optional DNS SANs; the SAN
  extension is critical because the subject is empty (RFC 5280 4.1.2.6);
- basicConstraints cA=false, critical; keyUsage digitalSignature (and
  keyEncipherment for RSA keys only), critical; EKU serverAuth + clientAuth;
- subject and authority key identifiers;
- ``notBefore = now - skew`` and ``notAfter = min(now + ttl, issuer notAfter)``:
  a leaf never outlives its issuer.

``Issued`` is what a signer hands back (leaf plus intermediates, never a key);
``X509SVID`` adds the private key the workload generated and holds the PEM
layouts that land in the Secret.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wio.clock import whole_seconds
from wio.errors import ValidationError
from wio.issuing.keys import PrivateKey, PublicKeyTypes, key_type_of
from wio.models.dns import check_dns_name
from wio.models.spiffe import SpiffeID

DEFAULT_SKEW = dt.timedelta(seconds=30)
"""Backdating of notBefore, so a verifier whose clock is a little behind still accepts."""

SERIAL_BITS = 159
"""Serials are positive and below 2**159: at most 20 DER octets (RFC 5280 4.1.2.2)."""

_ZERO = dt.timedelta(0)
_EMPTY_NAME = x509.Name([])  # immutable, so one instance serves every leaf


def random_serial(randbits: Callable[[int], int] = secrets.randbits) -> int:
    """A random positive serial below 2**159 from the OS random source (or an injected one)."""
    while True:
        serial = randbits(SERIAL_BITS)
        # Zero is not a positive integer; retrying costs one draw in 2**159.
        if 0 < serial < 2**SERIAL_BITS:
            return serial


def _aware(when: dt.datetime, name: str) -> None:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValidationError(name, "time must be timezone-aware")


def authority_key_identifier_for(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI for leaves of ``issuer_cert``: its SKI if it has one, else derived from its key."""
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        public_key = issuer_cert.public_key()
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)


@dataclass(frozen=True)
class SvidTemplate:
    """Every decided field of an X.509-SVID leaf, validated; signing adds nothing but a signature.

    Build with ``build_svid_template``; direct construction checks the same invariants.
    """

    spiffe_id: SpiffeID
    public_key: PublicKeyTypes = field(repr=False)
    dns_names: tuple[str, ...]
    serial_number: int
    not_before: dt.datetime
    not_after: dt.datetime
    issuer: x509.Name
    authority_key_identifier: x509.AuthorityKeyIdentifier = field(repr=False)
    subject: x509.Name = field(default_factory=lambda: x509.Name([]))

    def __post_init__(self) -> None:
        if not isinstance(self.spiffe_id, SpiffeID):
            raise ValidationError("spiffeID", "must be a SpiffeID")
        if self.spiffe_id.is_trust_domain_id:
            # X509-SVID 3.1: a leaf's SPIFFE ID has a non-root path; the bare
            # trust domain ID belongs to signing certificates.
            raise ValidationError(
                "spiffeID", f"{self.spiffe_id} has no path; a leaf SVID needs a non-root path"
            )
        key_type_of(self.public_key)  # refuses curves and sizes wio does not issue
        if not isinstance(self.dns_names, tuple):
            raise ValidationError("dnsNames", "must be a tuple")
        seen: set[str] = set()
        for name in self.dns_names:
            check_dns_name(name)
            if name in seen:
                raise ValidationError("dnsNames", f"DNS name {name!r} is listed twice")
            seen.add(name)
        if not 0 < self.serial_number < 2**SERIAL_BITS:
            raise ValidationError("serialNumber", "serial must be positive and below 2**159")
        for name, when in (("notBefore", self.not_before), ("notAfter", self.not_after)):
            _aware(when, name)
            if when.microsecond:
                raise ValidationError(name, "time must be whole seconds")
        if self.not_after <= self.not_before:
            raise ValidationError("notAfter", "notAfter must be later than notBefore")

    @property
    def lifetime(self) -> dt.timedelta:
        return self.not_after - self.not_before

    @property
    def key_encipherment(self) -> bool:
        """RSA keys may encipher (TLS RSA key exchange); EC and Ed25519 keys cannot."""
        return isinstance(self.public_key, rsa.RSAPublicKey)


def build_svid_template(
    spiffe_id: SpiffeID,
    public_key: PublicKeyTypes,
    *,
    issuer_cert: x509.Certificate,
    ttl: dt.timedelta,
    now: dt.datetime,
    dns_names: Sequence[str] = (),
    skew: dt.timedelta = DEFAULT_SKEW,
    organization: str | None = None,
    randbits: Callable[[int], int] = secrets.randbits,
    authority_key_identifier: x509.AuthorityKeyIdentifier | None = None,
) -> SvidTemplate:
    """Decide every field of a leaf for ``spiffe_id`` and ``public_key`` at ``now``.

    ``notAfter`` is ``now + ttl`` capped at the issuer's notAfter, and ``notBefore``
    is ``now - skew`` but never before the issuer's notBefore. Raises
    ``ValidationError`` for a non-positive TTL or an issuer already expired at ``now``.
    ``authority_key_identifier`` may be passed in by a caller that issues many leaves
    from one issuer (it must be ``authority_key_identifier_for(issuer_cert)``), to save
    re-reading the issuer's extensions per leaf.
    """
    _aware(now, "now")
    if ttl <= _ZERO:
        raise ValidationError("ttl", "TTL must be positive")
    if skew < _ZERO:
        raise ValidationError("skew", "skew must not be negative")
    now = whole_seconds(now)
    issuer_not_before = issuer_cert.not_valid_before_utc
    issuer_not_after = issuer_cert.not_valid_after_utc
    if issuer_not_after <= now:
        raise ValidationError(
            "issuer", f"issuer certificate expired at {issuer_not_after.isoformat()}"
        )
    not_before = max(now - skew, issuer_not_before)
    not_after = min(whole_seconds(now + ttl), issuer_not_after)
    subject = (
        x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
        if organization
        else _EMPTY_NAME
    )
    return SvidTemplate(
        spiffe_id=spiffe_id,
        public_key=public_key,
        dns_names=tuple(dns_names),
        serial_number=random_serial(randbits),
        not_before=not_before,
        not_after=not_after,
        issuer=issuer_cert.subject,
        authority_key_identifier=authority_key_identifier
        or authority_key_identifier_for(issuer_cert),
        subject=subject,
    )


_LEAF_BASIC_CONSTRAINTS = x509.BasicConstraints(ca=False, path_length=None)
_LEAF_EKU = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)


def _key_usage(key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


_KU_PLAIN = _key_usage(False)
_KU_RSA = _key_usage(True)


def sign_svid(
    template: SvidTemplate, issuer_key: PrivateKey, issuer_cert: x509.Certificate
) -> x509.Certificate:
    """Sign ``template`` with ``issuer_key``; the issuer's subject must be the template's issuer."""
    if issuer_cert.subject != template.issuer:
        raise ValidationError("issuer", "template was built for a different issuer certificate")
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(str(template.spiffe_id))]
    sans.extend(x509.DNSName(name) for name in template.dns_names)
    builder = (
        x509.CertificateBuilder()
        .subject_name(template.subject)
        .issuer_name(template.issuer)
        .public_key(template.public_key)
        .serial_number(template.serial_number)
        .not_valid_before(template.not_before)
        .not_valid_after(template.not_after)
        # RFC 5280 4.1.2.6: with an empty subject the SAN carries the identity
        # and must be critical; with a subject it should not be.
        .add_extension(x509.SubjectAlternativeName(sans), critical=not template.subject)
        .add_extension(_LEAF_BASIC_CONSTRAINTS, critical=True)
        .add_extension(_KU_RSA if template.key_encipherment else _KU_PLAIN, critical=True)
        .add_extension(_LEAF_EKU, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(template.public_key), False)
        .add_extension(template.authority_key_identifier, critical=False)
    )
    return builder.sign(issuer_key.key, issuer_key.certificate_hash)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Issued:
    """A signed leaf and the intermediates between it and a bundle root (never the root).

    What a signer returns: it never saw the leaf's private key.
    """

    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.cert, x509.Certificate):
            raise ValidationError("certificate", "must be an x509.Certificate")
        if not isinstance(self.chain, tuple) or not all(
            isinstance(c, x509.Certificate) for c in self.chain
        ):
            raise ValidationError("chain", "must be a tuple of x509.Certificate")

    @property
    def serial_number(self) -> int:
        return self.cert.serial_number

    @property
    def serial_hex(self) -> str:
        """Lower-case hex without separators: the form annotations and revocation lists use."""
        return format(self.cert.serial_number, "x")

    @property
    def not_before(self) -> dt.datetime:
        return self.cert.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.cert.not_valid_after_utc

    @cached_property
    def spiffe_id(self) -> SpiffeID:
        """The SPIFFE ID in the leaf's single URI SAN."""
        try:
            san = self.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound as err:
            raise ValidationError("certificate", "leaf has no subjectAltName") from err
        uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
        if len(uris) != 1:
            raise ValidationError("certificate", f"leaf has {len(uris)} URI SANs; need exactly 1")
        return SpiffeID.parse(uris[0], field="certificate.uriSAN")

    def cert_chain_pem(self) -> bytes:
        """Leaf first, then intermediates, no root: the ``tls.crt`` layout."""
        if not self.chain:
            return _pem(self.cert)
        return b"".join(_pem(c) for c in (self.cert, *self.chain))


@dataclass(frozen=True)
class X509SVID:
    """An issued SVID together with the private key it certifies; the Secret's contents."""

    issued: Issued
    key: PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, PrivateKey):
            raise ValidationError("key", "must be a PrivateKey")
        if not self.key.matches(self.issued.cert.public_key()):  # type: ignore[arg-type]
            raise ValidationError("key", "private key does not match the certificate")

    @property
    def cert(self) -> x509.Certificate:
        return self.issued.cert

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self.issued.chain

    @property
    def spiffe_id(self) -> SpiffeID:
        return self.issued.spiffe_id

    @property
    def serial_hex(self) -> str:
        return self.issued.serial_hex

    @property
    def not_before(self) -> dt.datetime:
        return self.issued.not_before

    @property
    def not_after(self) -> dt.datetime:
        return self.issued.not_after

    @property
    def key_fingerprint(self) -> str:
        return self.key.fingerprint

    def cert_chain_pem(self) -> bytes:
        """Leaf first, then intermediates, no root (``tls.crt``)."""
        return self.issued.cert_chain_pem()

    def key_pem(self) -> bytes:
        """PKCS#8 PEM of the private key (``tls.key``)."""
        return self.key.to_pkcs8_pem()

    def credential_bundle_pem(self) -> bytes:
        """Key first, then the chain: SPIFFE's ``credential-bundle.private-key.pem`` layout."""
        return self.key_pem() + self.cert_chain_pem()
