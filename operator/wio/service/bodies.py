# SPDX-License-Identifier: Apache-2.0
"""Pure builders of the objects wio writes: the identity Secret, status, trust ConfigMap.

Build, then apply (STYLE.md #6): these functions only assemble dictionaries; one writer in
the service sends them. Nothing here may put key material into annotations, labels or status.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wio.clock import rfc3339
from wio.issuing.x509svid import X509SVID

GROUP = "identity.wio.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "wio"
OWNER_LABEL = f"{GROUP}/workloadidentity"
FINALIZER = f"{GROUP}/finalizer"
ROTATE_ANNOTATION = f"{GROUP}/rotate"


@dataclass(frozen=True)
class Owner:
    """The custom resource a Secret belongs to (for the ownerReference and labels)."""

    kind: str
    namespace: str
    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def event_reference(self) -> dict[str, str]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }


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
    forced_ack: str | None = None  # the rotate annotation this issuance answers
    rotations: int = 0


def identity_annotations(issued: IssuedIdentity) -> dict[str, str]:
    """Facts about the credential, never the credential: safe to show in `kubectl describe`."""
    notes = {
        f"{GROUP}/spiffe-id": str(issued.svid.spiffe_id),
        f"{GROUP}/serial": issued.svid.serial_hex,
        f"{GROUP}/key-fingerprint": issued.svid.key_fingerprint,
        f"{GROUP}/not-after": rfc3339(issued.svid.not_after),
        f"{GROUP}/renew-at": rfc3339(issued.renewal_time),
        f"{GROUP}/spec-hash": issued.spec_hash,
    }
    if issued.token_expires_at is not None:
        notes[f"{GROUP}/jwt-expires-at"] = rfc3339(issued.token_expires_at)
    if issued.token_renewal_time is not None:
        notes[f"{GROUP}/jwt-renew-at"] = rfc3339(issued.token_renewal_time)
    if issued.token_id is not None:
        notes[f"{GROUP}/jwt-id"] = issued.token_id
    if issued.forced_ack is not None:
        notes[f"{GROUP}/forced-rotation"] = issued.forced_ack
    notes[f"{GROUP}/rotations"] = str(issued.rotations)
    return notes


def identity_secret_data(issued: IssuedIdentity) -> dict[str, bytes]:
    """Every file of DESIGN.md §3, so one write replaces key, chain, bundle and token together."""
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
        data["token"] = issued.token.encode("ascii")
    return data


def secret_manifest(
    owner: Owner,
    secret_name: str,
    data: Mapping[str, bytes],
    annotations: Mapping[str, str],
    *,
    secret_type: str = "kubernetes.io/tls",  # noqa: S107 - a Secret type
) -> dict[str, Any]:
    import base64

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name,
            "namespace": owner.namespace,
            "labels": {MANAGED_BY: MANAGER, OWNER_LABEL: owner.name},
            "annotations": dict(annotations),
            "ownerReferences": [owner.reference()],
        },
        "type": secret_type,
        "data": {k: base64.b64encode(v).decode("ascii") for k, v in data.items()},
    }


# -- conditions and status -------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    updates: Sequence[Condition],
    *,
    generation: int,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Apply ``updates`` onto the previous list; a transition time moves only when status does."""
    by_type = {c.get("type"): dict(c) for c in previous or [] if isinstance(c, Mapping)}
    for cond in updates:
        status = "True" if cond.status else "False"
        old = by_type.get(cond.type)
        changed = old is None or old.get("status") != status
        by_type[cond.type] = {
            "type": cond.type,
            "status": status,
            "reason": cond.reason,
            "message": cond.message,
            "observedGeneration": generation,
            "lastTransitionTime": rfc3339(now) if changed else old.get("lastTransitionTime"),  # type: ignore[union-attr]
        }
    order = ["Ready", "Issuing", "SignerAvailable", "PolicyDenied"]
    return sorted(
        by_type.values(),
        key=lambda c: (order.index(c["type"]) if c["type"] in order else 99, c["type"]),
    )


def condition(status: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    for cond in (status or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return None


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


def trust_configmap(
    namespace: str,
    name: str,
    *,
    ca_bundle_pem: bytes,
    spiffe_bundle_json: bytes,
    jwks_json: bytes,
    revocations_json: bytes,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_BY: MANAGER}},
        "data": {
            "ca.crt": ca_bundle_pem.decode("ascii"),
            "bundle.spiffe.json": spiffe_bundle_json.decode("utf-8"),
            "jwks.json": jwks_json.decode("utf-8"),
            "revocations.json": revocations_json.decode("utf-8"),
        },
    }


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
