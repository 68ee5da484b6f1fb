# SPDX-License-Identifier: Apache-2.0
"""Reissue checks shared by the WorkloadIdentity and ScopedCredential chains.

Both chains judge the same things about a credential's Secret and the owner's stored status
(was the Secret renamed, is it missing or damaged, did the spec change, was a rotation asked
for, was the signing key withdrawn), each over its own state type; the checks here read only
the attributes ``CredentialRecord`` names, so one function serves both.
"""

from __future__ import annotations

from typing import Protocol

from wio.policy.rotation import ReissueReason

KEY_UNPUBLISHED = "SigningKeyNotPublished"
REVOKE_REQUESTED = "RevokeRequested"
FORCED_ROTATION = "ForcedRotation"
UNPUBLISHED_MESSAGE = "the key that signed the token is no longer published (key rollover)"


class SecretVerdict(Protocol):
    @property
    def problem(self) -> ReissueReason | None: ...


class CredentialRecord(Protocol):
    """What a reissue state holds about the Secret and the owner's stored status."""

    @property
    def secret_name(self) -> str: ...
    @property
    def stored_secret_name(self) -> str | None: ...
    @property
    def secrets_synced(self) -> bool: ...
    @property
    def secret(self) -> SecretVerdict | None: ...
    @property
    def spec_hash(self) -> str: ...
    @property
    def stored_spec_hash(self) -> str | None: ...
    @property
    def forced_request(self) -> str | None: ...
    @property
    def forced_ack(self) -> str | None: ...
    @property
    def revoke_request(self) -> str | None: ...
    @property
    def revoke_ack(self) -> str | None: ...


def secret_moved(s: CredentialRecord) -> ReissueReason | None:
    if s.stored_secret_name is not None and s.stored_secret_name != s.secret_name:
        return ReissueReason(
            "SecretNameChanged",
            f"secretName changed from {s.stored_secret_name} to {s.secret_name}",
        )
    return None


def secret_missing(s: CredentialRecord) -> ReissueReason | None:
    if s.secrets_synced and s.secret is None:
        return ReissueReason("SecretMissing", f"Secret {s.secret_name} does not exist")
    return None


def secret_damaged(s: CredentialRecord) -> ReissueReason | None:
    if s.secret is not None and s.secret.problem is not None:
        return s.secret.problem
    return None


def spec_changed(s: CredentialRecord) -> ReissueReason | None:
    if s.stored_spec_hash != s.spec_hash:
        return ReissueReason("SpecChanged", "the spec changed in a way that affects the credential")
    return None


def forced(s: CredentialRecord) -> ReissueReason | None:
    if s.forced_request and s.forced_request != s.forced_ack:
        return ReissueReason(FORCED_ROTATION, "a rotation was requested with the rotate annotation")
    return None


def key_unpublished(kid: str | None, published: frozenset[str] | None) -> ReissueReason | None:
    """A token signed by ``kid`` when the published keys (None: not read yet) lack it."""
    if kid is not None and published and kid not in published:
        return ReissueReason(KEY_UNPUBLISHED, UNPUBLISHED_MESSAGE)
    return None


def revoke_requested(s: CredentialRecord) -> ReissueReason | None:
    """An SRE asked, with the revoke annotation, to revoke everything issued so far."""
    if s.revoke_request and s.revoke_request != s.revoke_ack:
        return ReissueReason(
            REVOKE_REQUESTED,
            "revocation was requested with the revoke annotation: everything issued before "
            "is listed as revoked",
        )
    return None
