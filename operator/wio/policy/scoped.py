# SPDX-License-Identifier: Apache-2.0
"""Should this ScopedCredential be issued again, or its lease renewed, now?

The same shape as ``wio.policy.reconcile`` for WorkloadIdentities (ARCHITECTURE.md §8): the operator
decides from the object's stored status and a verdict on its Secret computed when the Secret
event arrived (``CredentialFacts``, never the content), through an ordered chain of small
named checks. The first reason wins and becomes the condition reason, the Event text and a
metric label. ``lease_action`` then says whether a due Vault lease is renewed in place or the
secret read again, and ``after_renewal`` whether the next one can be renewed too. All of it is
pure: a function of its inputs and ``now``.
"""

from __future__ import annotations

import datetime as dt
import enum
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wio.clock import parse_rfc3339
from wio.issuing.jwt import parse_unverified
from wio.names import (
    DATA_KEYS_ANNOTATION,
    EXPIRES_AT_ANNOTATION,
    JTI_ANNOTATION,
    LEASE_ID_ANNOTATION,
)
from wio.policy.checks import (
    forced,
    key_unpublished,
    revoke_requested,
    secret_damaged,
    secret_missing,
    secret_moved,
    spec_changed,
)
from wio.policy.rotation import ReissueReason

#: The Secret key that holds an access token.
TOKEN_KEY = "token"  # noqa: S105 - a key name


class Source(enum.StrEnum):
    """Where a ScopedCredential's credential comes from (``spec.token`` or ``spec.vault``)."""

    TOKEN = "token"  # noqa: S105 - a source name, not a token
    VAULT = "vault"


@dataclass(frozen=True)
class CredentialFacts:
    """What the Secret watch learned about one ScopedCredential Secret (never its content).

    ``credential_id`` is the ``jti`` of the token the Secret holds, or the lease ID it was
    written with; ``expires_at`` is when that credential expires, from wio's annotation.
    ``owner`` is the ScopedCredential named by the Secret's owner label.
    """

    owner: str
    credential_id: str | None
    expires_at: dt.datetime | None
    problem: ReissueReason | None
    kid: str | None = None  # the key that signed the token (tokens only)


def credential_facts(
    source: Source, owner: str, data: Mapping[str, bytes], annotations: Mapping[str, str]
) -> CredentialFacts:
    """Judge a ScopedCredential Secret's content once, keeping only the verdict and the IDs."""
    expires_at = parse_rfc3339(annotations.get(EXPIRES_AT_ANNOTATION))
    if source is Source.TOKEN:
        token = data.get(TOKEN_KEY)
        if not token:
            return CredentialFacts(
                owner, None, expires_at, ReissueReason("DataMissing", "the Secret has no token")
            )
        parsed = parse_unverified(token)
        jti = parsed.jti if parsed is not None else None
        if parsed is None or jti is None:
            return CredentialFacts(
                owner,
                None,
                expires_at,
                ReissueReason("Unparsable", "the Secret's token is not a readable JWT"),
            )
        if jti != annotations.get(JTI_ANNOTATION):
            return CredentialFacts(
                owner,
                jti,
                expires_at,
                ReissueReason("SecretAltered", "the Secret holds a token wio did not write"),
            )
        return CredentialFacts(owner, jti, expires_at, None, sys.intern(parsed.kid or "") or None)
    lease = annotations.get(LEASE_ID_ANNOTATION) or None
    wanted = [k for k in (annotations.get(DATA_KEYS_ANNOTATION) or "").split(",") if k]
    missing = [k for k in wanted if not data.get(k)]
    if not data or missing:
        what = f"key {missing[0]}" if missing else "data"
        return CredentialFacts(
            owner, lease, expires_at, ReissueReason("DataMissing", f"the Secret has no {what}")
        )
    return CredentialFacts(owner, lease, expires_at, None)


@dataclass(frozen=True)
class CredentialState:
    """Everything the checks need about one ScopedCredential at ``now``."""

    now: dt.datetime
    subject: str  # the referenced identity's SPIFFE ID, as its status reports it
    spec_hash: str
    secret_name: str
    stored_id: str | None  # status.jti or status.leaseID
    stored_subject: str | None
    stored_spec_hash: str | None
    stored_secret_name: str | None
    expires_at: dt.datetime | None
    renewal_time: dt.datetime | None
    forced_request: str | None
    forced_ack: str | None
    secrets_synced: bool
    secret: CredentialFacts | None
    # kids of every published JWT key; None until the signers' keys have been read
    published_kids: frozenset[str] | None = None
    # The revoke annotation's value, and the one status acknowledges (handled already).
    revoke_request: str | None = None
    revoke_ack: str | None = None


Check = Callable[[CredentialState], ReissueReason | None]


def not_issued(s: CredentialState) -> ReissueReason | None:
    if s.stored_id is None:
        return ReissueReason("NotIssued", "no credential has been issued yet")
    return None


def secret_replaced(s: CredentialState) -> ReissueReason | None:
    """The Secret holds a credential other than the one status records (edited by hand)."""
    if s.secret is not None and s.secret.credential_id != s.stored_id:
        return ReissueReason(
            "SecretAltered", f"Secret {s.secret_name} holds a credential wio did not record"
        )
    return None


def signing_key_unpublished(s: CredentialState) -> ReissueReason | None:
    """The token was signed by a key verifiers no longer find (a distrusted key)."""
    return key_unpublished(s.secret.kid if s.secret is not None else None, s.published_kids)


def subject_changed(s: CredentialState) -> ReissueReason | None:
    if s.stored_subject is not None and s.stored_subject != s.subject:
        return ReissueReason("SubjectChanged", "the WorkloadIdentity's SPIFFE ID changed")
    return None


def expired(s: CredentialState) -> ReissueReason | None:
    if s.expires_at is not None and s.now >= s.expires_at:
        return ReissueReason("Expired", "the credential has expired")
    return None


def renewal_due(s: CredentialState) -> ReissueReason | None:
    if s.renewal_time is None or s.now >= s.renewal_time:
        return ReissueReason(RENEWAL_DUE, "the credential reached its renewal time")
    return None


RENEWAL_DUE = "RenewalDue"

CHECKS: tuple[Check, ...] = (
    revoke_requested,
    not_issued,
    secret_moved,
    secret_missing,
    secret_damaged,
    secret_replaced,
    signing_key_unpublished,
    subject_changed,
    spec_changed,
    forced,
    expired,
    renewal_due,
)


def reissue_reason(
    state: CredentialState, checks: tuple[Check, ...] = CHECKS
) -> ReissueReason | None:
    for check in checks:
        reason = check(state)
        if reason is not None:
            return reason
    return None


class LeaseAction(enum.Enum):
    RENEW = "renew"  # extend the current lease; the Secret's data stays as it is
    READ = "read"  # read the secret again: a new lease and new data


def lease_action(reason: ReissueReason, renewable: bool) -> LeaseAction:
    """Renew only when the lease is merely due and Vault said it can be renewed; anything
    else (a missing or altered Secret, a new path, an expired lease) needs a fresh read."""
    if reason.reason == RENEWAL_DUE and renewable:
        return LeaseAction.RENEW
    return LeaseAction.READ


def after_renewal(requested: dt.timedelta, granted: dt.timedelta, renewable: bool) -> bool:
    """May the next renewal of this lease be a renewal again?

    Vault grants at most what the role's ``max_ttl`` leaves. Once it grants less than asked,
    the lease ends at a fixed time no renewal can move, so the next due time reads a new
    secret instead, while half of what is left still covers the switch.
    """
    return renewable and granted >= requested and granted > dt.timedelta(0)


def live_leases(
    leases: Mapping[str, dt.datetime], now: dt.datetime, limit: int
) -> dict[str, dt.datetime]:
    """Leases not yet expired, the latest-expiring ``limit`` of them (older ones are dropped
    first: they are the closest to ending on their own)."""
    live = sorted(((exp, lid) for lid, exp in leases.items() if exp > now), reverse=True)
    return {lid: exp for exp, lid in live[:limit]}
