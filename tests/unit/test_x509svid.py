# SPDX-License-Identifier: Apache-2.0
"""Every MUST of the X509-SVID profile, checked on minted SVIDs by an independent oracle.

The oracle is ``cryptography.x509.verification`` (RFC 5280 path validation) plus
reading each extension back from the DER, never wio's own template values.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.certs import NOW, Authority, make_ca
from wio.errors import ValidationError
from wio.issuing.keys import KeyType, PrivateKey, generate_private_key, public_key_fingerprint
from wio.issuing.verify_x509 import verify_svid
from wio.issuing.x509svid import (
    DEFAULT_SKEW,
    SERIAL_BITS,
    X509SVID,
    Issued,
    SvidTemplate,
    build_svid_template,
    random_serial,
    sign_svid,
)
from wio.models.spiffe import SpiffeID

pytestmark = pytest.mark.unit

SPIFFE_ID = SpiffeID.parse("spiffe://example.org/ns/payments/sa/api")
HOUR = dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def issuer() -> Authority:
    return make_ca("svid test root")


def _mint(
    issuer: Authority,
    key_type: KeyType = KeyType.ECDSAP256,
    *,
    ttl: dt.timedelta = HOUR,
    now: dt.datetime = NOW,
    dns_names: tuple[str, ...] = (),
    organization: str | None = None,
) -> X509SVID:
    """What the service does: a fresh key, a template for its public half, a signature."""
    key = generate_private_key(key_type)
    template = build_svid_template(
        SPIFFE_ID,
        key.public_key,
        issuer_cert=issuer.cert,
        ttl=ttl,
        now=now,
        dns_names=dns_names,
        organization=organization,
    )
    cert = sign_svid(template, PrivateKey(issuer.key), issuer.cert)
    return X509SVID(Issued(cert), key)


E = TypeVar("E", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def _oracle_verify(issuer: Authority, svid: X509SVID, now: dt.datetime = NOW) -> list[str]:
    """Path-validate with cryptography's verifier as a client certificate; return URI SANs."""
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([issuer.cert]))
        .time(now)
        .build_client_verifier()
    )
    result = verifier.verify(svid.cert, list(svid.chain))
    assert result.subjects is not None
    return [n.value for n in result.subjects if isinstance(n, x509.UniformResourceIdentifier)]


@pytest.mark.parametrize(
    "key_type", [KeyType.ECDSAP256, KeyType.ECDSAP384, KeyType.ED25519, KeyType.RSA2048]
)
def test_minted_svid_passes_rfc5280_path_validation_for_every_key_type(
    issuer: Authority, key_type: KeyType
) -> None:
    svid = _mint(issuer, key_type)
    assert _oracle_verify(issuer, svid) == [str(SPIFFE_ID)]
    assert verify_svid(svid.cert_chain_pem(), [issuer.cert], "example.org", NOW).spiffe_id == (
        SPIFFE_ID
    )


def test_exactly_one_uri_san_and_it_is_the_spiffe_id(issuer: Authority) -> None:
    svid = _mint(issuer, dns_names=("api.payments.svc", "api.example.com"))
    san = _ext(svid.cert, x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [str(SPIFFE_ID)]
    assert san.value.get_values_for_type(x509.DNSName) == ["api.payments.svc", "api.example.com"]
    assert len(list(san.value)) == 3


def test_san_is_critical_when_the_subject_is_empty(issuer: Authority) -> None:
    svid = _mint(issuer)
    assert len(svid.cert.subject) == 0
    assert _ext(svid.cert, x509.SubjectAlternativeName).critical


def test_with_a_minimal_organization_subject_the_san_is_not_critical(issuer: Authority) -> None:
    svid = _mint(issuer, organization="acme")
    assert svid.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "acme"
    assert len(svid.cert.subject) == 1
    assert not _ext(svid.cert, x509.SubjectAlternativeName).critical
    _oracle_verify(issuer, svid)


def test_leaf_is_not_a_ca_and_basic_constraints_is_critical(issuer: Authority) -> None:
    bc = _ext(_mint(issuer).cert, x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca is False
    assert bc.value.path_length is None


@pytest.mark.parametrize(
    ("key_type", "key_encipherment"),
    [(KeyType.ECDSAP256, False), (KeyType.ED25519, False), (KeyType.RSA2048, True)],
)
def test_key_usage_is_critical_digital_signature_and_never_cert_or_crl_sign(
    issuer: Authority, key_type: KeyType, key_encipherment: bool
) -> None:
    ku = _ext(_mint(issuer, key_type).cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert ku.value.key_encipherment is key_encipherment
    assert not ku.value.key_cert_sign
    assert not ku.value.crl_sign
    assert not ku.value.key_agreement
    assert not ku.value.content_commitment
    assert not ku.value.data_encipherment


def test_eku_has_server_and_client_auth(issuer: Authority) -> None:
    eku = _ext(_mint(issuer).cert, x509.ExtendedKeyUsage)
    assert set(eku.value) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_subject_and_authority_key_identifiers(issuer: Authority) -> None:
    svid = _mint(issuer)
    ski = _ext(svid.cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(svid.key.public_key)
    aki = _ext(svid.cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(issuer.cert, x509.SubjectKeyIdentifier).value.digest


def test_serials_are_positive_random_and_below_2_159(issuer: Authority) -> None:
    serials = {_mint(issuer).cert.serial_number for _ in range(20)}
    assert len(serials) == 20
    assert all(0 < s < 2**159 for s in serials)
    assert max(s.bit_length() for s in serials) > 140  # drawn from the full range


def test_an_injected_random_source_decides_the_serial_and_zero_is_redrawn() -> None:
    draws = iter([0, 42])
    assert random_serial(lambda bits: next(draws)) == 42
    assert random_serial(lambda bits: 2**bits - 1) == 2**SERIAL_BITS - 1


def test_a_new_key_every_issuance(issuer: Authority) -> None:
    svids = [_mint(issuer) for _ in range(5)]
    fingerprints = {public_key_fingerprint(s.cert.public_key()) for s in svids}  # type: ignore[arg-type]
    assert len(fingerprints) == 5
    for svid in svids:
        assert svid.key.matches(svid.cert.public_key())  # type: ignore[arg-type]


def test_lifetime_is_as_asked_with_not_before_backdated_by_the_skew(issuer: Authority) -> None:
    now = NOW.replace(microsecond=654321)
    svid = _mint(issuer, ttl=dt.timedelta(minutes=45), now=now)
    assert svid.not_before == NOW - DEFAULT_SKEW
    assert svid.not_after == NOW + dt.timedelta(minutes=45)
    assert svid.not_before.microsecond == 0
    assert svid.not_after.microsecond == 0


def test_the_leaf_never_outlives_its_issuer() -> None:
    short = make_ca("short root", not_after=NOW + dt.timedelta(minutes=10))
    svid = _mint(short, ttl=HOUR)
    assert svid.not_after == short.cert.not_valid_after_utc
    _oracle_verify(short, svid)


def test_not_before_is_never_earlier_than_the_issuers() -> None:
    young = make_ca("young root", not_before=NOW - dt.timedelta(seconds=5))
    svid = _mint(young)
    assert svid.not_before == young.cert.not_valid_before_utc


def test_an_expired_issuer_cannot_sign() -> None:
    old = make_ca("old root", not_before=NOW - HOUR * 2, not_after=NOW - HOUR)
    with pytest.raises(ValidationError, match="issuer certificate expired"):
        _mint(old)


@pytest.mark.parametrize("ttl", [dt.timedelta(0), dt.timedelta(seconds=-1)])
def test_a_non_positive_ttl_is_refused(issuer: Authority, ttl: dt.timedelta) -> None:
    with pytest.raises(ValidationError, match="TTL must be positive"):
        _mint(issuer, ttl=ttl)


def test_a_naive_now_is_refused(issuer: Authority) -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        _mint(issuer, now=NOW.replace(tzinfo=None))


def test_a_leaf_for_a_bare_trust_domain_id_is_refused(issuer: Authority) -> None:
    key = generate_private_key(KeyType.ECDSAP256)
    with pytest.raises(ValidationError, match="needs a non-root path"):
        build_svid_template(
            SpiffeID.parse("spiffe://example.org"),
            key.public_key,
            issuer_cert=issuer.cert,
            ttl=HOUR,
            now=NOW,
        )


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("API.example.com",), "contains 'A'"),
        (("a..b",), "empty label"),
        (("-a.example.com",), "starting or ending in '-'"),
        (("a_b.example.com",), "contains '_'"),
        (("a.example.com", "a.example.com"), "listed twice"),
        (("x" * 64 + ".com",), "over 63 characters"),
        (("",), "non-empty"),
    ],
)
def test_bad_dns_names_are_refused(issuer: Authority, names: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _mint(issuer, dns_names=names)


def test_a_wildcard_dns_name_is_accepted_and_verifies_as_a_server(issuer: Authority) -> None:
    svid = _mint(issuer, dns_names=("*.payments.svc",))
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([issuer.cert]))
        .time(NOW)
        .build_server_verifier(x509.DNSName("api.payments.svc"))
    )
    verifier.verify(svid.cert, [])


def test_signing_with_another_issuer_than_the_template_names_is_refused(
    issuer: Authority,
) -> None:
    other = make_ca("other root")
    key = generate_private_key(KeyType.ECDSAP256)
    template = build_svid_template(
        SPIFFE_ID, key.public_key, issuer_cert=issuer.cert, ttl=HOUR, now=NOW
    )
    with pytest.raises(ValidationError, match="different issuer"):
        sign_svid(template, PrivateKey(other.key), other.cert)


def test_the_template_is_frozen_and_validated_on_construction(issuer: Authority) -> None:
    key = generate_private_key(KeyType.ECDSAP256)
    template = build_svid_template(
        SPIFFE_ID, key.public_key, issuer_cert=issuer.cert, ttl=HOUR, now=NOW
    )
    with pytest.raises(AttributeError):
        template.serial_number = 1  # type: ignore[misc]
    with pytest.raises(ValidationError, match="below 2\\*\\*159"):
        SvidTemplate(
            spiffe_id=SPIFFE_ID,
            public_key=key.public_key,
            dns_names=(),
            serial_number=2**159,
            not_before=template.not_before,
            not_after=template.not_after,
            issuer=template.issuer,
            authority_key_identifier=template.authority_key_identifier,
        )
    with pytest.raises(ValidationError, match="later than notBefore"):
        SvidTemplate(
            spiffe_id=SPIFFE_ID,
            public_key=key.public_key,
            dns_names=(),
            serial_number=7,
            not_before=template.not_after,
            not_after=template.not_before,
            issuer=template.issuer,
            authority_key_identifier=template.authority_key_identifier,
        )


def test_x509svid_pem_layouts(issuer: Authority) -> None:
    intermediate = make_ca("intermediate", issuer=issuer)
    key = generate_private_key(KeyType.ECDSAP256)
    template = build_svid_template(
        SPIFFE_ID, key.public_key, issuer_cert=intermediate.cert, ttl=HOUR, now=NOW
    )
    cert = sign_svid(template, PrivateKey(intermediate.key), intermediate.cert)
    svid = X509SVID(Issued(cert, (intermediate.cert,)), key)

    chain = x509.load_pem_x509_certificates(svid.cert_chain_pem())
    assert chain == [cert, intermediate.cert]  # leaf first, then intermediates, no root
    bundle = svid.credential_bundle_pem()
    assert bundle == svid.key_pem() + svid.cert_chain_pem()  # the key first
    assert serialization.load_pem_private_key(svid.key_pem(), None) is not None
    assert svid.serial_hex == format(cert.serial_number, "x")
    assert svid.spiffe_id == SPIFFE_ID
    assert svid.key_fingerprint == key.fingerprint
    verified = verify_svid(svid.cert_chain_pem(), [issuer.cert], "example.org", NOW)
    assert [c.subject for c in verified.path] == [
        cert.subject,
        intermediate.cert.subject,
        issuer.cert.subject,
    ]


def test_x509svid_refuses_a_key_that_does_not_match(issuer: Authority) -> None:
    svid = _mint(issuer)
    with pytest.raises(ValidationError, match="does not match"):
        X509SVID(svid.issued, generate_private_key(KeyType.ECDSAP256))


def test_repr_never_shows_key_material(issuer: Authority) -> None:
    svid = _mint(issuer)
    text = repr(svid)
    pem_body = svid.key_pem().decode().splitlines()[1]
    assert pem_body not in text
    assert "key=" not in text


def test_issued_serial_hex_and_times(issuer: Authority) -> None:
    issued = _mint(issuer).issued
    assert int(issued.serial_hex, 16) == issued.serial_number
    assert issued.not_after - issued.not_before == HOUR + DEFAULT_SKEW
    assert list(itertools.islice(issued.cert_chain_pem().splitlines(), 1)) == [
        b"-----BEGIN CERTIFICATE-----"
    ]
