# SPDX-License-Identifier: Apache-2.0
"""The revocation list: what was revoked, in which namespace, when, why, and until when.

An entry is kept until the credential it names would have expired anyway; after that the
credential is rejected for being expired, and the entry only costs space.

**Scoped to a namespace.** Each entry carries the namespace of the object that revoked it
(its metadata, not anything a tenant writes into status), and an entry only ever counts
against a credential whose SPIFFE ID is in that namespace: an ID copied from another
namespace's certificate or token into one's own object can revoke nothing there. The key of
an entry is (kind, id, namespace).

Three shapes, each made here so they cannot drift:

- the durable shard (``shard_json`` / ``parse_shard``): compact rows, every field, in the
  operator's namespace (``wio.k8s.revocations`` decides which shard holds an entry);
- the published list of one namespace (``published_json``): only what a verifier needs,
  ``{"version": 2, "namespace": ns, "expires": {kind: {id: unix time}}}``;
- the first release's single-list form (``parse_legacy``), read once to migrate it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from wio.clock import parse_rfc3339
from wio.errors import ValidationError
from wio.models.spiffe import namespace_of

KINDS = ("x509", "jwt", "token", "lease")
#: The kinds a verifier checks; a Vault lease is revoked upstream and never presented.
PUBLISHED_KINDS = ("x509", "jwt", "token")
SHARD_FORMAT = 2
PUBLISHED_VERSION = 2
#: A namespace's published list stays below this, so its trust ConfigMap (with the bundles)
#: stays below the API server's 1 MiB object limit.
PUBLISHED_MAX_BYTES = 900 * 1024
#: Quotes, colon, comma and a 10-digit time around each published id.
_PUBLISHED_ENTRY_OVERHEAD = 16

Key = tuple[str, str, str]  # (kind, id, namespace)


def _epoch(when: dt.datetime) -> int:
    return int(when.timestamp())


def _from_epoch(value: object, field: str) -> dt.datetime:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValidationError(field, "must be a whole number of seconds since the epoch")
    return dt.datetime.fromtimestamp(value, dt.UTC)


@dataclass(frozen=True)
class Revocation:
    """One revoked credential. ``id`` is a serial (hex), a ``jti`` or a lease ID, per ``kind``;
    ``namespace`` is the revoking object's; ``spiffe_id`` is informational (from spec, or
    empty when the subject can no longer be known)."""

    kind: str
    id: str
    namespace: str
    spiffe_id: str
    revoked_at: dt.datetime
    expires_at: dt.datetime
    reason: str
    key_fingerprint: str | None = None
    # Upstream revocation (Vault PKI, lease revoke) still to do; survives restarts in the list.
    upstream_pending: bool = False
    # The signer that issued a certificate, so a pending upstream revocation is retried there.
    signer: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValidationError("kind", f"must be one of {', '.join(KINDS)}")
        if not self.id or not isinstance(self.id, str):
            raise ValidationError("id", "must not be empty")
        if not self.namespace or not isinstance(self.namespace, str):
            raise ValidationError("namespace", "must not be empty")

    @property
    def key(self) -> Key:
        return (self.kind, self.id, self.namespace)

    @cached_property
    def row_text(self) -> str:
        """The entry as one compact JSON row of the durable shard, made once: a shard is
        re-serialised on every change, and most of its entries never change."""
        row = [
            self.kind,
            self.id,
            self.namespace,
            self.spiffe_id,
            _epoch(self.revoked_at),
            _epoch(self.expires_at),
            self.reason,
            self.key_fingerprint or "",
            self.signer or "",
            int(self.upstream_pending),
        ]
        return json.dumps(row, separators=(",", ":"))

    @classmethod
    def from_row(cls, row: Any, where: str) -> Revocation:
        if not isinstance(row, list) or len(row) != 10:
            raise ValidationError(where, "each entry must be a row of 10 fields")
        kind, id_, namespace, spiffe_id, revoked, expires, reason, fingerprint, signer, pending = (
            row
        )
        for field, value in (
            ("kind", kind),
            ("id", id_),
            ("namespace", namespace),
            ("spiffeID", spiffe_id),
            ("reason", reason),
            ("keyFingerprint", fingerprint),
            ("signer", signer),
        ):
            if not isinstance(value, str):
                raise ValidationError(f"{where}.{field}", "must be a string")
        return cls(
            kind=kind,
            id=id_,
            namespace=namespace,
            spiffe_id=spiffe_id,
            revoked_at=_from_epoch(revoked, f"{where}.revokedAt"),
            expires_at=_from_epoch(expires, f"{where}.expiresAt"),
            reason=reason,
            key_fingerprint=fingerprint or None,
            signer=signer or None,
            upstream_pending=pending == 1,
        )


def revocation_order(entry: Revocation) -> tuple[dt.datetime, str]:
    return (entry.revoked_at, entry.id)


@dataclass(frozen=True)
class RevocationList:
    """An immutable set of revocations keyed by (kind, id, namespace), in revocation order."""

    entries: tuple[Revocation, ...] = ()

    @classmethod
    def of(cls, items: Iterable[Revocation]) -> RevocationList:
        """``items`` in revocation order, the first record of each credential kept."""
        unique: dict[Key, Revocation] = {}
        for item in items:
            unique.setdefault(item.key, item)
        return cls(tuple(sorted(unique.values(), key=revocation_order)))

    def __len__(self) -> int:
        return len(self.entries)

    def pending_upstream(self) -> tuple[Revocation, ...]:
        return tuple(e for e in self.entries if e.upstream_pending)

    def revoked(self, kinds: Sequence[str]) -> frozenset[tuple[str, str]]:
        """(id, namespace) of every entry of ``kinds``: a credential is revoked when its id is
        listed for the namespace its SPIFFE ID names."""
        return frozenset((e.id, e.namespace) for e in self.entries if e.kind in kinds)

    @cached_property
    def by_namespace(self) -> Mapping[str, tuple[Revocation, ...]]:
        grouped: dict[str, list[Revocation]] = defaultdict(list)
        for entry in self.entries:
            grouped[entry.namespace].append(entry)
        return {namespace: tuple(items) for namespace, items in grouped.items()}

    def published_json(self, namespace: str, max_bytes: int = PUBLISHED_MAX_BYTES) -> bytes:
        """What verifiers in ``namespace`` read: the ids revoked there and when each expires
        (nothing of other namespaces, no reasons), compact and key-sorted.

        Beyond ``max_bytes`` (a namespace with some 18,000 unexpired revocations) the earliest
        revoked are left out and ``"truncated": true`` says so: the ConfigMap must still fit,
        so that bundle and key changes keep reaching the namespace, and a verifier that sees
        the flag asks introspection, which always has the whole list.
        """
        entries = [e for e in self.by_namespace.get(namespace, ()) if e.kind in PUBLISHED_KINDS]
        size, keep = 0, len(entries)
        for index in range(len(entries) - 1, -1, -1):  # latest revoked first
            size += len(entries[index].id) + _PUBLISHED_ENTRY_OVERHEAD
            if size > max_bytes:
                keep = len(entries) - 1 - index
                break
        expires: dict[str, dict[str, int]] = {kind: {} for kind in PUBLISHED_KINDS}
        for entry in entries[len(entries) - keep :]:
            expires[entry.kind][entry.id] = _epoch(entry.expires_at)
        doc: dict[str, Any] = {
            "version": PUBLISHED_VERSION,
            "namespace": namespace,
            "expires": expires,
        }
        if keep < len(entries):
            doc["truncated"] = True
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def shard_json(entries: Iterable[Revocation]) -> bytes:
    """One durable shard: ``{"format": 2, "entries": [row, ...]}``."""
    rows = ",".join(e.row_text for e in entries)
    return f'{{"format":{SHARD_FORMAT},"entries":[{rows}]}}'.encode()


def parse_shard(data: bytes) -> list[Revocation]:
    doc = _load(data)
    if doc.get("format") != SHARD_FORMAT or not isinstance(doc.get("entries"), list):
        raise ValidationError("revocations", f"not a revocation shard of format {SHARD_FORMAT}")
    return [Revocation.from_row(row, f"entries[{i}]") for i, row in enumerate(doc["entries"])]


def parse_legacy(data: bytes) -> list[Revocation]:
    """The first release's single list (``{"revocations": [{...}]}``). Its entries name no
    namespace; each takes the one its SPIFFE ID names, and one whose ID names none is dropped
    (it can match no credential wio issued)."""
    doc = _load(data)
    items = doc.get("revocations", [])
    if not isinstance(items, list):
        raise ValidationError("revocations", "must be a list")
    found = []
    for i, item in enumerate(items):
        where = f"revocations[{i}]"
        if not isinstance(item, dict):
            raise ValidationError(where, "each entry must be an object")
        namespace = namespace_of(item.get("spiffeID"))
        revoked = parse_rfc3339(item.get("revokedAt"))
        expires = parse_rfc3339(item.get("expiresAt"))
        if namespace is None or revoked is None or expires is None:
            continue
        found.append(
            Revocation(
                kind=str(item.get("kind", "")),
                id=str(item.get("id", "")),
                namespace=namespace,
                spiffe_id=str(item.get("spiffeID", "")),
                revoked_at=revoked,
                expires_at=expires,
                reason=str(item.get("reason", "")),
                key_fingerprint=item.get("keyFingerprint") or None,
                upstream_pending=bool(item.get("upstreamPending", False)),
                signer=str(item["signer"]) if item.get("signer") else None,
            )
        )
    return found


def _load(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data or b"{}")
    except ValueError as err:
        raise ValidationError("revocations", "not valid JSON") from err
    if not isinstance(doc, dict):
        raise ValidationError("revocations", "must be a JSON object")
    return doc
