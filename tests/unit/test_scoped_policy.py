# SPDX-License-Identifier: Apache-2.0
"""When a ScopedCredential is issued again, renewed, or left alone: the ordered checks of
``wio.policy.scoped`` over status and what the Secret watch saw, as pure functions of now."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from tests.support import tokens
from wio.policy.rotation import ReissueReason
from wio.policy.scoped import (
    CHECKS,
    EXPIRES_ANNOTATION,
    JTI_ANNOTATION,
    KEYS_ANNOTATION,
    LEASE_ANNOTATION,
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
    notes = {JTI_ANNOTATION: "j1", EXPIRES_ANNOTATION: "2026-03-01T12:15:00Z"}
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
    notes = {LEASE_ANNOTATION: "database/creds/ro/abc", KEYS_ANNOTATION: "password,username"}
    data = {"username": b"v-1", "password": b"p"}
    good = credential_facts(Source.VAULT, "c", data, notes)
    assert good.credential_id == "database/creds/ro/abc"
    assert good.problem is None
    emptied = credential_facts(Source.VAULT, "c", {"username": b"v-1", "password": b""}, notes)
    assert emptied.problem is not None
    assert "password" in emptied.problem.message
    assert credential_facts(Source.VAULT, "c", {}, notes).problem is not None


def _state(**changes: object) -> CredentialState:
    base = CredentialState(
        now=NOW,
        subject=SUBJECT,
        spec_hash="h1",
        secret_name="s",
        stored_id="j1",
        stored_subject=SUBJECT,
        stored_spec_hash="h1",
        stored_secret_name="s",
        expires_at=LATER,
        renewal_time=NOW + dt.timedelta(minutes=7),
        forced_request=None,
        forced_ack=None,
        secrets_synced=True,
        secret=CredentialFacts("c", "j1", LATER, None),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"stored_id": None}, "NotIssued"),
        ({"stored_secret_name": "old"}, "SecretNameChanged"),
        ({"secret": None}, "SecretMissing"),
        ({"secret": None, "secrets_synced": False}, None),
        (
            {"secret": CredentialFacts("c", "j1", LATER, ReissueReason("DataMissing", "no"))},
            "DataMissing",
        ),
        ({"secret": CredentialFacts("c", "j9", LATER, None)}, "SecretAltered"),
        ({"stored_subject": "spiffe://example.org/ns/shop/sa/other"}, "SubjectChanged"),
        ({"stored_spec_hash": "h0"}, "SpecChanged"),
        ({"forced_request": "now-1"}, "ForcedRotation"),
        ({"forced_request": "now-1", "forced_ack": "now-1"}, None),
        ({"now": LATER}, "Expired"),
        ({"now": NOW + dt.timedelta(minutes=7)}, "RenewalDue"),
        ({"renewal_time": None}, "RenewalDue"),
    ],
)
def test_reissue_checks_fire_in_order(changes: dict[str, object], reason: str | None) -> None:
    found = reissue_reason(_state(**changes))
    assert (found.reason if found else None) == reason


def test_the_first_check_wins() -> None:
    state = _state(stored_id=None, secret=None, now=LATER)
    assert reissue_reason(state).reason == "NotIssued"  # type: ignore[union-attr]
    assert len(CHECKS) == 11


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
