# SPDX-License-Identifier: Apache-2.0
"""Renewal is due at the jittered fraction of a lifetime, in whole seconds; a Secret is
reissued for the first applicable reason of the ordered check chain, and only that one."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import re
from fractions import Fraction

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import assume, given
from hypothesis import strategies as st

from wio.errors import ValidationError
from wio.policy.rotation import (
    REISSUE_CHECKS,
    Observed,
    ReissueReason,
    first_reissue_reason,
    renewal_time,
)

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
SPIFFE_ID = "spiffe://example.org/ns/payments/sa/payments"
SPEC_HASH = "sha256:0a1b2c"
# Kubernetes condition reasons (metav1.Condition) and what Prometheus label values read well as.
K8S_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


# --- renewal_time -----------------------------------------------------------------------------


def seeded(seed: int) -> random.Random:
    """A reproducible rng: tests need determinism, production passes random.SystemRandom()."""
    return random.Random(seed)  # noqa: S311 - jitter is not a secret


def _us(when: dt.datetime) -> int:
    return (when - EPOCH) // dt.timedelta(microseconds=1)


@given(
    start=st.integers(min_value=1_600_000_000, max_value=2_200_000_000),
    lifetime=st.integers(min_value=1, max_value=400 * 86_400),
    fraction=st.floats(min_value=0.01, max_value=0.99),
    jitter=st.floats(min_value=0.0, max_value=0.5),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_renewal_time_lies_within_the_jitter_window_in_whole_seconds(
    start: int, lifetime: int, fraction: float, jitter: float, seed: int
) -> None:
    assume(Fraction(fraction) * (1 + Fraction(jitter)) < 1)
    nb = EPOCH + dt.timedelta(seconds=start)
    na = nb + dt.timedelta(seconds=lifetime)
    due = renewal_time(nb, na, fraction, jitter, rng=seeded(seed))

    assert due.microsecond == 0
    assert due.tzinfo is not None
    # Exact bounds: nb + L*f*(1-j) <= due <= nb + L*f*(1+j).
    f, j, life_us = Fraction(fraction), Fraction(jitter), lifetime * 1_000_000
    lower = _us(nb) + life_us * f * (1 - j)
    upper = _us(nb) + life_us * f * (1 + j)
    if math.ceil(lower / 1_000_000) <= math.floor(upper / 1_000_000):
        assert lower <= _us(due) <= upper
    else:
        # A window narrower than a second holding no whole second: truncation is all we do.
        assert math.floor(lower / 1_000_000) * 1_000_000 <= _us(due) <= upper
    assert nb <= due < na
    # Same seed, same answer: the rng is the only source of variation.
    assert due == renewal_time(nb, na, fraction, jitter, rng=seeded(seed))


@given(
    micros=st.integers(min_value=0, max_value=999_999),
    lifetime=st.integers(min_value=600, max_value=86_400),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_renewal_time_with_sub_second_not_before_stays_in_the_window(
    micros: int, lifetime: int, seed: int
) -> None:
    nb = NOW + dt.timedelta(microseconds=micros)
    na = nb + dt.timedelta(seconds=lifetime)
    due = renewal_time(nb, na, rng=seeded(seed))
    assert due.microsecond == 0
    assert nb + (na - nb) * 0.45 <= due <= nb + (na - nb) * 0.55


def test_renewal_time_without_jitter_is_the_fraction_point() -> None:
    nb = NOW
    due = renewal_time(nb, nb + dt.timedelta(hours=1), 0.5, 0.0, rng=seeded(1))
    assert due == nb + dt.timedelta(minutes=30)


def test_renewal_times_spread_across_the_whole_window() -> None:
    # A fleet issued at the same instant must not rotate in lockstep.
    nb, na = NOW, NOW + dt.timedelta(hours=1)
    rng = seeded(7)
    dues = {renewal_time(nb, na, rng=rng) for _ in range(2000)}
    offsets = sorted((d - nb).total_seconds() for d in dues)
    assert offsets[0] < 1620 + 30  # near 27 minutes...
    assert offsets[-1] > 1980 - 30  # ...and near 33 minutes
    assert len(dues) > 300


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.0}, "fraction"),
        ({"fraction": float("nan")}, "fraction"),
        ({"fraction": True}, "fraction"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": 1.0}, "jitter"),
        ({"fraction": 0.9, "jitter": 0.2}, "jitter"),  # could renew after expiry
        ({"not_after": NOW}, "notAfter"),
        ({"not_after": NOW - dt.timedelta(seconds=1)}, "notAfter"),
        ({"not_before": NOW.replace(tzinfo=None)}, "notBefore"),
        ({"not_after": (NOW + dt.timedelta(hours=1)).replace(tzinfo=None)}, "notAfter"),
    ],
)
def test_renewal_time_arguments_are_validated(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "not_before": NOW,
        "not_after": NOW + dt.timedelta(hours=1),
        "fraction": 0.5,
        "jitter": 0.1,
    }
    args.update(kwargs)
    with pytest.raises(ValidationError) as caught:
        renewal_time(**args, rng=seeded(0))  # type: ignore[arg-type]
    assert caught.value.field == field


# --- certificates for the reissue checks ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str, parent: Authority | None = None) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = parent.key if parent else key
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(parent.cert.subject if parent else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=300))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )
    return Authority(cert, key)


def _leaf(
    issuer: Authority,
    key: ec.EllipticCurvePrivateKey,
    uris: tuple[str, ...] = (SPIFFE_ID,),
    not_before: dt.datetime = NOW - dt.timedelta(minutes=10),
    not_after: dt.datetime = NOW + dt.timedelta(minutes=50),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=True,
        )
    return builder.sign(issuer.key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


ROOT = _ca("root")
OTHER_ROOT = _ca("other root")
INTERMEDIATE = _ca("intermediate", ROOT)
LEAF_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
LEAF = _leaf(ROOT, LEAF_KEY)
# Stored renewal time: 30 minutes into the leaf's hour, i.e. 20 minutes after NOW.
RENEW_AT = NOW + dt.timedelta(minutes=20)


def good_data(cert_pem: bytes | None = None, key_pem: bytes | None = None) -> dict[str, bytes]:
    return {
        "tls.crt": _pem(LEAF) if cert_pem is None else cert_pem,
        "tls.key": _key_pem(LEAF_KEY) if key_pem is None else key_pem,
        "ca.crt": _pem(ROOT.cert),
    }


def observed(**changes: object) -> Observed:
    base: dict[str, object] = {
        "secret_data": good_data(),
        "expected_spiffe_id": SPIFFE_ID,
        "expected_spec_hash": SPEC_HASH,
        "stored_spec_hash": SPEC_HASH,
        "stored_renewal_time": RENEW_AT,
        "trusted_cas": [ROOT.cert],
        "now": NOW,
    }
    base.update(changes)
    return Observed(**base)  # type: ignore[arg-type]


# --- each check fires with its reason ---------------------------------------------------------


def test_a_good_secret_needs_no_reissue() -> None:
    assert first_reissue_reason(observed()) is None


def test_a_leaf_issued_through_an_intermediate_in_tls_crt_is_trusted() -> None:
    leaf = _leaf(INTERMEDIATE, LEAF_KEY)
    data = good_data(cert_pem=_pem(leaf, INTERMEDIATE.cert))
    assert first_reissue_reason(observed(secret_data=data)) is None


CHECK_CASES = [
    pytest.param({"secret_data": None}, "SecretMissing", id="secret-missing"),
    pytest.param(
        {"secret_data": {k: v for k, v in good_data().items() if k != "tls.key"}},
        "DataMissing",
        id="tls.key-missing",
    ),
    pytest.param(
        {"secret_data": {k: v for k, v in good_data().items() if k != "tls.crt"}},
        "DataMissing",
        id="tls.crt-missing",
    ),
    pytest.param({"secret_data": {**good_data(), "ca.crt": b""}}, "DataMissing", id="ca.crt-empty"),
    pytest.param({"secret_data": {}}, "DataMissing", id="secret-empty"),
    pytest.param(
        {"secret_data": good_data(cert_pem=b"-----BEGIN CERTIFICATE-----\nnope\n")},
        "Unparsable",
        id="cert-unparsable",
    ),
    pytest.param(
        {"secret_data": good_data(key_pem=b"not a key")}, "Unparsable", id="key-unparsable"
    ),
    pytest.param(
        {"secret_data": good_data(key_pem=_key_pem(OTHER_KEY))}, "KeyMismatch", id="key-mismatch"
    ),
    pytest.param(
        {
            "secret_data": good_data(
                cert_pem=_pem(_leaf(ROOT, LEAF_KEY, ("spiffe://example.org/ns/x/sa/y",)))
            )
        },
        "SpiffeIDChanged",
        id="other-spiffe-id",
    ),
    pytest.param(
        {"secret_data": good_data(cert_pem=_pem(_leaf(ROOT, LEAF_KEY, ())))},
        "SpiffeIDChanged",
        id="no-uri-san",
    ),
    pytest.param(
        {
            "secret_data": good_data(
                cert_pem=_pem(_leaf(ROOT, LEAF_KEY, (SPIFFE_ID, "spiffe://example.org/other")))
            )
        },
        "SpiffeIDChanged",
        id="two-uri-sans",
    ),
    pytest.param({"stored_spec_hash": "sha256:ffff"}, "SpecChanged", id="spec-hash-differs"),
    pytest.param({"stored_spec_hash": None}, "SpecChanged", id="spec-hash-not-recorded"),
    pytest.param({"trusted_cas": [OTHER_ROOT.cert]}, "IssuerNotTrusted", id="ca-rotated-away"),
    pytest.param({"trusted_cas": []}, "IssuerNotTrusted", id="no-trusted-ca"),
    pytest.param(
        {"secret_data": good_data(cert_pem=_pem(_leaf(INTERMEDIATE, LEAF_KEY)))},
        "IssuerNotTrusted",
        id="intermediate-missing-from-chain",
    ),
    pytest.param(
        {"secret_data": good_data(cert_pem=_pem(_leaf(OTHER_ROOT, LEAF_KEY)))},
        "IssuerNotTrusted",
        id="signed-by-an-untrusted-ca",
    ),
    pytest.param({"now": NOW + dt.timedelta(minutes=50)}, "Expired", id="expired-at-not-after"),
    pytest.param({"now": NOW + dt.timedelta(days=3)}, "Expired", id="long-expired"),
    pytest.param({"now": RENEW_AT}, "RenewalDue", id="renewal-due-exactly"),
    pytest.param({"now": RENEW_AT + dt.timedelta(minutes=1)}, "RenewalDue", id="renewal-overdue"),
]


@pytest.mark.parametrize(("changes", "reason"), CHECK_CASES)
def test_each_check_fires_with_its_reason(changes: dict[str, object], reason: str) -> None:
    found = first_reissue_reason(observed(**changes))
    assert found is not None
    assert found.reason == reason
    assert K8S_REASON.match(found.reason)
    assert found.message


def test_renewal_is_not_due_one_second_before_the_stored_time() -> None:
    assert first_reissue_reason(observed(now=RENEW_AT - dt.timedelta(seconds=1))) is None


def test_without_a_stored_renewal_time_the_half_life_is_used() -> None:
    # The leaf lives NOW-10min .. NOW+50min: half-life at NOW+20min.
    half = NOW + dt.timedelta(minutes=20)
    assert (
        first_reissue_reason(observed(stored_renewal_time=None, now=half - dt.timedelta(seconds=1)))
        is None
    )
    found = first_reissue_reason(observed(stored_renewal_time=None, now=half))
    assert found is not None
    assert found.reason == "RenewalDue"


def test_only_the_first_applicable_reason_is_returned() -> None:
    # Each step adds a fault that comes earlier in the chain; the earliest always wins.
    later_faults: dict[str, object] = {"now": NOW + dt.timedelta(days=3)}  # Expired, RenewalDue
    assert first_reissue_reason(observed(**later_faults)).reason == "Expired"  # type: ignore[union-attr]
    later_faults["trusted_cas"] = [OTHER_ROOT.cert]
    assert first_reissue_reason(observed(**later_faults)).reason == "IssuerNotTrusted"  # type: ignore[union-attr]
    later_faults["stored_spec_hash"] = "old"
    assert first_reissue_reason(observed(**later_faults)).reason == "SpecChanged"  # type: ignore[union-attr]
    wrong_id = _leaf(OTHER_ROOT, LEAF_KEY, ("spiffe://example.org/ns/x/sa/y",))
    later_faults["secret_data"] = good_data(cert_pem=_pem(wrong_id))
    assert first_reissue_reason(observed(**later_faults)).reason == "SpiffeIDChanged"  # type: ignore[union-attr]
    later_faults["secret_data"] = good_data(cert_pem=_pem(wrong_id), key_pem=_key_pem(OTHER_KEY))
    assert first_reissue_reason(observed(**later_faults)).reason == "KeyMismatch"  # type: ignore[union-attr]
    later_faults["secret_data"] = good_data(cert_pem=b"garbage", key_pem=_key_pem(OTHER_KEY))
    assert first_reissue_reason(observed(**later_faults)).reason == "Unparsable"  # type: ignore[union-attr]
    later_faults["secret_data"] = {"tls.crt": b"garbage"}
    assert first_reissue_reason(observed(**later_faults)).reason == "DataMissing"  # type: ignore[union-attr]
    later_faults["secret_data"] = None
    assert first_reissue_reason(observed(**later_faults)).reason == "SecretMissing"  # type: ignore[union-attr]


def test_the_chain_runs_in_the_documented_order() -> None:
    assert [check.__name__ for check in REISSUE_CHECKS] == [
        "secret_missing",
        "data_missing",
        "unparsable",
        "key_mismatch",
        "spiffe_id_changed",
        "spec_changed",
        "issuer_not_trusted",
        "expired",
        "renewal_due",
    ]


def test_a_custom_chain_can_be_passed() -> None:
    def always(_: Observed) -> ReissueReason:
        return ReissueReason("ForcedRotation", "an SRE asked for it")

    found = first_reissue_reason(observed(), (*REISSUE_CHECKS, always))
    assert found == ReissueReason("ForcedRotation", "an SRE asked for it")


def test_messages_never_contain_key_material() -> None:
    key_pem = _key_pem(OTHER_KEY)
    found = first_reissue_reason(observed(secret_data=good_data(key_pem=key_pem)))
    assert found is not None
    body = b"".join(key_pem.splitlines()[1:-1]).decode()
    assert body[:32] not in found.message
    assert "PRIVATE KEY" not in found.message


@pytest.mark.parametrize("reason", ["", "renewalDue", "Renewal Due", "Renewal-Due", "Due!"])
def test_reissue_reasons_must_be_camel_case_tokens(reason: str) -> None:
    with pytest.raises(ValidationError):
        ReissueReason(reason, "message")


def test_observed_refuses_naive_times() -> None:
    with pytest.raises(ValidationError):
        observed(now=NOW.replace(tzinfo=None))
    with pytest.raises(ValidationError):
        observed(stored_renewal_time=RENEW_AT.replace(tzinfo=None))
