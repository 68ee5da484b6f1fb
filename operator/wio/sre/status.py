# SPDX-License-Identifier: Apache-2.0
"""``wio status``: one row per credential wio manages, its health, and the order to show it in.

Gather, then decide: ``rows_of`` turns an object's status into rows (a WorkloadIdentity gives
an ``x509-svid`` row, and a ``jwt-svid`` row when it has a JWT-SVID; a ScopedCredential a
``token`` or ``vault`` row), and ``health`` runs an ordered chain of named checks over a row
and ``now``. Both are pure; ``collect`` is the only part that reads the API.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wio.clock import parse_rfc3339, rfc3339
from wio.k8s.client import custom_path
from wio.names import SCOPED_CREDENTIALS, WORKLOAD_IDENTITIES
from wio.sre.objects import Kube, condition
from wio.sre.render import relative

#: How long after its renewal time a credential may still be waiting before it is reported
#: as overdue: the operator picks a due credential up within seconds, but a burst queues
#: behind the issuance rate limit for a little while, which is not yet a problem.
OVERDUE_GRACE = dt.timedelta(seconds=60)

SORT_KEYS = ("expiry", "name", "namespace", "renewal")


@dataclass(frozen=True)
class CredentialRow:
    """One credential as its object's status describes it (no Secret is read)."""

    kind: str  # x509-svid | jwt-svid | token | vault
    namespace: str
    name: str
    spiffe_id: str | None
    ready: str  # the Ready condition's status: True, False or Unknown
    ready_reason: str
    ready_message: str
    expires_at: dt.datetime | None
    renew_at: dt.datetime | None
    secret_name: str | None
    # The Issuing condition's message when the last attempt failed: why a renewal is late.
    issuing_failure: str | None = None


@dataclass(frozen=True)
class Health:
    """``OK`` or the first problem found: a reason (``OK``, ``Expired``, ``NotReady``,
    ``RenewalOverdue``), for ``NotReady`` the Ready condition's reason, and a message."""

    reason: str
    detail: str = ""
    message: str = ""

    def __str__(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


def rows_of(plural: str, body: Mapping[str, Any]) -> list[CredentialRow]:
    """The credentials one WorkloadIdentity or ScopedCredential body describes."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    ready = condition(status, "Ready") or {}
    issuing = condition(status, "Issuing") or {}
    failure = (
        str(issuing.get("message") or "")
        if issuing.get("status") == "False" and issuing.get("reason") == "Failed"
        else None
    )

    def row(kind: str, expires: str, renew: str) -> CredentialRow:
        return CredentialRow(
            kind=kind,
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            spiffe_id=status.get("spiffeID") or None,
            ready=str(ready.get("status") or "Unknown"),
            ready_reason=str(ready.get("reason") or "NoStatus"),
            ready_message=str(ready.get("message") or ""),
            expires_at=parse_rfc3339(status.get(expires)),
            renew_at=parse_rfc3339(status.get(renew)),
            secret_name=status.get("secretName") or None,
            issuing_failure=failure,
        )

    if plural == WORKLOAD_IDENTITIES:
        rows = [row("x509-svid", "notAfter", "renewalTime")]
        if spec.get("jwt") or status.get("jwtExpiresAt"):
            rows.append(row("jwt-svid", "jwtExpiresAt", "jwtRenewalTime"))
        return rows
    return [row("vault" if spec.get("vault") else "token", "expiresAt", "renewalTime")]


# --- health: an ordered chain, the first check that finds something wins -------------------

Check = Callable[[CredentialRow, dt.datetime], Health | None]


def expired(row: CredentialRow, now: dt.datetime) -> Health | None:
    if row.expires_at is not None and row.expires_at <= now:
        return Health("Expired", message=f"expired {relative(row.expires_at, now)}")
    return None


def not_ready(row: CredentialRow, now: dt.datetime) -> Health | None:
    if row.ready != "True":
        return Health("NotReady", row.ready_reason, row.ready_message)
    return None


def renewal_overdue(row: CredentialRow, now: dt.datetime) -> Health | None:
    if row.renew_at is not None and now > row.renew_at + OVERDUE_GRACE:
        message = f"renewal was due {relative(row.renew_at, now)}"
        if row.issuing_failure:
            message += f"; last attempt failed: {row.issuing_failure}"
        return Health("RenewalOverdue", message=message)
    return None


#: Expired first (the most urgent, and an expired credential is usually not Ready either),
#: then not Ready (nothing usable or a refusal), then a renewal that is late.
HEALTH_CHECKS: tuple[Check, ...] = (expired, not_ready, renewal_overdue)


def health(row: CredentialRow, now: dt.datetime) -> Health:
    for check in HEALTH_CHECKS:
        found = check(row, now)
        if found is not None:
            return found
    return Health("OK")


# --- order ----------------------------------------------------------------------------------

_NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)


def _identity(row: CredentialRow) -> tuple[str, str, str]:
    return (row.namespace, row.name, row.kind)


def sort_rows(rows: Iterable[CredentialRow], by: str) -> list[CredentialRow]:
    """Rows in ``by`` order (a ``SORT_KEYS`` member); times soonest first, unknown times last."""
    keys: Mapping[str, Callable[[CredentialRow], tuple[Any, ...]]] = {
        "expiry": lambda r: (r.expires_at or _NEVER, *_identity(r)),
        "renewal": lambda r: (r.renew_at or _NEVER, *_identity(r)),
        "namespace": _identity,
        "name": lambda r: (r.name, r.namespace, r.kind),
    }
    return sorted(rows, key=keys[by])


def to_record(row: CredentialRow, now: dt.datetime) -> dict[str, Any]:
    """A row for ``-o json|yaml``: RFC 3339 times, the health reason and message."""
    found = health(row, now)
    return {
        "kind": row.kind,
        "namespace": row.namespace,
        "name": row.name,
        "spiffeID": row.spiffe_id,
        "ready": row.ready,
        "readyReason": row.ready_reason,
        "expiresAt": rfc3339(row.expires_at) if row.expires_at else None,
        "renewAt": rfc3339(row.renew_at) if row.renew_at else None,
        "health": found.reason,
        "healthMessage": found.message,
        "secretName": row.secret_name,
    }


TABLE_HEADERS = ("KIND", "NAMESPACE", "NAME", "SPIFFE ID", "READY", "EXPIRES", "RENEW AT", "HEALTH")


def to_cells(row: CredentialRow, now: dt.datetime) -> tuple[str, ...]:
    """A row for the table: times relative to ``now`` as well as absolute."""

    def when(value: dt.datetime | None) -> str:
        return f"{rfc3339(value)} ({relative(value, now)})" if value else "-"

    return (
        row.kind,
        row.namespace,
        row.name,
        row.spiffe_id or "-",
        row.ready,
        when(row.expires_at),
        when(row.renew_at),
        str(health(row, now)),
    )


async def collect(kube: Kube, namespace: str | None) -> list[CredentialRow]:
    """Every credential in ``namespace`` (all namespaces when None), read from the objects'
    status: a LIST of each kind, which needs only ``list`` on the two resources."""
    rows: list[CredentialRow] = []
    for plural in (WORKLOAD_IDENTITIES, SCOPED_CREDENTIALS):
        for body in await kube.list(custom_path(plural, namespace)):
            rows.extend(rows_of(plural, body))
    return rows
