# SPDX-License-Identifier: Apache-2.0
"""The SVID verifier rejects every certificate that breaks the X509-SVID profile, with a reason.

A negative matrix: each row builds one bad chain (one thing wrong, everything
else valid) and names the stable ``reason`` the verifier must give. The
builders in ``tests.support.certs`` bypass wio's issuer, so the verifier is
tested against certificates wio would never mint.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.certs import (
    GOOD_ID,
    LEAF_KU,
    NOW,
    Authority,
    LeafSpec,
    key_usage,
    make_ca,
    make_leaf,
    make_sha1_leaf,
    pem,
)
from wio.errors import SVIDVerificationError, ValidationError
from wio.issuing.verify_x509 import SvidVerifier, verify_svid
from wio.models.spiffe import SpiffeID

pytestmark = pytest.mark.unit

REVOKED_SERIAL = 0xDEAD_BEEF


@dataclass(frozen=True)
class Env:
    root: Authority
    rsa_root: Authority
    foreign: Authority
    intermediate: Authority
    expired_root: Authority

    @property
    def bundle(self) -> list[x509.Certificate]:
        return [self.root.cert, self.rsa_root.cert, self.expired_root.cert]


@pytest.fixture(scope="module")
def env() -> Env:
    root = make_ca("root")
    return Env(
        root=root,
        rsa_root=make_ca(
            "rsa root", key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ),
        foreign=make_ca("foreign root"),
        intermediate=make_ca("intermediate", issuer=root, trust_domain=None),
        expired_root=make_ca(
            "expired root", not_before=NOW - dt.timedelta(days=400), not_after=NOW - HOUR
        ),
    )


Chain = bytes | str | Sequence[x509.Certificate]


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Env], Chain]
    reason: str
    message: str = ""
    now: dt.datetime = NOW


def leaf(spec: LeafSpec | None = None) -> Callable[[Env], Chain]:
    """A leaf from the trusted root with ``spec``, as PEM."""
    return lambda env: pem(make_leaf(env.root, spec))


def via(issuer: Callable[[Env], Authority], spec: LeafSpec | None = None) -> Callable[[Env], Chain]:
    """A leaf from ``issuer(env)``, presented with that issuer as its intermediate."""

    def build(env: Env) -> Chain:
        ca = issuer(env)
        return [make_leaf(ca, spec), ca.cert]

    return build


def forged(env: Env) -> Chain:
    """Names the trusted root as issuer but is signed by another key."""
    impostor = Authority(env.root.cert, ec.generate_private_key(ec.SECP256R1()))
    return pem(make_leaf(impostor))


def tampered_signature(env: Env) -> Chain:
    der = bytearray(make_leaf(env.root).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    return [x509.load_der_x509_certificate(bytes(der))]


def truncated(env: Env) -> Chain:
    data = pem(make_leaf(env.root))
    return data[: len(data) // 2]


def private_key_pem(env: Env) -> Chain:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def corrupted_body(env: Env) -> Chain:
    lines = pem(make_leaf(env.root)).splitlines()
    lines[3] = b"!!!!" + lines[3][4:]
    return b"\n".join(lines)


ID = LeafSpec()
HOUR = dt.timedelta(hours=1)
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH

MATRIX = [
    # --- the URI SAN and the SPIFFE ID in it
    Case(
        "two-uri-sans",
        leaf(replace(ID, uris=(GOOD_ID, "spiffe://example.org/ns/default/sa/other"))),
        "multiple-uri-sans",
        "2 URI SANs",
    ),
    Case(
        "spiffe-plus-https-uri",
        leaf(replace(ID, uris=(GOOD_ID, "https://example.org/x"))),
        "multiple-uri-sans",
    ),
    Case("dns-san-only", leaf(replace(ID, uris=(), dns_names=("a.example.org",))), "no-uri-san"),
    Case("no-san-extension", leaf(replace(ID, include_san=False)), "no-uri-san"),
    Case(
        "foreign-trust-domain",
        leaf(replace(ID, uris=("spiffe://evil.org/ns/default/sa/app",))),
        "foreign-trust-domain",
        "evil.org",
    ),
    Case(
        "trust-domain-id-as-leaf",
        leaf(replace(ID, uris=("spiffe://example.org",))),
        "no-path",
    ),
    Case(
        "upper-case-trust-domain",
        leaf(replace(ID, uris=("spiffe://Example.org/ns/default/sa/app",))),
        "invalid-spiffe-id",
        "lower case",
    ),
    Case(
        "https-scheme",
        leaf(replace(ID, uris=("https://example.org/ns/default/sa/app",))),
        "invalid-spiffe-id",
        "scheme must be 'spiffe'",
    ),
    Case(
        "path-traversal",
        leaf(replace(ID, uris=("spiffe://example.org/ns/default/../kube-system/sa/admin",))),
        "invalid-spiffe-id",
        "'..'",
    ),
    Case(
        "percent-encoded-traversal",
        leaf(replace(ID, uris=("spiffe://example.org/ns/%2e%2e/sa/admin",))),
        "invalid-spiffe-id",
        "percent-encoding",
    ),
    Case(
        "query-in-id",
        leaf(replace(ID, uris=("spiffe://example.org/ns/default/sa/app?admin=1",))),
        "invalid-spiffe-id",
        "query",
    ),
    Case(
        "userinfo-in-id",
        leaf(replace(ID, uris=("spiffe://admin@example.org/ns/default/sa/app",))),
        "invalid-spiffe-id",
        "userinfo",
    ),
    Case(
        "port-in-id",
        leaf(replace(ID, uris=("spiffe://example.org:443/ns/default/sa/app",))),
        "invalid-spiffe-id",
        "port",
    ),
    Case(
        "trailing-slash",
        leaf(replace(ID, uris=("spiffe://example.org/ns/default/sa/app/",))),
        "invalid-spiffe-id",
        "end with '/'",
    ),
    Case("empty-trust-domain", leaf(replace(ID, uris=("spiffe:///ns/a",))), "invalid-spiffe-id"),
    # --- leaf constraints and key usage
    Case(
        "no-basic-constraints",
        leaf(replace(ID, basic_constraints=None)),
        "no-basic-constraints",
        "basic_constraints_valid_for_non_ca",
    ),
    Case(
        "ca-leaf",
        leaf(replace(ID, basic_constraints=x509.BasicConstraints(ca=True, path_length=None))),
        "leaf-is-ca",
    ),
    Case(
        "key-cert-sign",
        leaf(replace(ID, key_usage=key_usage(digital_signature=True, key_cert_sign=True))),
        "key-cert-sign",
    ),
    Case(
        "crl-sign",
        leaf(replace(ID, key_usage=key_usage(digital_signature=True, crl_sign=True))),
        "crl-sign",
    ),
    Case(
        "no-digital-signature",
        leaf(replace(ID, key_usage=key_usage(key_encipherment=True))),
        "no-digital-signature",
    ),
    Case("no-key-usage", leaf(replace(ID, key_usage=None)), "no-key-usage"),
    Case(
        "key-usage-not-critical",
        leaf(replace(ID, key_usage_critical=False)),
        "key-usage-not-critical",
    ),
    Case(
        "code-signing-eku-only",
        leaf(replace(ID, eku=(ExtendedKeyUsageOID.CODE_SIGNING,))),
        "bad-eku",
        "1.3.6.1.5.5.7.3.3",
    ),
    Case(
        "email-eku-only",
        leaf(replace(ID, eku=(ExtendedKeyUsageOID.EMAIL_PROTECTION,))),
        "bad-eku",
    ),
    Case(
        "any-eku-only",
        leaf(replace(ID, eku=(ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,))),
        "bad-eku",
    ),
    # --- validity
    Case(
        "expired",
        leaf(replace(ID, not_before=NOW - 2 * HOUR, not_after=NOW - dt.timedelta(seconds=1))),
        "expired",
    ),
    Case(
        "not-yet-valid",
        leaf(replace(ID, not_before=NOW + dt.timedelta(seconds=1), not_after=NOW + HOUR)),
        "not-yet-valid",
    ),
    Case("valid-yesterday", leaf(), "expired", now=NOW + dt.timedelta(days=1)),
    # --- algorithms
    Case("rsa-1024-key", leaf(replace(ID, rsa_bits=1024)), "weak-rsa-key", "1024-bit"),
    Case(
        "secp256k1-key",
        leaf(replace(ID, curve=ec.SECP256K1())),
        "unsupported-key",
        "secp256k1",
    ),
    Case(
        "sha1-signature",
        lambda env: pem(make_sha1_leaf(env.rsa_root)),
        "weak-signature-hash",
        "SHA1",
    ),
    # --- chain and trust
    Case("foreign-root", lambda env: pem(make_leaf(env.foreign)), "untrusted-chain"),
    Case("forged-signature", forged, "untrusted-chain"),
    Case("tampered-signature", tampered_signature, "untrusted-chain"),
    Case(
        "missing-intermediate",
        lambda env: [make_leaf(env.intermediate)],
        "untrusted-chain",
    ),
    Case(
        "intermediate-not-ca",
        via(lambda env: make_ca("not a ca", issuer=env.root, ca=False, ku=LEAF_KU)),
        "intermediate-not-ca",
    ),
    Case(
        "intermediate-without-key-cert-sign",
        via(lambda env: make_ca("no kcs", issuer=env.root, ku=key_usage(crl_sign=True))),
        "intermediate-not-ca",
    ),
    Case(
        "expired-intermediate",
        via(
            lambda env: make_ca(
                "old", issuer=env.root, not_before=NOW - 48 * HOUR, not_after=NOW - HOUR
            ),
            replace(ID, not_before=NOW - 2 * HOUR),
        ),
        "expired",
        "intermediate #1",
    ),
    Case(
        "intermediate-from-foreign-root",
        via(lambda env: make_ca("foreign int", issuer=env.foreign)),
        "untrusted-chain",
    ),
    Case(
        "expired-root",
        lambda env: pem(make_leaf(env.expired_root)),
        "untrusted-chain",
        "not valid at validation time",
    ),
    # --- revocation
    Case("revoked-serial", leaf(replace(ID, serial=REVOKED_SERIAL)), "revoked"),
    # --- unreadable input
    Case("truncated-pem", truncated, "malformed"),
    Case("garbage-bytes", lambda env: b"\x00\xff garbage \x13\x37" * 20, "malformed"),
    Case("empty-input", lambda env: b"", "malformed"),
    Case("empty-list", lambda env: [], "malformed"),
    Case("private-key-not-cert", private_key_pem, "malformed"),
    Case("corrupted-base64", corrupted_body, "malformed"),
]


@pytest.mark.parametrize("case", MATRIX, ids=[c.name for c in MATRIX])
def test_bad_svid_is_rejected_with_the_expected_reason(env: Env, case: Case) -> None:
    chain = case.build(env)
    with pytest.raises(SVIDVerificationError) as caught:
        verify_svid(chain, env.bundle, "example.org", case.now, revoked_serials={REVOKED_SERIAL, 7})
    assert caught.value.reason == case.reason, str(caught.value)
    assert case.message in str(caught.value)


def test_the_matrix_is_at_least_25_cases() -> None:
    assert len(MATRIX) >= 25
    assert len({c.name for c in MATRIX}) == len(MATRIX)


def test_the_baseline_leaf_of_the_matrix_is_accepted(env: Env) -> None:
    """Every row differs from this valid SVID in one way, so each rejection is for that way."""
    verified = verify_svid(pem(make_leaf(env.root)), env.bundle, "example.org", NOW)
    assert verified.spiffe_id == SpiffeID.parse(GOOD_ID)
    assert verified.path[-1] == env.root.cert
    via_intermediate = verify_svid(
        [make_leaf(env.intermediate), env.intermediate.cert], env.bundle, "example.org", NOW
    )
    assert via_intermediate.path == (
        via_intermediate.leaf,
        env.intermediate.cert,
        env.root.cert,
    )


@pytest.mark.parametrize(
    "spec",
    [
        replace(ID, eku=(SERVER,)),
        replace(ID, eku=(CLIENT,)),
        replace(ID, eku=None),
        replace(ID, dns_names=("a.example.org",)),
        replace(ID, rsa_bits=2048),
        replace(ID, key_usage=key_usage(digital_signature=True, key_encipherment=True)),
    ],
    ids=["server-only", "client-only", "no-eku", "with-dns", "rsa-2048", "ku-kenc"],
)
def test_profile_variations_the_spec_allows_are_accepted(env: Env, spec: LeafSpec) -> None:
    verify_svid(pem(make_leaf(env.root, spec)), env.bundle, "example.org", NOW)


def test_validity_bounds_are_inclusive(env: Env) -> None:
    cert = make_leaf(env.root)
    verify_svid([cert], env.bundle, "example.org", cert.not_valid_before_utc)
    verify_svid([cert], env.bundle, "example.org", cert.not_valid_after_utc)


def test_revoked_serials_may_be_hex_strings(env: Env) -> None:
    cert = make_leaf(env.root, replace(ID, serial=0xAB_CDEF))
    for form in ("abcdef", "AB:CD:EF", "0xabcdef"[2:]):
        with pytest.raises(SVIDVerificationError) as caught:
            verify_svid([cert], env.bundle, "example.org", NOW, revoked_serials={form})
        assert caught.value.reason == "revoked"
    with pytest.raises(ValidationError, match="not a hex serial"):
        verify_svid([cert], env.bundle, "example.org", NOW, revoked_serials={"xyz"})


def test_an_empty_bundle_trusts_nothing(env: Env) -> None:
    with pytest.raises(SVIDVerificationError) as caught:
        verify_svid(pem(make_leaf(env.root)), [], "example.org", NOW)
    assert caught.value.reason == "untrusted-chain"


def test_a_reused_verifier_gives_the_same_answers(env: Env) -> None:
    verifier = SvidVerifier(env.bundle, "example.org")
    good = pem(make_leaf(env.root))
    bad = pem(make_leaf(env.foreign))
    for _ in range(3):
        assert verifier.verify(good, NOW).spiffe_id == SpiffeID.parse(GOOD_ID)
        with pytest.raises(SVIDVerificationError, match="untrusted-chain"):
            verifier.verify(bad, NOW)


def test_messages_never_contain_certificate_bodies(env: Env) -> None:
    data = pem(make_leaf(env.foreign))
    body_line = data.splitlines()[2].decode()
    with pytest.raises(SVIDVerificationError) as caught:
        verify_svid(data, env.bundle, "example.org", NOW)
    assert body_line not in str(caught.value)
