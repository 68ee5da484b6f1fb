# SPDX-License-Identifier: Apache-2.0
"""Certificate builders for tests: good SVIDs, and bad ones with exactly one thing wrong.

``LeafSpec`` describes a leaf whose defaults make a valid X.509-SVID for
``spiffe://example.org/ns/default/sa/app``; tests ``replace`` one field to get a
certificate that breaks one rule. These builders deliberately bypass wio's own
template code, so verifier tests do not depend on the issuer they check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
TRUST_DOMAIN = "example.org"
GOOD_ID = "spiffe://example.org/ns/default/sa/app"

IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Authority:
    """A CA certificate with its key, for signing test leaves."""

    cert: x509.Certificate
    key: IssuerKey = field(repr=False)

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _ku(**flags: bool) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{n: flags.get(n, False) for n in names})


def key_usage(**flags: bool) -> x509.KeyUsage:
    """A KeyUsage with the named flags set and every other flag clear."""
    return _ku(**flags)


LEAF_KU = key_usage(digital_signature=True)
LEAF_BC = x509.BasicConstraints(ca=False, path_length=None)
CA_KU = key_usage(key_cert_sign=True, crl_sign=True)


def make_ca(
    name: str = "test root",
    *,
    issuer: Authority | None = None,
    key: IssuerKey | None = None,
    ca: bool = True,
    ku: x509.KeyUsage | None = CA_KU,
    not_before: dt.datetime = NOW - dt.timedelta(days=30),
    not_after: dt.datetime = NOW + dt.timedelta(days=335),
    trust_domain: str | None = TRUST_DOMAIN,
    path_length: int | None = None,
) -> Authority:
    """A CA (self-signed unless ``issuer``) with the usual CA extensions, adjustable."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wio tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    signer_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), False
        )
    )
    if ku is not None:
        builder = builder.add_extension(ku, critical=True)
    if trust_domain is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]
            ),
            critical=False,
        )
    return Authority(builder.sign(signer_key, hashes.SHA256()), key)


@dataclass(frozen=True)
class LeafSpec:
    """Every knob of a test leaf; the defaults make a valid X.509-SVID."""

    uris: Sequence[str] = (GOOD_ID,)
    dns_names: Sequence[str] = ()
    extra_sans: Sequence[x509.GeneralName] = ()
    include_san: bool = True
    basic_constraints: x509.BasicConstraints | None = LEAF_BC
    key_usage: x509.KeyUsage | None = LEAF_KU
    key_usage_critical: bool = True
    eku: Sequence[x509.ObjectIdentifier] | None = (
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    not_before: dt.datetime = NOW - dt.timedelta(minutes=5)
    not_after: dt.datetime = NOW + dt.timedelta(hours=1)
    serial: int = 0x1234_5678
    rsa_bits: int | None = None  # None: a P-256 key
    curve: ec.EllipticCurve | None = None  # an EC key on this curve instead
    subject: x509.Name = field(default_factory=lambda: x509.Name([]))


def make_leaf(issuer: Authority, spec: LeafSpec | None = None) -> x509.Certificate:
    """Sign a leaf described by ``spec`` (default: a valid SVID) with ``issuer`` (SHA-256)."""
    spec = spec or LeafSpec()
    return _leaf_builder(issuer, spec).sign(issuer.key, hashes.SHA256())


def _leaf_builder(issuer: Authority, spec: LeafSpec) -> x509.CertificateBuilder:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if spec.rsa_bits is not None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=spec.rsa_bits)
    else:
        key = ec.generate_private_key(spec.curve or ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(spec.subject)
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(spec.serial)
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    )
    if spec.include_san:
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in spec.uris]
        names += [x509.DNSName(d) for d in spec.dns_names]
        names += list(spec.extra_sans)
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=True)
    if spec.basic_constraints is not None:
        builder = builder.add_extension(spec.basic_constraints, critical=True)
    if spec.key_usage is not None:
        builder = builder.add_extension(spec.key_usage, critical=spec.key_usage_critical)
    if spec.eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(spec.eku)), critical=False)
    return builder


_SHA256_WITH_RSA = bytes.fromhex("2a864886f70d01010b")  # 1.2.840.113549.1.1.11
_SHA1_WITH_RSA = bytes.fromhex("2a864886f70d010105")  # 1.2.840.113549.1.1.5


def make_sha1_leaf(issuer: Authority, spec: LeafSpec | None = None) -> x509.Certificate:
    """A leaf signed with sha1WithRSAEncryption by an RSA ``issuer``.

    cryptography refuses SHA-1 in ``CertificateBuilder.sign``, but a raw RSA
    PKCS#1 v1.5 signature over SHA-1 is still allowed. The two OIDs have the same
    DER length, so we sign with SHA-256, swap the algorithm OID in the TBS and
    outer AlgorithmIdentifier, and replace the signature (same length for the
    same RSA modulus): a genuine SHA-1-signed certificate.
    """
    if not isinstance(issuer.key, rsa.RSAPrivateKey):
        raise TypeError("make_sha1_leaf needs an RSA issuer")
    cert = make_leaf(issuer, spec)
    der = cert.public_bytes(serialization.Encoding.DER)
    tbs = cert.tbs_certificate_bytes
    assert tbs.count(_SHA256_WITH_RSA) == 1
    sha1_tbs = tbs.replace(_SHA256_WITH_RSA, _SHA1_WITH_RSA)
    old_sig = cert.signature
    new_sig = issuer.key.sign(sha1_tbs, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    assert len(new_sig) == len(old_sig)
    assert der.endswith(old_sig)
    der = der[: -len(old_sig)] + new_sig
    der = der.replace(tbs, sha1_tbs)
    assert der.count(_SHA256_WITH_RSA) == 1  # the outer signatureAlgorithm
    der = der.replace(_SHA256_WITH_RSA, _SHA1_WITH_RSA)
    return x509.load_der_x509_certificate(der)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
