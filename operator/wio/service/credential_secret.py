# SPDX-License-Identifier: Apache-2.0
"""The ScopedCredential Secret codec: what an issuance writes, and how it is read back.

An access token is written as the ``token`` key; a Vault dynamic secret as its own data keys
(their names recorded so a missing one is noticed). The annotations record the source, the
subject, the credential's ID (``jti`` or lease ID), its expiry and renewal time: enough to
revoke what the Secret holds even when status never recorded it (a crash between the two
writes). ``judge`` reads a delivered Secret back into the facts the reissue chain uses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from wio.clock import rfc3339
from wio.names import (
    DATA_KEYS_ANNOTATION,
    EXPIRES_AT_ANNOTATION,
    JTI_ANNOTATION,
    LEASE_ID_ANNOTATION,
    RENEW_AT_ANNOTATION,
    SOURCE_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    SPIFFE_ID_ANNOTATION,
    VAULT_PATH_ANNOTATION,
)
from wio.policy.rotation import ReissueReason
from wio.policy.scoped import TOKEN_KEY, CredentialFacts, Source, credential_facts


def encode_token(
    token: str,
    *,
    subject: str,
    jti: str,
    expires: dt.datetime,
    renew: dt.datetime,
    spec_hash: str,
) -> tuple[dict[str, bytes], dict[str, str]]:
    """An access token's Secret data and annotations."""
    notes = {
        SOURCE_ANNOTATION: Source.TOKEN.value,
        SPIFFE_ID_ANNOTATION: subject,
        JTI_ANNOTATION: jti,
        EXPIRES_AT_ANNOTATION: rfc3339(expires),
        RENEW_AT_ANNOTATION: rfc3339(renew),
        SPEC_HASH_ANNOTATION: spec_hash,
    }
    return {TOKEN_KEY: token.encode()}, notes


def encode_vault(
    data: Mapping[str, bytes],
    *,
    subject: str,
    lease_id: str,
    path: str,
    expires: dt.datetime,
    renew: dt.datetime,
    spec_hash: str,
) -> tuple[dict[str, bytes], dict[str, str]]:
    """A Vault dynamic secret's Secret data (its own keys) and annotations."""
    notes = {
        SOURCE_ANNOTATION: Source.VAULT.value,
        SPIFFE_ID_ANNOTATION: subject,
        LEASE_ID_ANNOTATION: lease_id,
        EXPIRES_AT_ANNOTATION: rfc3339(expires),
        RENEW_AT_ANNOTATION: rfc3339(renew),
        SPEC_HASH_ANNOTATION: spec_hash,
        VAULT_PATH_ANNOTATION: path,
        DATA_KEYS_ANNOTATION: ",".join(sorted(data)),
    }
    return dict(data), notes


def lease_renewal(expires: dt.datetime, renew: dt.datetime) -> dict[str, str]:
    """The annotations a lease renewal moves (the Secret's data stays)."""
    return {EXPIRES_AT_ANNOTATION: rfc3339(expires), RENEW_AT_ANNOTATION: rfc3339(renew)}


def judge(owner: str, data: Mapping[str, bytes], annotations: Mapping[str, str]) -> CredentialFacts:
    """The facts of a delivered ScopedCredential Secret (never its content)."""
    try:
        source = Source(annotations.get(SOURCE_ANNOTATION, ""))
    except ValueError:
        return CredentialFacts(
            owner, None, None, ReissueReason("SecretAltered", "the Secret lost wio's annotations")
        )
    return credential_facts(source, owner, data, annotations)
