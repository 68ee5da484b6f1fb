# SPDX-License-Identifier: Apache-2.0
"""Status conditions and the one status writer every kind uses.

``merge_conditions`` is pure: a condition's transition time moves only when its status does.
``write_status`` sends one merge patch on the status subresource (conditions merged, the
observed generation set) and updates the view from the answer, so the next decision sees what
was written without reading it back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wio.clock import rfc3339
from wio.errors import ApiNotFound
from wio.k8s.client import KubeClient, custom_path
from wio.service.views import ObjectKey, ObjectView

CONDITION_ORDER = ("Ready", "Issuing", "SignerAvailable", "PolicyDenied")


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
    return sorted(
        by_type.values(),
        key=lambda c: (
            CONDITION_ORDER.index(c["type"]) if c["type"] in CONDITION_ORDER else 99,
            c["type"],
        ),
    )


def condition(status: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    for cond in (status or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return None


async def write_status(
    kube: KubeClient,
    plural: str,
    view: ObjectView,
    views: Mapping[ObjectKey, ObjectView],
    now: dt.datetime,
    fields: Mapping[str, Any],
    conditions: Sequence[Condition],
) -> None:
    """One merge patch of ``status``; a field set to None is removed. Updates ``view``."""
    status = {**fields, "observedGeneration": view.generation}
    status["conditions"] = merge_conditions(
        view.status.get("conditions"), conditions, generation=view.generation, now=now
    )
    try:
        answer = await kube.merge_patch(
            custom_path(plural, view.key.namespace, view.key.name, "status"), {"status": status}
        )
    except ApiNotFound:
        return  # deleted meanwhile; the finalizer takes over
    merged = {**view.status, **status}
    view.status = {k: v for k, v in merged.items() if v is not None}
    view.written_version = (answer.get("metadata") or {}).get("resourceVersion")
    current = views.get(view.key)
    if current is not None and current is not view and current.uid == view.uid:
        # A watch event replaced the view while we worked; it predates this write.
        current.status = view.status
        current.written_version = view.written_version
