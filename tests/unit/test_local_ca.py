# SPDX-License-Identifier: Apache-2.0
"""The local CA: bootstrap, persistence, issuance, and two-phase rotation on a fake clock."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wio.clock import FakeClock
from wio.errors import ConfigError, SignerRejected, SignerUnavailable, ValidationError
from wio.issuing.ca import (
    CAActionKind,
    CAConfig,
    CARotationAction,
    LocalCA,
    activate_at,
    ca_rotation_action,
    cert_fingerprint,
    prepare_at,
)
from wio.issuing.keys import KeyType, PrivateKey, generate_private_key
from wio.issuing.verify_x509 import verify_svid
from wio.issuing.x509svid import DEFAULT_SKEW, Issued
from wio.models.spiffe import SpiffeID, TrustDomain

pytestmark = pytest.mark.unit

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TD = TrustDomain("example.org")
ID = SpiffeID.for_workload(TD, "payments", "api")
CONFIG = CAConfig(TD, lifetime=dt.timedelta(days=60), max_leaf_ttl=dt.timedelta(days=10))
SECOND = dt.timedelta(seconds=1)
HOUR = dt.timedelta(hours=1)


def _issue(ca: LocalCA, now: dt.datetime, ttl: dt.timedelta = HOUR) -> Issued:
    return ca.issue(generate_private_key(KeyType.ECDSAP256).public_key, ID, ttl=ttl, now=now)


def _aki(cert: x509.Certificate) -> bytes | None:
    ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    return ext.value.key_identifier


def _ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _signed_by(issued: Issued, ca_cert: x509.Certificate) -> bool:
    return _aki(issued.cert) == _ski(ca_cert)


def test_bootstrap_makes_a_self_signed_spiffe_root_with_the_ca_profile() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    root = ca.active.cert
    root.verify_directly_issued_by(root)
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    assert bc.value.path_length == 0
    ku = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign
    assert ku.value.crl_sign
    assert not ku.value.digital_signature
    assert _ski(root) == x509.SubjectKeyIdentifier.from_public_key(root.public_key()).digest  # type: ignore[arg-type]
    san = root.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.org"]
    key = root.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert isinstance(root.signature_hash_algorithm, hashes.SHA256)
    assert root.not_valid_before_utc == START - DEFAULT_SKEW
    assert root.not_valid_after_utc == START + CONFIG.lifetime
    assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "wio"
    assert ca.trust_bundle() == [root]
    assert ca.rotation_action(START).kind is CAActionKind.NONE


def test_default_config_is_a_one_year_ca_that_covers_six_max_leaf_ttls() -> None:
    config = CAConfig(TD)
    assert config.lifetime == dt.timedelta(days=365)
    assert config.lifetime >= 6 * config.max_leaf_ttl


def test_a_ca_lifetime_under_six_max_leaf_ttls_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least 6 x maxLeafTTL") as caught:
        CAConfig(TD, lifetime=dt.timedelta(days=59), max_leaf_ttl=dt.timedelta(days=10))
    assert caught.value.field == "localCA.lifetime"


def test_leaves_from_the_ca_verify_against_its_bundle() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    issued = _issue(ca, START + HOUR)
    assert issued.chain == ()
    verified = verify_svid(issued.cert_chain_pem(), ca.trust_bundle(), TD, START + HOUR)
    assert verified.spiffe_id == ID


def test_state_round_trips_through_bytes() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    ca = ca.apply(CARotationAction(CAActionKind.PREPARE), START + dt.timedelta(days=30))
    ca = ca.apply(CARotationAction(CAActionKind.ACTIVATE), START + dt.timedelta(days=50))
    ca = ca.apply(CARotationAction(CAActionKind.PREPARE), START + dt.timedelta(days=51))
    data = ca.dump()
    doc = json.loads(data)
    assert doc["kind"] == "wio.dev/local-ca-state"
    assert doc["retired"][0]["publishUntil"] == "2026-03-02T00:00:00Z"

    loaded = LocalCA.load(data, CONFIG)
    assert loaded.trust_bundle() == ca.trust_bundle()
    assert len(loaded.trust_bundle()) == 3
    assert loaded.state.active.key.fingerprint == ca.state.active.key.fingerprint
    assert loaded.state.retired[0].publish_until == ca.state.retired[0].publish_until
    assert loaded.dump() == data
    # The reloaded CA signs with the same key: its leaves verify against the old bundle.
    issued = _issue(loaded, START + dt.timedelta(days=52))
    verify_svid(issued.cert_chain_pem(), ca.trust_bundle(), TD, START + dt.timedelta(days=52))


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: "not json at all", "caState"),
        (lambda d: {**d, "kind": "something-else"}, "caState.kind"),
        (lambda d: {**d, "version": 99}, "caState.version"),
        (lambda d: {**d, "trustDomain": "Bad Domain"}, "caState.trustDomain"),
        (lambda d: {**d, "trustDomain": "other.org"}, "caState.active"),
        (lambda d: {**d, "active": None}, "caState.active"),
        (
            lambda d: {**d, "active": {**d["active"], "certificate": "-----BEGIN CERT"}},
            "caState.active.certificate",
        ),
        (
            lambda d: {**d, "active": {**d["active"], "privateKey": "garbage"}},
            "caState.active.privateKey",
        ),
        (lambda d: {**d, "retired": "nope"}, "caState.retired"),
        (
            lambda d: {**d, "retired": [{"certificate": d["active"]["certificate"]}]},
            "caState.retired[0].publishUntil",
        ),
    ],
)
def test_corrupt_state_is_refused_naming_the_field(mutate: object, field: str) -> None:
    doc = json.loads(LocalCA.bootstrap(CONFIG, START).dump())
    broken = mutate(doc)  # type: ignore[operator]
    data = broken.encode() if isinstance(broken, str) else json.dumps(broken).encode()
    with pytest.raises(ValidationError) as caught:
        LocalCA.load(data, CONFIG)
    assert caught.value.field == field


def test_a_key_that_does_not_match_the_certificate_is_refused() -> None:
    doc = json.loads(LocalCA.bootstrap(CONFIG, START).dump())
    other = json.loads(LocalCA.bootstrap(CONFIG, START).dump())
    doc["active"]["privateKey"] = other["active"]["privateKey"]
    with pytest.raises(ValidationError, match="does not match"):
        LocalCA.load(json.dumps(doc).encode(), CONFIG)


def test_loading_a_state_for_another_trust_domain_is_a_config_error() -> None:
    data = LocalCA.bootstrap(CONFIG, START).dump()
    with pytest.raises(ConfigError, match="refusing to mix trust domains"):
        LocalCA.load(
            data,
            CAConfig(
                TrustDomain("other.org"), lifetime=CONFIG.lifetime, max_leaf_ttl=CONFIG.max_leaf_ttl
            ),
        )


def test_rotation_follows_prepare_activate_retire_on_a_fake_clock() -> None:
    clock = FakeClock(START)
    ca = LocalCA.bootstrap(CONFIG, clock.now())
    first = ca.active
    half, five_sixths = prepare_at(first), activate_at(first)
    assert half == first.not_before + first.lifetime / 2
    assert five_sixths == first.not_after - first.lifetime / 6

    # Before half life: nothing to do; one active root in the bundle.
    clock.set(half - SECOND)
    assert ca.rotation_action(clock.now()).kind is CAActionKind.NONE

    # Half life: prepare and publish the successor, which signs nothing yet.
    clock.set(half)
    action = ca.rotation_action(clock.now())
    assert action.kind is CAActionKind.PREPARE
    ca = ca.apply(action, clock.now())
    second = ca.state.prepared
    assert second is not None
    assert ca.trust_bundle() == [first.cert, second.cert]
    assert _signed_by(_issue(ca, clock.now()), first.cert)

    # Published, not yet signing, right up to the activation time.
    clock.set(five_sixths - SECOND)
    assert ca.rotation_action(clock.now()).kind is CAActionKind.NONE
    last_from_first = _issue(ca, clock.now(), ttl=CONFIG.max_leaf_ttl)
    assert _signed_by(last_from_first, first.cert)
    # A full-length leaf issued just before the switch is not cut short.
    assert last_from_first.not_after == clock.now() + CONFIG.max_leaf_ttl

    # A sixth of the life remains: the successor starts signing, the old root stays published.
    clock.set(five_sixths)
    action = ca.rotation_action(clock.now())
    assert action.kind is CAActionKind.ACTIVATE
    ca = ca.apply(action, clock.now())
    assert ca.active.cert == second.cert
    assert ca.state.prepared is None
    assert ca.trust_bundle() == [second.cert, first.cert]
    assert ca.state.retired[0].publish_until == first.not_after
    assert _signed_by(_issue(ca, clock.now()), second.cert)
    # Leaves from both roots verify against the bundle in this phase.
    verify_svid(last_from_first.cert_chain_pem(), ca.trust_bundle(), TD, clock.now())

    # The old root stays until every leaf it signed has expired, which is its notAfter.
    clock.set(first.not_after - SECOND)
    assert CAActionKind.RETIRE not in [a.kind for a in ca.rotate(clock.now())[1]]
    assert last_from_first.not_after <= first.not_after

    clock.set(first.not_after)
    ca, taken = ca.rotate(clock.now())
    kinds = [a.kind for a in taken]
    assert CAActionKind.RETIRE in kinds
    retire = taken[kinds.index(CAActionKind.RETIRE)]
    assert retire.retire == (cert_fingerprint(first.cert),)
    assert first.cert not in ca.trust_bundle()
    assert ca.trust_bundle()[0] == second.cert


def test_the_successor_is_prepared_at_its_own_half_life() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    ca, _ = ca.rotate(prepare_at(ca.active))
    ca, _ = ca.rotate(activate_at(ca.active))
    second = ca.active
    assert ca.rotation_action(prepare_at(second) - SECOND).kind is CAActionKind.NONE
    assert ca.rotation_action(prepare_at(second)).kind is CAActionKind.PREPARE


def test_the_rotation_policy_is_a_pure_function_of_state_and_now() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    when = prepare_at(ca.active)
    assert ca_rotation_action(ca.state, when) == ca_rotation_action(ca.state, when)
    before = ca.dump()
    ca_rotation_action(ca.state, when)
    assert ca.dump() == before


def test_apply_returns_a_new_ca_and_leaves_the_old_one_unchanged() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    before = ca.dump()
    prepared = ca.apply(CARotationAction(CAActionKind.PREPARE), prepare_at(ca.active))
    assert prepared is not ca
    assert ca.dump() == before
    assert ca.state.prepared is None
    assert ca.apply(CARotationAction(CAActionKind.NONE), START) is ca


def test_an_operator_down_past_the_ca_expiry_recovers_in_one_rotate() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    dead = ca.active
    late = dead.not_after + dt.timedelta(days=3)
    with pytest.raises(SignerUnavailable, match="rotation is overdue"):
        _issue(ca, late)
    ca, taken = ca.rotate(late)
    assert [a.kind for a in taken] == [CAActionKind.PREPARE, CAActionKind.ACTIVATE]
    # The expired root is not kept: nothing it signed can still be valid.
    assert ca.trust_bundle() == [ca.active.cert]
    issued = _issue(ca, late)
    verify_svid(issued.cert_chain_pem(), ca.trust_bundle(), TD, late)


def test_a_leaf_never_outlives_its_issuer_even_without_rotation() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    near_end = ca.active.not_after - dt.timedelta(days=2)
    issued = _issue(ca, near_end, ttl=CONFIG.max_leaf_ttl)
    assert issued.not_after == ca.active.not_after


def test_apply_refuses_actions_whose_precondition_does_not_hold() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    with pytest.raises(ValidationError, match="no prepared CA"):
        ca.apply(CARotationAction(CAActionKind.ACTIVATE), START)
    prepared = ca.apply(CARotationAction(CAActionKind.PREPARE), START)
    with pytest.raises(ValidationError, match="already prepared"):
        prepared.apply(CARotationAction(CAActionKind.PREPARE), START)
    with pytest.raises(ValidationError, match="no retired CA"):
        ca.apply(CARotationAction(CAActionKind.RETIRE, retire=("ab" * 32,)), START)
    with pytest.raises(ValidationError):
        CARotationAction(CAActionKind.RETIRE)


def test_issue_refuses_a_foreign_trust_domain_and_an_over_long_ttl() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    key = generate_private_key(KeyType.ECDSAP256).public_key
    with pytest.raises(SignerRejected, match=r"trust domain other\.org"):
        ca.issue(key, SpiffeID.parse("spiffe://other.org/ns/a/sa/b"), ttl=HOUR, now=START)
    with pytest.raises(SignerRejected, match="exceeds the local CA's maximum"):
        ca.issue(key, ID, ttl=CONFIG.max_leaf_ttl + SECOND, now=START)


def _csr(
    key: ec.EllipticCurvePrivateKey, sans: list[x509.GeneralName]
) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )


def test_issue_from_csr_takes_only_the_public_key() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = _csr(
        key,
        [
            x509.UniformResourceIdentifier("spiffe://example.org/ns/kube-system/sa/admin"),
            x509.DNSName("evil.example.com"),
        ],
    )
    issued = ca.issue_from_csr(
        csr.public_bytes(serialization.Encoding.PEM), ID, ("api.payments.svc",), HOUR, START
    )
    assert issued.spiffe_id == ID
    san = issued.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [str(ID)]
    assert san.get_values_for_type(x509.DNSName) == ["api.payments.svc"]
    assert len(issued.cert.subject) == 0
    assert issued.cert.public_key() == key.public_key()


def test_issue_from_csr_refuses_a_csr_whose_signature_does_not_verify() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    der = bytearray(
        _csr(ec.generate_private_key(ec.SECP256R1()), [x509.DNSName("a.example")]).public_bytes(
            serialization.Encoding.DER
        )
    )
    der[-1] ^= 0x01  # inside the signature's s value
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(SignerRejected, match="proof of key possession"):
        ca.issue_from_csr(tampered, ID, (), HOUR, START)


@pytest.mark.parametrize("data", [b"", b"garbage", b"-----BEGIN CERTIFICATE REQUEST-----\nAA"])
def test_issue_from_csr_refuses_unreadable_input(data: bytes) -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    with pytest.raises(SignerRejected, match="not a readable"):
        ca.issue_from_csr(data, ID, (), HOUR, START)


def test_issue_from_csr_refuses_keys_wio_does_not_issue() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    csr = _csr(ec.generate_private_key(ec.SECP521R1()), [x509.DNSName("a.example")])
    with pytest.raises(SignerRejected, match="unsupported elliptic curve"):
        ca.issue_from_csr(csr.public_bytes(serialization.Encoding.PEM), ID, (), HOUR, START)


def test_dumped_state_is_json_of_pem_with_no_surprises() -> None:
    doc = json.loads(LocalCA.bootstrap(CONFIG, START).dump())
    assert set(doc) == {
        "kind",
        "version",
        "trustDomain",
        "active",
        "prepared",
        "retired",
        "activateAt",
    }
    assert doc["active"]["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    key = PrivateKey.from_pem(doc["active"]["privateKey"].encode())
    assert doc["active"]["privateKey"].encode() == key.to_pkcs8_pem()  # PKCS#8
    assert doc["prepared"] is None
    assert doc["retired"] == []
