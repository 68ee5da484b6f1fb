# SPDX-License-Identifier: Apache-2.0
"""Whether a WorkloadIdentity is issued again: the content checks ``secret_facts`` runs on a
Secret when its event arrives, and the ordered chain ``reissue_reason`` runs over the stored
status and that verdict. Every check of the chain fires with its reason, and only when no
earlier check does."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from cryptography import x509

from tests.support.certs import Authority, LeafSpec, make_ca, make_leaf, pem
from wio.issuing.ca import CAKeyPair, cert_fingerprint, make_root_ca
from wio.issuing.keys import KeyType, PrivateKey, generate_private_key
from wio.issuing.x509svid import build_svid_template, sign_svid
from wio.models.spiffe import SpiffeID, TrustDomain
from wio.names import (
    JWT_EXPIRES_AT_ANNOTATION,
    KEY_FINGERPRINT_ANNOTATION,
    NOT_AFTER_ANNOTATION,
    RENEW_AT_ANNOTATION,
    SERIAL_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    SPIFFE_ID_ANNOTATION,
)
from wio.policy.reconcile import (
    CHECKS,
    IdentityState,
    SecretFacts,
    reissue_reason,
    secret_facts,
)
from wio.policy.rotation import ReissueReason
from wio.service.identity_secret import recorded_facts

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
TD = TrustDomain("example.org")
SPIFFE_ID = SpiffeID.for_workload(TD, "payments", "api")
OTHER_ID = SpiffeID.for_workload(TD, "payments", "batch")
# Kubernetes condition reasons (metav1.Condition) and what Prometheus label values read well as.
K8S_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
CHECK_NAMES = [check.__name__ for check in CHECKS]


# --- the chain over stored status and the Secret's verdict ------------------------------------

SERIAL = "1a2b3c"
SPEC_HASH = "h1"
SECRET = "api-identity"
ANCHOR = "fingerprint-of-the-root"
KID = "kid-1"
NOT_AFTER = NOW + 50 * dt.timedelta(minutes=1)
# wio's own annotations on a Secret it wrote: what adoption after a crash relies on.
WRITTEN = {
    SERIAL_ANNOTATION: SERIAL,
    SPEC_HASH_ANNOTATION: SPEC_HASH,
    RENEW_AT_ANNOTATION: "2026-03-01T12:20:00Z",
}
FACTS = SecretFacts(
    serial=SERIAL,
    spiffe_id=str(SPIFFE_ID),
    problem=None,
    has_token=True,
    not_after=NOT_AFTER,
    annotations=WRITTEN,
    anchor=ANCHOR,
    token_kid=KID,
)
# A sound credential wio wrote and never recorded (it crashed before the status patch).
UNRECORDED = dataclasses.replace(
    FACTS, serial="9f9f", annotations={**WRITTEN, SERIAL_ANNOTATION: "9f9f"}
)


def _state(**changes: object) -> IdentityState:
    """A recorded, sound, not yet due identity; ``changes`` add one fault or more."""
    state = IdentityState(
        now=NOW,
        expected_spiffe_id=str(SPIFFE_ID),
        spec_hash=SPEC_HASH,
        secret_name=SECRET,
        wants_token=True,
        stored_serial=SERIAL,
        stored_spec_hash=SPEC_HASH,
        stored_secret_name=SECRET,
        not_after=NOT_AFTER,
        renewal_time=NOW + 20 * dt.timedelta(minutes=1),
        token_renewal_time=NOW + 10 * dt.timedelta(minutes=1),
        forced_request=None,
        forced_ack=None,
        secrets_synced=True,
        secret=FACTS,
        trusted_anchors=frozenset({ANCHOR}),
        published_kids=frozenset({KID}),
    )
    return dataclasses.replace(state, **changes)  # type: ignore[arg-type]


def _facts(**changes: object) -> SecretFacts:
    return dataclasses.replace(FACTS, **changes)  # type: ignore[arg-type]


FIRING = [
    pytest.param(
        "revoke_requested",
        {"revoke_request": "key-leak", "revoke_ack": None},
        "RevokeRequested",
        id="revoke-requested",
    ),
    pytest.param(
        "not_issued", {"stored_serial": None, "secret": None}, "NotIssued", id="never-issued"
    ),
    pytest.param(
        "secret_moved", {"stored_secret_name": "old-name"}, "SecretNameChanged", id="renamed"
    ),
    pytest.param("secret_missing", {"secret": None}, "SecretMissing", id="secret-deleted"),
    pytest.param(
        "secret_damaged",
        {"secret": _facts(problem=ReissueReason("Unparsable", "tls.key is not a key"))},
        "Unparsable",
        id="content-check-verdict",
    ),
    pytest.param(
        "secret_adoptable", {"secret": UNRECORDED}, "AdoptSecret", id="written-not-recorded"
    ),
    pytest.param(
        "secret_replaced",
        {"secret": _facts(spiffe_id=str(OTHER_ID))},
        "SpiffeIDMismatch",
        id="other-spiffe-id",
    ),
    pytest.param(
        "secret_replaced",
        {"secret": _facts(spiffe_id=None)},
        "SpiffeIDMismatch",
        id="no-single-spiffe-id",
    ),
    pytest.param(
        "secret_replaced",
        {"secret": _facts(serial="9f9f", annotations={})},
        "SecretAltered",
        id="certificate-not-ours",
    ),
    pytest.param(
        "secret_replaced", {"secret": _facts(has_token=False)}, "DataMissing", id="token-removed"
    ),
    pytest.param(
        "issuer_distrusted",
        {"trusted_anchors": frozenset({"fingerprint-of-the-new-root"})},
        "IssuerNotTrusted",
        id="root-left-the-bundle",
    ),
    pytest.param(
        "token_key_unpublished",
        {"published_kids": frozenset({"kid-2"})},
        "SigningKeyNotPublished",
        id="jwt-key-withdrawn",
    ),
    pytest.param("spec_changed", {"stored_spec_hash": "h0"}, "SpecChanged", id="spec-edited"),
    pytest.param(
        "spec_changed", {"stored_spec_hash": None}, "SpecChanged", id="spec-hash-not-recorded"
    ),
    pytest.param("forced", {"forced_request": "r1"}, "ForcedRotation", id="rotate-annotation"),
    pytest.param(
        "forced",
        {"forced_request": "r2", "forced_ack": "r1"},
        "ForcedRotation",
        id="new-rotate-request",
    ),
    pytest.param("expired", {"now": NOT_AFTER}, "Expired", id="at-not-after"),
    pytest.param("expired", {"now": NOW + 3 * 24 * HOUR}, "Expired", id="long-expired"),
    pytest.param("renewal_due", {"renewal_time": NOW}, "RenewalDue", id="renewal-due-exactly"),
    pytest.param("renewal_due", {"renewal_time": None}, "RenewalDue", id="no-renewal-time"),
    pytest.param(
        "token_renewal_due",
        {"token_renewal_time": NOW},
        "TokenRenewalDue",
        id="token-renewal-due",
    ),
    pytest.param(
        "token_renewal_due",
        {"token_renewal_time": None},
        "TokenRenewalDue",
        id="token-never-minted",
    ),
]


@pytest.mark.parametrize(("check", "changes", "reason"), FIRING)
def test_each_check_gives_its_reason_when_no_earlier_check_fires(
    check: str, changes: dict[str, object], reason: str
) -> None:
    state = _state(**changes)
    found = reissue_reason(state)
    assert found is not None
    assert found.reason == reason
    assert K8S_REASON.match(found.reason)
    assert found.message
    position = CHECK_NAMES.index(check)
    assert CHECKS[position](state) == found
    assert [c.__name__ for c in CHECKS[:position] if c(state) is not None] == []


def test_the_table_has_a_case_for_every_check_of_the_chain() -> None:
    covered = {case.values[0] for case in FIRING}
    assert covered == set(CHECK_NAMES)


QUIET = [
    pytest.param({}, id="recorded-sound-not-due"),
    pytest.param({"secret": None, "secrets_synced": False}, id="secrets-not-listed-yet"),
    pytest.param({"stored_secret_name": None}, id="secret-name-not-recorded-yet"),
    pytest.param({"forced_request": "r1", "forced_ack": "r1"}, id="rotation-already-done"),
    pytest.param({"revoke_request": "leak", "revoke_ack": "leak"}, id="revocation-already-done"),
    pytest.param({"trusted_anchors": None, "published_kids": None}, id="signers-not-read-yet"),
    pytest.param({"secret": _facts(anchor=None)}, id="anchor-unknown"),
    pytest.param(
        {"wants_token": False, "token_renewal_time": None, "published_kids": frozenset({"x"})},
        id="no-token-wanted",
    ),
    pytest.param({"renewal_time": NOW + dt.timedelta(seconds=1)}, id="renewal-one-second-away"),
]


@pytest.mark.parametrize("changes", QUIET)
def test_no_check_fires_for_a_sound_credential_that_is_not_due(
    changes: dict[str, object],
) -> None:
    assert reissue_reason(_state(**changes)) is None


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"annotations": {**WRITTEN, SERIAL_ANNOTATION: SERIAL}}, "annotated serial differs"),
        (
            {"annotations": {**WRITTEN, SERIAL_ANNOTATION: "9f9f", SPEC_HASH_ANNOTATION: "h0"}},
            "written for an older spec",
        ),
        (
            {"annotations": {SERIAL_ANNOTATION: "9f9f", SPEC_HASH_ANNOTATION: SPEC_HASH}},
            "no renewal time",
        ),
        ({"not_after": NOW}, "expired"),
        ({"not_after": None}, "expiry unknown"),
        ({"has_token": False}, "token missing"),
    ],
)
def test_a_credential_is_adopted_only_when_it_is_sound_current_and_annotated_by_wio(
    changes: dict[str, object], why: str
) -> None:
    secret = dataclasses.replace(UNRECORDED, **changes)  # type: ignore[arg-type]
    found = reissue_reason(_state(secret=secret))
    assert found is not None, why
    assert found.reason == "SecretAltered", why


def test_the_first_applicable_reason_wins() -> None:
    # Each step adds a fault that an earlier check notices; the earliest always wins.
    faults: dict[str, object] = {"now": NOW + 3 * 24 * HOUR}  # Expired, RenewalDue, token too
    steps: list[tuple[dict[str, object], str]] = [
        ({}, "Expired"),
        ({"forced_request": "r1"}, "ForcedRotation"),
        ({"stored_spec_hash": "h0"}, "SpecChanged"),
        ({"published_kids": frozenset({"kid-2"})}, "SigningKeyNotPublished"),
        ({"trusted_anchors": frozenset({"another-root"})}, "IssuerNotTrusted"),
        ({"secret": _facts(has_token=False)}, "DataMissing"),
        ({"secret": _facts(has_token=False, serial="9f9f")}, "SecretAltered"),
        ({"secret": _facts(serial="9f9f", spiffe_id=str(OTHER_ID))}, "SpiffeIDMismatch"),
        ({"secret": _facts(problem=ReissueReason("KeyMismatch", "x"))}, "KeyMismatch"),
        ({"secret": None}, "SecretMissing"),
        ({"stored_secret_name": "old-name"}, "SecretNameChanged"),
        ({"stored_serial": None}, "NotIssued"),
    ]
    seen = []
    for added, _ in steps:
        faults.update(added)
        found = reissue_reason(_state(**faults))
        assert found is not None
        seen.append(found.reason)
    assert seen == [reason for _, reason in steps]


def test_adoption_comes_before_calling_the_secret_altered() -> None:
    state = _state(secret=UNRECORDED)
    found = reissue_reason(state)
    assert found is not None
    assert found.reason == "AdoptSecret"
    # The same Secret would be SecretAltered if adoption did not look first.
    assert reissue_reason(state, tuple(c for c in CHECKS if c.__name__ != "secret_adoptable")) == (
        ReissueReason("SecretAltered", f"Secret {SECRET} holds a certificate wio did not record")
    )


def test_the_certificate_renewal_wins_over_the_token_renewal_when_both_are_due() -> None:
    found = reissue_reason(_state(renewal_time=NOW, token_renewal_time=NOW))
    assert found is not None
    assert found.reason == "RenewalDue"


# --- the Secret's content, on certificates wio's own issuing code made ------------------------


def _root() -> CAKeyPair:
    return make_root_ca(TD, now=NOW - 24 * HOUR, lifetime=30 * 24 * HOUR, key=_key())


def _key() -> PrivateKey:
    return generate_private_key(KeyType.ECDSAP256)


def _leaf(
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    key: PrivateKey,
    spiffe_id: SpiffeID = SPIFFE_ID,
) -> x509.Certificate:
    template = build_svid_template(
        spiffe_id,
        key.public_key,
        issuer_cert=issuer_cert,
        ttl=HOUR,
        now=NOW - 10 * dt.timedelta(minutes=1),
    )
    return sign_svid(template, issuer_key, issuer_cert)


ROOT = _root()
OTHER_ROOT = _root()
# wio never makes intermediates, but a Vault PKI signer's chain carries them in tls.crt.
INTERMEDIATE = make_ca("intermediate", issuer=Authority(ROOT.cert, ROOT.key.key))  # type: ignore[arg-type]
LEAF_KEY = _key()
OTHER_KEY = _key()
LEAF = _leaf(ROOT.cert, ROOT.key, LEAF_KEY)
VIA_INTERMEDIATE = _leaf(INTERMEDIATE.cert, PrivateKey(INTERMEDIATE.key), LEAF_KEY)


def _data(cert_pem: bytes | None = None, key_pem: bytes | None = None) -> dict[str, bytes]:
    return {
        "tls.crt": pem(LEAF) if cert_pem is None else cert_pem,
        "tls.key": LEAF_KEY.to_pkcs8_pem() if key_pem is None else key_pem,
        "ca.crt": pem(ROOT.cert),
    }


def _without(name: str) -> dict[str, bytes]:
    return {k: v for k, v in _data().items() if k != name}


def test_a_sound_secret_has_no_problem_and_records_what_it_holds() -> None:
    facts = secret_facts(_data(), [ROOT.cert])
    assert facts.problem is None
    assert facts.serial == format(LEAF.serial_number, "x")
    assert facts.spiffe_id == str(SPIFFE_ID)
    assert facts.not_after == LEAF.not_valid_after_utc
    assert facts.key_fingerprint == LEAF_KEY.fingerprint
    assert facts.anchor == ROOT.fingerprint
    assert facts.has_token is False


def test_a_leaf_whose_intermediate_is_in_tls_crt_leads_to_the_trusted_root() -> None:
    data = _data(cert_pem=pem(VIA_INTERMEDIATE, INTERMEDIATE.cert))
    facts = secret_facts(data, [ROOT.cert])
    assert facts.problem is None
    assert facts.anchor == cert_fingerprint(ROOT.cert)


CONTENT_CASES = [
    pytest.param(_without("tls.key"), [ROOT.cert], "DataMissing", id="tls.key-missing"),
    pytest.param(_without("tls.crt"), [ROOT.cert], "DataMissing", id="tls.crt-missing"),
    pytest.param({**_data(), "ca.crt": b""}, [ROOT.cert], "DataMissing", id="ca.crt-empty"),
    pytest.param({}, [ROOT.cert], "DataMissing", id="secret-empty"),
    pytest.param(
        _data(cert_pem=b"-----BEGIN CERTIFICATE-----\nnope\n"),
        [ROOT.cert],
        "Unparsable",
        id="cert-unparsable",
    ),
    pytest.param(_data(key_pem=b"not a key"), [ROOT.cert], "Unparsable", id="key-unparsable"),
    pytest.param(
        _data(key_pem=OTHER_KEY.to_pkcs8_pem()), [ROOT.cert], "KeyMismatch", id="key-mismatch"
    ),
    pytest.param(_data(), [OTHER_ROOT.cert], "IssuerNotTrusted", id="root-rotated-away"),
    pytest.param(_data(), [], "IssuerNotTrusted", id="nothing-trusted"),
    pytest.param(
        _data(cert_pem=pem(VIA_INTERMEDIATE)),
        [ROOT.cert],
        "IssuerNotTrusted",
        id="intermediate-missing-from-chain",
    ),
    pytest.param(
        _data(cert_pem=pem(_leaf(OTHER_ROOT.cert, OTHER_ROOT.key, LEAF_KEY))),
        [ROOT.cert],
        "IssuerNotTrusted",
        id="signed-by-an-untrusted-ca",
    ),
    # Several faults: the earlier content check names the problem.
    pytest.param(
        {"tls.crt": b"garbage"}, [ROOT.cert], "DataMissing", id="missing-before-unparsable"
    ),
    pytest.param(
        _data(cert_pem=b"garbage", key_pem=OTHER_KEY.to_pkcs8_pem()),
        [ROOT.cert],
        "Unparsable",
        id="unparsable-before-mismatch",
    ),
    pytest.param(
        _data(key_pem=OTHER_KEY.to_pkcs8_pem()),
        [OTHER_ROOT.cert],
        "KeyMismatch",
        id="mismatch-before-untrusted",
    ),
]


@pytest.mark.parametrize(("data", "trusted", "reason"), CONTENT_CASES)
def test_each_content_check_names_the_problem_of_the_secret(
    data: dict[str, bytes], trusted: list[x509.Certificate], reason: str
) -> None:
    problem = secret_facts(data, trusted).problem
    assert problem is not None
    assert problem.reason == reason
    assert K8S_REASON.match(problem.reason)
    assert problem.message


def test_the_content_verdict_becomes_the_reason_to_reissue() -> None:
    facts = secret_facts(_data(key_pem=OTHER_KEY.to_pkcs8_pem()), [ROOT.cert])
    state = _state(secret=facts, stored_serial=facts.serial, trusted_anchors=None)
    found = reissue_reason(state)
    assert found is not None
    assert found.reason == "KeyMismatch"


def test_a_certificate_for_another_workload_is_reissued_as_a_spiffe_id_mismatch() -> None:
    other = _leaf(ROOT.cert, ROOT.key, LEAF_KEY, spiffe_id=OTHER_ID)
    facts = secret_facts(_data(cert_pem=pem(other)), [ROOT.cert])
    assert facts.problem is None
    assert facts.spiffe_id == str(OTHER_ID)
    found = reissue_reason(_state(secret=facts, stored_serial=facts.serial, trusted_anchors=None))
    assert found is not None
    assert found.reason == "SpiffeIDMismatch"


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(LeafSpec(uris=(str(SPIFFE_ID), str(OTHER_ID))), id="two-uri-sans"),
        pytest.param(LeafSpec(include_san=False), id="no-san"),
    ],
)
def test_a_certificate_without_exactly_one_uri_san_names_no_spiffe_id(spec: LeafSpec) -> None:
    authority = Authority(ROOT.cert, ROOT.key.key)  # type: ignore[arg-type]
    facts = secret_facts(_data(cert_pem=pem(make_leaf(authority, spec))), [ROOT.cert])
    assert facts.spiffe_id is None


def test_problem_messages_never_contain_key_material() -> None:
    key_pem = OTHER_KEY.to_pkcs8_pem()
    problem = secret_facts(_data(key_pem=key_pem), [ROOT.cert]).problem
    assert problem is not None
    body = b"".join(key_pem.splitlines()[1:-1]).decode()
    assert body[:32] not in problem.message
    assert "PRIVATE KEY" not in problem.message


def test_only_wios_own_annotations_are_kept() -> None:
    notes = {**WRITTEN, "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    facts = secret_facts(_data(), [ROOT.cert], notes)
    assert facts.annotations == WRITTEN


def test_wios_annotations_describe_a_secret_before_its_content_is_read() -> None:
    notes = {
        SERIAL_ANNOTATION: SERIAL,
        SPIFFE_ID_ANNOTATION: str(SPIFFE_ID),
        NOT_AFTER_ANNOTATION: "2026-03-01T12:50:00Z",
        KEY_FINGERPRINT_ANNOTATION: "ab" * 32,
        JWT_EXPIRES_AT_ANNOTATION: "2026-03-01T12:30:00Z",
        "example.com/other": "x",
    }
    facts = recorded_facts(notes)
    assert facts == SecretFacts(
        serial=SERIAL,
        spiffe_id=str(SPIFFE_ID),
        problem=None,
        has_token=True,
        not_after=NOT_AFTER,
        key_fingerprint="ab" * 32,
        annotations={k: v for k, v in notes.items() if k != "example.com/other"},
    )
    # Nothing in it is a reason to reissue a recorded credential.
    assert reissue_reason(_state(secret=facts, trusted_anchors=None, published_kids=None)) is None
