# SPDX-License-Identifier: Apache-2.0
"""The audit stream's records: one JSON object per event, hash-chained, and their check.

Schema (version 1), one object per line, keys in this order of meaning:

- ``schema`` (1), ``seq`` (0, 1, 2, … per replica process), ``prev`` (the ``hash`` of the
  record before, null for ``seq`` 0), ``hash`` (SHA-256, hex, of the record's canonical JSON
  without ``hash``: sorted keys, no spaces, UTF-8);
- ``replica`` (the replica's Lease identity), ``time`` (RFC 3339, UTC, microseconds);
- ``action``: ``start``, ``issue``, ``rotate``, ``forced-rotation``, ``deny``, ``revoke``,
  ``rollover``, ``distrust``, ``introspect``;
- ``outcome``: ``success``, ``failure``, ``denied``; for ``introspect`` the answer
  (``active``, ``inactive_expired``, ``inactive_revoked``, ``inactive_invalid``,
  ``unauthenticated``, ``rate_limited``, ``bad_request``);
- ``actor``: who caused it, where known (the field manager that last changed the object's
  spec, the introspection caller's SPIFFE ID, ``unauthenticated <address>``), else null. A
  field manager is a name the client chose, not an authenticated user: informative only,
  never used for a decision (the API server's audit log has the user);
- ``subject`` (the SPIFFE ID concerned), ``kind``, ``namespace``, ``name``;
- ``credentials``: the IDs concerned (certificate serials, token ``jti``s, Vault lease IDs),
  never a credential itself; ``reason``: why (a reissue reason, a denial's message).

Each record carries the hash of the one before, so deleting, inserting, reordering or
editing a record breaks the chain at that point; ``verify_chain`` says where. A replica's
chain starts at ``seq`` 0 when its process starts; a new start in the middle of a stream
begins a new segment (reported, not an error). A chain shows that what is there is intact;
records lost after the last one shipped can only be caught by shipping promptly to storage
that cannot be rewritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA = 1
ACTIONS = frozenset(
    {
        "start",
        "issue",
        "rotate",
        "forced-rotation",
        "deny",
        "revoke",
        "rollover",
        "distrust",
        "introspect",
    }
)


@dataclass(frozen=True)
class AuditEvent:
    """What happened, before it is numbered and chained."""

    action: str
    outcome: str
    actor: str | None = None
    subject: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    credentials: Sequence[str] = ()
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown audit action {self.action!r}")


def digest(record: Mapping[str, Any]) -> str:
    """The hash of ``record`` (its ``hash`` key left out)."""
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def chained(
    event: AuditEvent, *, seq: int, prev: str | None, replica: str, now: dt.datetime
) -> dict[str, Any]:
    """``event`` as record number ``seq`` of ``replica``'s chain, after the record ``prev``."""
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "seq": seq,
        "prev": prev,
        "replica": replica,
        "time": now.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "action": event.action,
        "outcome": event.outcome,
        "actor": event.actor,
        "subject": event.subject,
        "kind": event.kind,
        "namespace": event.namespace,
        "name": event.name,
        "credentials": list(event.credentials),
        "reason": event.reason,
    }
    record["hash"] = digest(record)
    return record


@dataclass
class ChainReport:
    """What ``verify_chain`` found: every record intact, or the first line that is not."""

    records: int = 0
    #: Replica process starts seen (each begins a chain at seq 0).
    segments: int = 0
    replicas: set[str] = field(default_factory=set)
    problem: str | None = None
    line: int | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None and self.records > 0


def verify_chain(lines: Iterable[str], *, partial: bool = False) -> ChainReport:
    """Check every audit record among ``lines`` (other log lines are skipped).

    Records of several replicas may be interleaved (a merged log): each replica's chain is
    followed on its own. ``partial``: the lines are a slice of a longer stream (one day's
    file, say), so each replica's first record is taken as it is, without its predecessor.
    """
    report = ChainReport()
    last: dict[str, tuple[int, str]] = {}  # replica -> (seq, hash) of its latest record
    for number, line in enumerate(lines, start=1):
        record = _record(line)
        if record is None:
            continue
        report.records += 1
        problem = _check(record, last, partial=partial)
        if problem is not None:
            report.problem, report.line = problem, number
            return report
        replica = str(record["replica"])
        if record["seq"] == 0:
            report.segments += 1
        report.replicas.add(replica)
        last[replica] = (int(record["seq"]), str(record["hash"]))
    if report.records == 0:
        report.problem = "no audit records found"
    return report


def _record(line: str) -> dict[str, Any] | None:
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or "schema" not in record or "hash" not in record:
        return None
    return record


def _check(
    record: Mapping[str, Any], last: Mapping[str, tuple[int, str]], *, partial: bool
) -> str | None:
    """Why ``record`` breaks its chain, or None."""
    if record.get("schema") != SCHEMA:
        return f"unknown schema {record.get('schema')!r}"
    seq, replica = record.get("seq"), record.get("replica")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(replica, str):
        return "malformed record (seq or replica)"
    if record.get("hash") != digest(record):
        return f"record {replica}#{seq} was altered (its hash does not match its content)"
    if seq == 0:
        if record.get("prev") is not None:
            return f"record {replica}#0 claims a predecessor"
        return None
    before = last.get(replica)
    if before is None:
        return None if partial else f"record {replica}#{seq}: the records before it are missing"
    if seq != before[0] + 1:
        return f"record {replica}#{seq} follows #{before[0]}: records are missing or reordered"
    if record.get("prev") != before[1]:
        return f"record {replica}#{seq} does not follow the record before it"
    return None
