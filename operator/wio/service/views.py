# SPDX-License-Identifier: Apache-2.0
"""In-memory views of what the watches delivered, kept compact, and the rules for events.

The operator decides from these views and never reads the API on the rotation path. Each view
keeps only what decisions need (a Secret is reduced to its facts as soon as it arrives, never
its content), so memory stays small at ten thousand objects.

Event rules, the same for every kind:

- ``accept_event``: an event older than our own last status write must not roll the status
  we know back;
- ``wants_work``: only a change of what reconciliation acts on queues work (our own status
  writes come back as events and must not);
- ``older``: resourceVersions are compared only when both are etcd's integers.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from wio.names import API_VERSION, FINALIZER, MANAGER, REVOKE_ANNOTATION, ROTATE_ANNOTATION

F = TypeVar("F")


@dataclass(frozen=True, order=True)
class ObjectKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class ObjectView:
    """The parts of a WorkloadIdentity or ScopedCredential that reconciliation reads."""

    key: ObjectKey
    uid: str
    generation: int
    spec: Mapping[str, Any]
    status: dict[str, Any]
    forced_request: str | None
    deleting: bool
    # The revoke annotation's value: revoke everything issued so far, issue afresh.
    revoke_request: str | None = None
    # Our finalizer is on the object: only then is anything issued, so a deletion can never
    # miss the revocation of a credential issued a moment before.
    guarded: bool = True
    resource_version: str | None = None
    # The resourceVersion our own last status write produced; older events are stale.
    written_version: str | None = None
    # Who last changed what the object asks for (its spec or an annotation), by field
    # manager, for the audit stream; None when only wio has written it.
    actor: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ObjectView:
        meta = body.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        return cls(
            key=ObjectKey(meta["namespace"], meta["name"]),
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 0),
            spec=dict(body.get("spec") or {}),
            status=dict(body.get("status") or {}),
            forced_request=annotations.get(ROTATE_ANNOTATION) or None,
            revoke_request=annotations.get(REVOKE_ANNOTATION) or None,
            deleting=bool(meta.get("deletionTimestamp")),
            guarded=FINALIZER in (meta.get("finalizers") or ()),
            resource_version=meta.get("resourceVersion"),
            actor=last_requester(meta.get("managedFields")),
        )


def last_requester(entries: object) -> str | None:
    """The field manager that most recently wrote the spec or the annotations, wio (and
    Kopf, which writes as wio) aside."""
    latest: tuple[str, str] | None = None
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, Mapping) or entry.get("subresource"):
            continue
        manager, fields = entry.get("manager"), entry.get("fieldsV1") or {}
        if not isinstance(manager, str) or manager == MANAGER or not isinstance(fields, Mapping):
            continue
        metadata = fields.get("f:metadata") or {}
        if "f:spec" in fields or (isinstance(metadata, Mapping) and "f:annotations" in metadata):
            when = str(entry.get("time") or "")
            if latest is None or when >= latest[0]:
                latest = (when, manager)
    return latest[1] if latest else None


def older(version: str | None, than: str | None) -> bool:
    """True when resourceVersion ``version`` is known to precede ``than``.

    resourceVersions are opaque to clients in general; etcd-backed ones are increasing
    integers, and only then do we compare. Anything else is treated as not older.
    """
    if not version or not than:
        return False
    try:
        return int(version) < int(than)
    except ValueError:
        return False


def accept_event(previous: ObjectView | None, view: ObjectView) -> None:
    """Keep the status we wrote when ``view`` comes from an event that predates our write."""
    if previous is not None and older(view.resource_version, previous.written_version):
        view.status = previous.status
        view.written_version = previous.written_version


def wants_work(previous: ObjectView | None, view: ObjectView) -> bool:
    """Did this event change what reconciliation acts on (not merely our own status)?"""
    if view.deleting:
        return False
    return (
        previous is None
        or previous.generation != view.generation
        or previous.forced_request != view.forced_request
        or previous.revoke_request != view.revoke_request
        or previous.uid != view.uid
        or previous.guarded != view.guarded
    )


def decode_secret_data(body: Mapping[str, Any]) -> dict[str, bytes]:
    decoded: dict[str, bytes] = {}
    for name, value in (body.get("data") or {}).items():
        try:
            decoded[name] = base64.b64decode(value or "", validate=True)
        except (binascii.Error, ValueError):
            decoded[name] = b""
    return decoded


@dataclass(frozen=True)
class SecretRecord:
    """Whose a wio Secret is, and which version of it wio knows (never its content).

    A Secret is an object's only when its owner label names the object *and* its controller
    ownerReference carries the object's UID: labels alone can be written by anyone who may
    write Secrets, and a name can be reused by a new object.
    """

    owner: str  # the owner label: the name of the object it belongs to
    owner_uid: str | None  # the UID in its controller ownerReference of the owning kind
    uid: str | None  # the Secret's own UID (deletes carry it as a precondition)
    version: str | None  # the resourceVersion last seen or written (writes carry it)

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], owner: str, owner_kind: str) -> SecretRecord:
        owner_uid = next(
            (
                ref.get("uid")
                for ref in meta.get("ownerReferences") or ()
                if ref.get("kind") == owner_kind
                and ref.get("apiVersion") == API_VERSION
                and ref.get("controller")
                and ref.get("name") == owner
            ),
            None,
        )
        return cls(owner, owner_uid, meta.get("uid"), meta.get("resourceVersion"))

    def belongs_to(self, name: str, uid: str) -> bool:
        return self.owner == name and self.owner_uid is not None and self.owner_uid == uid


@dataclass
class SecretIndex(Generic[F]):
    """One kind's verdicts on the Secrets wio wrote for it, keyed by (namespace, Secret name)."""

    facts: dict[ObjectKey, F] = field(default_factory=dict)
    records: dict[ObjectKey, SecretRecord] = field(default_factory=dict)
    # Who last wrote each Secret besides wio (from managedFields), to name a competing writer.
    foreign_writers: dict[ObjectKey, str] = field(default_factory=dict)
    synced: bool = False

    def get(self, namespace: str, name: str) -> F | None:
        return self.facts.get(ObjectKey(namespace, name))

    def drop(self, key: ObjectKey, *, keep_writer: bool = False) -> None:
        """Forget a Secret; ``keep_writer`` remembers who else wrote it (deleted by someone
        else, it is about to be restored, and a competing writer must still be named)."""
        self.facts.pop(key, None)
        self.records.pop(key, None)
        if not keep_writer:
            self.foreign_writers.pop(key, None)


def last_foreign_writer(managed_fields: list[Mapping[str, Any]]) -> str | None:
    """The field manager, other than wio, that wrote an object most recently."""
    foreign = [m for m in managed_fields if m.get("manager") and m.get("manager") != MANAGER]
    if not foreign:
        return None
    latest = max(foreign, key=lambda m: str(m.get("time") or ""))
    return str(latest["manager"])
