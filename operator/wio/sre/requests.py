# SPDX-License-Identifier: Apache-2.0
"""``wio renew`` and ``wio revoke``: the rotate and revoke annotations, and their acknowledgement.

Both are requests the operator already understands (README "Rotation" and "Revocation: how to
revoke"): a new value of ``identity.wio.dev/rotate`` forces a rotation and is echoed in
``status.lastForcedRotation``; a new value of ``identity.wio.dev/revoke`` (the reason) lists
every live generation as revoked, issues afresh and is echoed in ``status.lastRevocation``.
Each value is one request, so every value made here is new: a timestamp with a random suffix
for a rotation, the reason with the time for a revocation. The CLI writes only the annotation;
the operator does the work, and waiting reads the object until status echoes the value.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wio.clock import Clock, rfc3339
from wio.errors import ValidationError
from wio.names import REVOKE_ANNOTATION, ROTATE_ANNOTATION, WORKLOAD_IDENTITY
from wio.sre.objects import Found, Kube, condition

#: status.lastRevocation holds at most 256 characters; the time takes 23 of them.
MAX_REASON = 200
_PRINTABLE = re.compile(r"[\x20-\x7e]+")
POLL_INTERVAL = 0.5  # seconds between reads while waiting; an acknowledgement takes ~1 s


@dataclass(frozen=True)
class Request:
    """One annotation value and the status field the operator echoes it in."""

    verb: str  # renew | revoke
    annotation: str
    ack_field: str
    value: str


def rotation_request(now: dt.datetime, suffix: str | None = None) -> Request:
    """A forced rotation, unique by its time and a random suffix (as ``wio rollover`` makes)."""
    value = f"{rfc3339(now)}-{suffix or secrets.token_hex(3)}"
    return Request("renew", ROTATE_ANNOTATION, "lastForcedRotation", value)


def revocation_request(reason: str, now: dt.datetime) -> Request:
    """A revocation whose value is the reason and the time: the reason is what Events and
    status show, and the time makes a repeated reason a new request, not a no-op."""
    reason = reason.strip()
    if not _PRINTABLE.fullmatch(reason) or len(reason) > MAX_REASON:
        raise ValidationError("--reason", f"must be 1-{MAX_REASON} printable ASCII characters")
    return Request("revoke", REVOKE_ANNOTATION, "lastRevocation", f"{reason} @ {rfc3339(now)}")


def current_ids(found: Found) -> dict[str, str]:
    """The IDs (never the material) of the credential status records as current."""
    status = found.status
    fields = (
        {"x509": "serialNumber", "jwt": "jwtID"}
        if found.kind == WORKLOAD_IDENTITY
        else {"token": "jti", "lease": "leaseID"}
    )
    return {kind: str(status[f]) for kind, f in fields.items() if status.get(f)}


def live_ids(found: Found) -> list[str]:
    """``kind id`` of every generation a revocation lists: the current credential and the
    earlier ones in ``status.retiredCredentials`` (ARCHITECTURE.md §3, generations)."""
    ids = [f"{kind} {id_}" for kind, id_ in current_ids(found).items()]
    for retired in found.status.get("retiredCredentials") or []:
        if isinstance(retired, Mapping) and retired.get("id"):
            ids.append(f"{retired.get('kind')} {retired['id']}")
    return ids


@dataclass(frozen=True)
class Outcome:
    """What became of a request: ``before`` is the object as found, ``latest`` as last read;
    ``acknowledged`` when status echoes the request, and then ``latest`` holds the new IDs."""

    before: Found
    request: Request
    waited: bool
    latest: Found
    acknowledged: bool

    def conditions(self) -> str:
        """Ready and Issuing as ``type=status reason: message``, for a request still waiting."""
        status = self.latest.status
        parts = []
        for kind in ("Ready", "Issuing"):
            cond = condition(status, kind)
            if cond is not None:
                parts.append(
                    f"{kind}={cond.get('status')} {cond.get('reason')}: {cond.get('message')}"
                )
        return "; ".join(parts) or "no conditions yet"

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "kind": self.before.kind,
            "name": str(self.before.ref),
            "request": self.request.value,
            "annotation": self.request.annotation,
            "acknowledged": self.acknowledged,
            "before": current_ids(self.before),
            "after": current_ids(self.latest) if self.acknowledged else None,
        }
        if self.request.verb == "revoke":
            record["revoked"] = live_ids(self.before)
        if not self.acknowledged:
            record["conditions"] = self.conditions()
        return record


async def submit(
    kube: Kube,
    found: Found,
    request: Request,
    *,
    clock: Clock,
    wait: float | None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Outcome:
    """Set the annotation (one merge patch, nothing else), then read the object until status
    echoes the value or ``wait`` seconds have passed (``None``: do not wait)."""
    patch = {"metadata": {"annotations": {request.annotation: request.value}}}
    body = await kube.merge_patch(found.path, patch)
    latest = Found(found.kind, found.plural, found.ref, body)
    if wait is None:
        return Outcome(found, request, False, latest, False)
    deadline = clock.now() + dt.timedelta(seconds=wait)
    while True:
        if latest.status.get(request.ack_field) == request.value:
            return Outcome(found, request, True, latest, True)
        if clock.now() >= deadline:
            # The annotation stays: the operator still honours it when it can.
            return Outcome(found, request, True, latest, False)
        await sleep(POLL_INTERVAL)
        latest = Found(found.kind, found.plural, found.ref, await kube.get(found.path))
