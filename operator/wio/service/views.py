# SPDX-License-Identifier: Apache-2.0
"""In-memory views of what the watches delivered, kept compact.

The operator decides from these views and never reads the API on the rotation path. Each view
keeps only what decisions need (a Secret is reduced to ``SecretFacts`` as soon as it arrives,
never its content), so memory stays small at ten thousand identities.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wio.policy.reconcile import SecretFacts
from wio.service.bodies import FINALIZER, MANAGED_BY, MANAGER, OWNER_LABEL, ROTATE_ANNOTATION


@dataclass(frozen=True, order=True)
class ObjectKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class IdentityView:
    """The parts of a WorkloadIdentity that reconciliation reads."""

    key: ObjectKey
    uid: str
    generation: int
    spec: Mapping[str, Any]
    status: dict[str, Any]
    forced_request: str | None
    deleting: bool
    # Our finalizer is on the object: only then is anything issued, so a deletion can never
    # miss the revocation of a credential issued a moment before.
    guarded: bool = True
    resource_version: str | None = None
    # The resourceVersion our own last status write produced; older events are stale.
    written_version: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> IdentityView:
        meta = body.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        return cls(
            key=ObjectKey(meta["namespace"], meta["name"]),
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 0),
            spec=dict(body.get("spec") or {}),
            status=dict(body.get("status") or {}),
            forced_request=annotations.get(ROTATE_ANNOTATION) or None,
            deleting=bool(meta.get("deletionTimestamp")),
            guarded=FINALIZER in (meta.get("finalizers") or ()),
            resource_version=meta.get("resourceVersion"),
        )


def decode_secret_data(body: Mapping[str, Any]) -> dict[str, bytes]:
    decoded: dict[str, bytes] = {}
    for name, value in (body.get("data") or {}).items():
        try:
            decoded[name] = base64.b64decode(value or "", validate=True)
        except (binascii.Error, ValueError):
            decoded[name] = b""
    return decoded


def owner_key(body: Mapping[str, Any]) -> ObjectKey | None:
    """The WorkloadIdentity a wio-managed Secret belongs to, from its label."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(MANAGED_BY) != MANAGER or not labels.get(OWNER_LABEL):
        return None
    return ObjectKey(meta.get("namespace", ""), labels[OWNER_LABEL])


@dataclass
class SecretIndex:
    """Verdicts on wio-managed Secrets, keyed by (namespace, Secret name)."""

    facts: dict[ObjectKey, SecretFacts] = field(default_factory=dict)
    # Who last wrote each Secret besides wio (from managedFields), to name a competing writer.
    foreign_writers: dict[ObjectKey, str] = field(default_factory=dict)
    # The resourceVersion our own last write of each Secret produced; older events are stale.
    written: dict[ObjectKey, str | None] = field(default_factory=dict)
    synced: bool = False

    def get(self, namespace: str, name: str) -> SecretFacts | None:
        return self.facts.get(ObjectKey(namespace, name))


def last_foreign_writer(managed_fields: list[Mapping[str, Any]]) -> str | None:
    """The field manager, other than wio, that wrote an object most recently."""
    foreign = [m for m in managed_fields if m.get("manager") and m.get("manager") != MANAGER]
    if not foreign:
        return None
    latest = max(foreign, key=lambda m: str(m.get("time") or ""))
    return str(latest["manager"])
