# SPDX-License-Identifier: Apache-2.0
"""The revocation list: what was revoked, when, why, and until when verifiers must care.

An entry is kept until the credential it names would have expired anyway; after that the
credential is rejected for being expired, and the entry only costs space. The JSON form is
what wio publishes next to the trust bundle (``revocations.json``), so it is stable and
documented in the README.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from wio.clock import parse_rfc3339, rfc3339
from wio.errors import ValidationError

KINDS = ("x509", "jwt", "token", "lease")


def _parse_time(value: object, field: str) -> dt.datetime:
    parsed = parse_rfc3339(value)
    if parsed is None:
        raise ValidationError(field, "must be an RFC 3339 time")
    return parsed


@dataclass(frozen=True)
class Revocation:
    """One revoked credential. ``id`` is a serial (hex), a ``jti`` or a lease ID, per ``kind``."""

    kind: str
    id: str
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
        if not self.id:
            raise ValidationError("id", "must not be empty")

    @cached_property
    def json_text(self) -> str:
        """``to_json`` as compact, key-sorted JSON, made once: the list is re-serialised on
        every change, and most of its entries never change."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": self.kind,
            "id": self.id,
            "spiffeID": self.spiffe_id,
            "revokedAt": rfc3339(self.revoked_at),
            "expiresAt": rfc3339(self.expires_at),
            "reason": self.reason,
        }
        if self.key_fingerprint:
            doc["keyFingerprint"] = self.key_fingerprint
        if self.upstream_pending:
            doc["upstreamPending"] = True
        if self.signer:
            doc["signer"] = self.signer
        return doc

    @classmethod
    def from_json(cls, doc: Any, where: str = "revocations") -> Revocation:
        if not isinstance(doc, dict):
            raise ValidationError(where, "each entry must be an object")
        return cls(
            kind=str(doc.get("kind", "")),
            id=str(doc.get("id", "")),
            spiffe_id=str(doc.get("spiffeID", "")),
            revoked_at=_parse_time(doc.get("revokedAt"), f"{where}.revokedAt"),
            expires_at=_parse_time(doc.get("expiresAt"), f"{where}.expiresAt"),
            reason=str(doc.get("reason", "")),
            key_fingerprint=doc.get("keyFingerprint") or None,
            upstream_pending=bool(doc.get("upstreamPending", False)),
            signer=str(doc["signer"]) if doc.get("signer") else None,
        )


def _order(entry: Revocation) -> tuple[dt.datetime, str]:
    return (entry.revoked_at, entry.id)


@dataclass(frozen=True)
class RevocationList:
    """An immutable set of revocations keyed by (kind, id)."""

    entries: tuple[Revocation, ...] = ()

    @cached_property
    def _keys(self) -> frozenset[tuple[str, str]]:
        return frozenset((e.kind, e.id) for e in self.entries)

    def add(self, items: Iterable[Revocation]) -> RevocationList:
        keys = self._keys
        new: dict[tuple[str, str], Revocation] = {}
        for item in items:
            if (item.kind, item.id) not in keys:
                new.setdefault((item.kind, item.id), item)
        if not new:
            return self
        entries = list(self.entries)
        for item in sorted(new.values(), key=_order):
            bisect.insort(entries, item, key=_order)  # the usual case: at the end
        merged = RevocationList(tuple(entries))
        merged.__dict__["_keys"] = keys | new.keys()
        return merged

    def prune(self, now: dt.datetime) -> RevocationList:
        """Drop entries whose credential has expired and needs no more upstream work."""
        kept = tuple(e for e in self.entries if e.expires_at > now or e.upstream_pending)
        return self if len(kept) == len(self.entries) else RevocationList(kept)

    def mark_upstream_done(self, kind: str, id_: str) -> RevocationList:
        return RevocationList(
            tuple(
                replace(e, upstream_pending=False) if (e.kind, e.id) == (kind, id_) else e
                for e in self.entries
            )
        )

    def ids(self, kind: str) -> frozenset[str]:
        return frozenset(e.id for e in self.entries if e.kind == kind)

    def pending_upstream(self) -> tuple[Revocation, ...]:
        return tuple(e for e in self.entries if e.upstream_pending)

    def to_json_bytes(self) -> bytes:
        """``{"revocations": [...]}``, compact and key-sorted (entries reuse their JSON)."""
        return ('{"revocations":[' + ",".join(e.json_text for e in self.entries) + "]}").encode()

    @classmethod
    def from_json_bytes(cls, data: bytes) -> RevocationList:
        try:
            doc = json.loads(data or b"{}")
        except ValueError as err:
            raise ValidationError("revocations", "not valid JSON") from err
        items = doc.get("revocations", []) if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise ValidationError("revocations", "must be a list")
        return cls().add(Revocation.from_json(d, f"revocations[{i}]") for i, d in enumerate(items))
