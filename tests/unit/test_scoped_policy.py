# SPDX-License-Identifier: Apache-2.0
"""When a ScopedCredential is issued again, renewed, or left alone: the ordered checks of
``wio.policy.scoped`` over status and what the Secret watch saw, as pure functions of now."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from tests.support import tokens
from wio.names import (
    DATA_KEYS_ANNOTATION,
    EXPIRES_AT_ANNOTATION,
    JTI_ANNOTATION,
    LEASE_ID_ANNOTATION,
)
from wio.policy.rotation import ReissueReason
from wio.policy.scoped import (
    CHECKS,
    CredentialFacts,
    CredentialState,
    LeaseAction,
    Source,
    after_renewal,
    credential_facts,
    lease_action,
    live_leases,
    reissue_reason,
)

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=15)
SUBJECT = "spiffe://example.org/ns/shop/sa/payments"


def _token(jti: str) -> bytes:
    return tokens.forge({"alg": "ES256", "typ": "at+jwt"}, {"jti": jti}, b"sig").encode()


def test_token_secret_facts_recognise_our_token_and_nothing_else() -> None:
    notes = {JTI_ANNOTATION: "j1", EXPIRES_AT_ANNOTATION: "2026-03-01T12:15:00Z"}
    good = credential_facts(Source.TOKEN, "c", {"token": _token("j1")}, notes)
    assert good == CredentialFacts("c", "j1", LATER, None)
    assert credential_facts(Source.TOKEN, "c", {}, notes).problem.reason == "DataMissing"  # type: ignore[union-attr]
    garbled = credential_facts(Source.TOKEN, "c", {"token": b"not-a-jwt"}, notes)
    assert garbled.problem is not None
    assert garbled.problem.reason == "Unparsable"
    swapped = credential_facts(Source.TOKEN, "c", {"token": _token("j2")}, notes)
    assert swapped.problem is not None
    assert swapped.problem.reason == "SecretAltered"
    assert swapped.credential_id == "j2"


def test_vault_secret_facts_need_every_key_written() -> None:
    notes = {
        LEASE_ID_ANNOTATION: "database/creds/ro/abc",
        DATA_KEYS_ANNOTATION: "password,username",
    }
    data = {"username": b"v-1", "password": b"p"}
    good = credential_facts(Source.VAULT, "c", data, notes)
    assert good.credential_id == "database/creds/ro/abc"
    assert good.problem is None
    emptied = credential_facts(Source.VAULT, "c", {"username": b"v-1", "password": b""}, notes)
    assert emptied.problem is not None
    assert "password" in emptied.problem.message
    assert credential_facts(Source.VAULT, "c", {}, notes).problem is not None


STORED_ID = "j1"
KID = "kid-1"
FACTS = CredentialFacts("c", STORED_ID, LATER, None, KID)
CHECK_NAMES = [check.__name__ for check in CHECKS]


def _state(**changes: object) -> CredentialState:
    """A recorded, sound, not yet due credential; ``changes`` add one fault or more."""
    base = CredentialState(
        now=NOW,
        subject=SUBJECT,
        spec_hash="h1",
        secret_name="s",
        stored_id=STORED_ID,
        stored_subject=SUBJECT,
        stored_spec_hash="h1",
        stored_secret_name="s",
        expires_at=LATER,
        renewal_time=NOW + dt.timedelta(minutes=7),
        forced_request=None,
        forced_ack=None,
        secrets_synced=True,
        secret=FACTS,
        published_kids=frozenset({KID}),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


FIRING = [
    pytest.param(
        "revoke_requested",
        {"revoke_request": "key-leak", "revoke_ack": None},
        "RevokeRequested",
        id="revoke-requested",
    ),
    pytest.param("not_issued", {"stored_id": None}, "NotIssued", id="never-issued"),
    pytest.param("secret_moved", {"stored_secret_name": "old"}, "SecretNameChanged", id="renamed"),
    pytest.param("secret_missing", {"secret": None}, "SecretMissing", id="secret-deleted"),
    pytest.param(
        "secret_damaged",
        {"secret": CredentialFacts("c", STORED_ID, LATER, ReissueReason("DataMissing", "no"))},
        "DataMissing",
        id="content-verdict",
    ),
    pytest.param(
        "secret_replaced",
        {"secret": CredentialFacts("c", "j9", LATER, None)},
        "SecretAltered",
        id="credential-not-recorded",
    ),
    pytest.param(
        "signing_key_unpublished",
        {"published_kids": frozenset({"kid-2"})},
        "SigningKeyNotPublished",
        id="jwt-key-withdrawn",
    ),
    pytest.param(
        "subject_changed",
        {"stored_subject": "spiffe://example.org/ns/shop/sa/other"},
        "SubjectChanged",
        id="identity-renamed",
    ),
    pytest.param("spec_changed", {"stored_spec_hash": "h0"}, "SpecChanged", id="spec-edited"),
    pytest.param("forced", {"forced_request": "now-1"}, "ForcedRotation", id="rotate-annotation"),
    pytest.param("expired", {"now": LATER}, "Expired", id="at-expiry"),
    pytest.param(
        "renewal_due", {"now": NOW + dt.timedelta(minutes=7)}, "RenewalDue", id="due-exactly"
    ),
    pytest.param("renewal_due", {"renewal_time": None}, "RenewalDue", id="no-renewal-time"),
]


@pytest.mark.parametrize(("check", "changes", "reason"), FIRING)
def test_each_check_gives_its_reason_when_no_earlier_check_fires(
    check: str, changes: dict[str, object], reason: str
) -> None:
    state = _state(**changes)
    found = reissue_reason(state)
    assert found is not None
    assert found.reason == reason
    assert found.message
    position = CHECK_NAMES.index(check)
    assert CHECKS[position](state) == found
    assert [c.__name__ for c in CHECKS[:position] if c(state) is not None] == []


def test_the_table_has_a_case_for_every_check_of_the_chain() -> None:
    covered = {case.values[0] for case in FIRING}
    assert covered == set(CHECK_NAMES)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="recorded-sound-not-due"),
        pytest.param({"secret": None, "secrets_synced": False}, id="secrets-not-listed-yet"),
        pytest.param({"stored_secret_name": None}, id="secret-name-not-recorded-yet"),
        pytest.param({"stored_subject": None}, id="subject-not-recorded-yet"),
        pytest.param({"forced_request": "now-1", "forced_ack": "now-1"}, id="rotation-done"),
        pytest.param({"published_kids": None}, id="keys-not-read-yet"),
        pytest.param(
            {"secret": CredentialFacts("c", STORED_ID, LATER, None), "published_kids": frozenset()},
            id="vault-secret-has-no-kid",
        ),
        pytest.param({"expires_at": None}, id="expiry-unknown"),
        pytest.param({"now": NOW + dt.timedelta(minutes=7, seconds=-1)}, id="one-second-early"),
    ],
)
def test_no_check_fires_for_a_sound_credential_that_is_not_due(
    changes: dict[str, object],
) -> None:
    assert reissue_reason(_state(**changes)) is None


def test_the_first_applicable_reason_wins() -> None:
    # Each step adds a fault that an earlier check notices; the earliest always wins.
    faults: dict[str, object] = {"now": LATER + dt.timedelta(days=1)}  # Expired, RenewalDue
    steps: list[tuple[dict[str, object], str]] = [
        ({}, "Expired"),
        ({"forced_request": "now-1"}, "ForcedRotation"),
        ({"stored_spec_hash": "h0"}, "SpecChanged"),
        ({"stored_subject": "spiffe://example.org/ns/shop/sa/other"}, "SubjectChanged"),
        ({"published_kids": frozenset({"kid-2"})}, "SigningKeyNotPublished"),
        ({"secret": CredentialFacts("c", "j9", LATER, None, KID)}, "SecretAltered"),
        (
            {"secret": CredentialFacts("c", "j9", LATER, ReissueReason("Unparsable", "x"))},
            "Unparsable",
        ),
        ({"secret": None}, "SecretMissing"),
        ({"stored_secret_name": "old"}, "SecretNameChanged"),
        ({"stored_id": None}, "NotIssued"),
    ]
    seen = []
    for added, _ in steps:
        faults.update(added)
        found = reissue_reason(_state(**faults))
        assert found is not None
        seen.append(found.reason)
    assert seen == [reason for _, reason in steps]


def test_a_due_lease_is_renewed_only_when_renewable_and_merely_due() -> None:
    due = ReissueReason("RenewalDue", "due")
    assert lease_action(due, renewable=True) is LeaseAction.RENEW
    assert lease_action(due, renewable=False) is LeaseAction.READ
    for other in ("Expired", "SecretMissing", "SpecChanged", "NotIssued"):
        assert lease_action(ReissueReason(other, "x"), renewable=True) is LeaseAction.READ


def test_a_renewal_capped_by_the_max_ttl_makes_the_next_one_a_read() -> None:
    hour = dt.timedelta(hours=1)
    assert after_renewal(hour, hour, renewable=True)
    assert not after_renewal(hour, hour - dt.timedelta(seconds=1), renewable=True)
    assert not after_renewal(hour, hour, renewable=False)
    assert not after_renewal(dt.timedelta(0), dt.timedelta(0), renewable=True)


def test_live_leases_drop_expired_and_keep_the_latest() -> None:
    leases = {
        "a": NOW - dt.timedelta(seconds=1),
        "b": NOW + dt.timedelta(minutes=1),
        "c": NOW + dt.timedelta(minutes=2),
        "d": NOW + dt.timedelta(minutes=3),
    }
    assert live_leases(leases, NOW, limit=2) == {"d": leases["d"], "c": leases["c"]}
    assert live_leases(leases, NOW, limit=10).keys() == {"b", "c", "d"}
