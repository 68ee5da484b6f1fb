# SPDX-License-Identifier: Apache-2.0
"""The WorkloadIdentity Secret codec: what an issuance writes, and how it is read back.

``encode`` turns an issued credential into the Secret's data and annotations (one write
replaces key, chain, bundles and token together); ``token_refresh`` is the patch of a JWT-SVID
renewal; ``recorded_facts`` reads wio's own annotations back (start-up, before the content is
judged) and ``adopted_status`` turns them into status when a credential was written just before
a crash. Writer and reader sit side by side so the stored format cannot drift. Annotations
carry facts about the credential, never the credential: they are safe to show.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wio.clock import parse_rfc3339, rfc3339
from wio.issuing.x509svid import X509SVID
from wio.names import (
    FORCED_ROTATION_ANNOTATION,
    JWT_EXPIRES_AT_ANNOTATION,
    JWT_ID_ANNOTATION,
    JWT_RENEW_AT_ANNOTATION,
    KEY_FINGERPRINT_ANNOTATION,
    NOT_AFTER_ANNOTATION,
    RENEW_AT_ANNOTATION,
    ROTATIONS_ANNOTATION,
    SERIAL_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    SPIFFE_ID_ANNOTATION,
)
from wio.policy.reconcile import SecretFacts, wio_annotations
from wio.service.kind import Live

TOKEN_KEY = "token"  # noqa: S105 - a data key name


@dataclass(frozen=True)
class IssuedIdentity:
    """What one issuance produced, as the Secret and status need it."""

    svid: X509SVID
    ca_bundle_pem: bytes
    spiffe_bundle_json: bytes
    trust_domain: str
    spec_hash: str
    renewal_time: dt.datetime
    token: str | None = None
    token_expires_at: dt.datetime | None = None
    token_renewal_time: dt.datetime | None = None
    token_id: str | None = None  # the JWT's jti: an identifier, safe to show
    token_kid: str | None = None
    forced_ack: str | None = None  # the rotate annotation this issuance answers
    rotations: int = 0


def encode(issued: IssuedIdentity) -> tuple[dict[str, bytes], dict[str, str]]:
    """The Secret's data (every file a workload reads) and annotations."""
    chain = issued.svid.cert_chain_pem()
    data = {
        "tls.crt": chain,
        "tls.key": issued.svid.key_pem(),
        "ca.crt": issued.ca_bundle_pem,
        # SPIFFE filesystem delivery: the private key first, then the chain.
        "credential-bundle.private-key.pem": issued.svid.credential_bundle_pem(),
        f"{issued.trust_domain}.spiffe-trust-bundle.pem": issued.ca_bundle_pem,
        "bundle.spiffe.json": issued.spiffe_bundle_json,
    }
    if issued.token is not None:
        data[TOKEN_KEY] = issued.token.encode("ascii")
    notes = {
        SPIFFE_ID_ANNOTATION: str(issued.svid.spiffe_id),
        SERIAL_ANNOTATION: issued.svid.serial_hex,
        KEY_FINGERPRINT_ANNOTATION: issued.svid.key_fingerprint,
        NOT_AFTER_ANNOTATION: rfc3339(issued.svid.not_after),
        RENEW_AT_ANNOTATION: rfc3339(issued.renewal_time),
        SPEC_HASH_ANNOTATION: issued.spec_hash,
    }
    if issued.token_expires_at is not None:
        notes[JWT_EXPIRES_AT_ANNOTATION] = rfc3339(issued.token_expires_at)
    if issued.token_renewal_time is not None:
        notes[JWT_RENEW_AT_ANNOTATION] = rfc3339(issued.token_renewal_time)
    if issued.token_id is not None:
        notes[JWT_ID_ANNOTATION] = issued.token_id
    if issued.forced_ack is not None:
        notes[FORCED_ROTATION_ANNOTATION] = issued.forced_ack
    notes[ROTATIONS_ANNOTATION] = str(issued.rotations)
    return data, notes


def written_facts(
    issued: IssuedIdentity, annotations: Mapping[str, str], anchor: str | None
) -> SecretFacts:
    """What the Secret holds right after ``encode`` was written, as the watch would judge it."""
    svid = issued.svid
    return SecretFacts(
        serial=svid.serial_hex,
        spiffe_id=str(svid.spiffe_id),
        problem=None,
        has_token=issued.token is not None,
        not_before=svid.not_before,
        not_after=svid.not_after,
        key_fingerprint=svid.key_fingerprint,
        annotations=dict(annotations),
        anchor=anchor,
        token_kid=issued.token_kid,
    )


def issued_status(issued: IssuedIdentity, *, secret_name: str) -> dict[str, Any]:
    """The status fields that describe the current credential (conditions are merged apart).

    Everything here is also in the Secret's annotations, so a credential written just before
    a crash can be adopted into status without minting another.
    """
    status: dict[str, Any] = {
        "spiffeID": str(issued.svid.spiffe_id),
        "secretName": secret_name,
        "serialNumber": issued.svid.serial_hex,
        "keyFingerprint": issued.svid.key_fingerprint,
        "notBefore": rfc3339(issued.svid.not_before),
        "notAfter": rfc3339(issued.svid.not_after),
        "renewalTime": rfc3339(issued.renewal_time),
        "specHash": issued.spec_hash,
        "rotations": issued.rotations,
        "jwtExpiresAt": rfc3339(issued.token_expires_at) if issued.token_expires_at else None,
        "jwtRenewalTime": (
            rfc3339(issued.token_renewal_time) if issued.token_renewal_time else None
        ),
        "jwtID": issued.token_id,
    }
    if issued.forced_ack is not None:
        status["lastForcedRotation"] = issued.forced_ack
    return status


def token_refresh(
    token: str, jti: str, expires: dt.datetime, renew: dt.datetime
) -> tuple[dict[str, bytes], dict[str, str], dict[str, Any]]:
    """A JWT-SVID renewal: the Secret's new data and annotations, and the status fields."""
    notes = {
        JWT_EXPIRES_AT_ANNOTATION: rfc3339(expires),
        JWT_RENEW_AT_ANNOTATION: rfc3339(renew),
        JWT_ID_ANNOTATION: jti,
    }
    status = {"jwtExpiresAt": rfc3339(expires), "jwtRenewalTime": rfc3339(renew), "jwtID": jti}
    return {TOKEN_KEY: token.encode("ascii")}, notes, status


def recorded_facts(annotations: Mapping[str, str]) -> SecretFacts:
    """What wio's own annotations say a Secret holds, before its content has been judged."""
    return SecretFacts(
        serial=annotations.get(SERIAL_ANNOTATION),
        spiffe_id=annotations.get(SPIFFE_ID_ANNOTATION),
        problem=None,
        has_token=JWT_EXPIRES_AT_ANNOTATION in annotations,
        not_after=parse_rfc3339(annotations.get(NOT_AFTER_ANNOTATION)),
        key_fingerprint=annotations.get(KEY_FINGERPRINT_ANNOTATION),
        annotations=wio_annotations(annotations),
    )


def adopted_status(facts: SecretFacts, *, secret_name: str) -> dict[str, Any]:
    """Status for a credential found in its Secret but never recorded (a crash between the
    Secret write and the status patch)."""
    notes = facts.annotations
    status: dict[str, Any] = {
        "spiffeID": facts.spiffe_id,
        "secretName": secret_name,
        "serialNumber": facts.serial,
        "keyFingerprint": facts.key_fingerprint,
        "notBefore": rfc3339(facts.not_before) if facts.not_before else None,
        "notAfter": rfc3339(facts.not_after) if facts.not_after else None,
        "renewalTime": notes.get(RENEW_AT_ANNOTATION),
        "specHash": notes.get(SPEC_HASH_ANNOTATION),
        "jwtExpiresAt": notes.get(JWT_EXPIRES_AT_ANNOTATION),
        "jwtRenewalTime": notes.get(JWT_RENEW_AT_ANNOTATION),
        "jwtID": notes.get(JWT_ID_ANNOTATION),
        "rotations": int(notes.get(ROTATIONS_ANNOTATION) or 0),
    }
    if notes.get(FORCED_ROTATION_ANNOTATION):
        status["lastForcedRotation"] = notes[FORCED_ROTATION_ANNOTATION]
    return status


def held_credentials(facts: SecretFacts, signer: str, now: dt.datetime) -> list[Live]:
    """The still-valid certificate and JWT-SVID a Secret holds, by its facts."""
    held = []
    if facts.serial and facts.not_after is not None and facts.not_after > now:
        held.append(Live("x509", facts.serial, facts.not_after, facts.key_fingerprint, signer))
    jti = facts.annotations.get(JWT_ID_ANNOTATION)
    expires = parse_rfc3339(facts.annotations.get(JWT_EXPIRES_AT_ANNOTATION))
    if jti and expires is not None and expires > now:
        held.append(Live("jwt", jti, expires))
    return held
