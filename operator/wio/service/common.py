# SPDX-License-Identifier: Apache-2.0
"""What the WorkloadIdentity and ScopedCredential services share: views fed by watch events,
status writes, failure backoff.

Both keep a compact view per object (``wio.service.views.IdentityView``), act on it from one
work queue, and write their status with one merge patch on the status subresource. The rules
for doing that safely live here once:

- ``accept_event``: an event older than our own last status write must not roll the status
  we know back; ``wants_work`` says whether an event changed anything we act on (our own
  status writes come back as events and must not queue work).
- ``write_status``: conditions merged (transition times move only on change), the observed
  generation set, the view updated from the answer so the next decision sees what we wrote.
- ``backoff``: exponential with full jitter, capped below a tenth of what validity is left,
  never shorter than a ``Retry-After``.
- ``failure``: what a failed issuance means for the object: when to try again, the
  conditions (Ready stays True while the old credential is valid) and whether to tell
  anyone (an Event only when the error changes).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wio.clock import rfc3339
from wio.errors import ApiNotFound, SignerRejected, SignerUnavailable, WioError
from wio.k8s.client import KubeClient, custom_path
from wio.service.bodies import Condition, merge_conditions
from wio.service.views import IdentityView, ObjectKey

# Backoff after a failed issuance: base and ceiling; the ceiling also stays below a tenth of
# whatever validity the current credential has left.
BACKOFF_BASE = dt.timedelta(seconds=2)
BACKOFF_MAX = dt.timedelta(minutes=5)
# A permanent failure (signer refuses, invalid object) is looked at again this often, in case
# an admin fixed the signer; spec changes retry at once.
PERMANENT_RETRY = dt.timedelta(minutes=10)
# Upstream revocation (Vault PKI, lease revoke) must never hang a namespace deletion.
UPSTREAM_REVOKE_TIMEOUT = 5.0


@dataclass
class Attempts:
    """Consecutive failures of one object, and the last error (an Event per new error only)."""

    failures: int = 0
    last_reason: str = ""


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


def accept_event(previous: IdentityView | None, view: IdentityView) -> None:
    """Keep the status we wrote when ``view`` comes from an event that predates our write."""
    if previous is not None and older(view.resource_version, previous.written_version):
        view.status = previous.status
        view.written_version = previous.written_version


def wants_work(previous: IdentityView | None, view: IdentityView) -> bool:
    """Did this event change what reconciliation acts on (not merely our own status)?"""
    if view.deleting:
        return False
    return (
        previous is None
        or previous.generation != view.generation
        or previous.forced_request != view.forced_request
        or previous.uid != view.uid
        or previous.guarded != view.guarded
    )


async def write_status(
    kube: KubeClient,
    plural: str,
    view: IdentityView,
    views: Mapping[ObjectKey, IdentityView],
    now: dt.datetime,
    fields: Mapping[str, Any],
    conditions: list[Condition],
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


def backoff(
    failures: int,
    not_after: dt.datetime | None,
    now: dt.datetime,
    rng: random.Random,
    retry_after: float | None,
) -> dt.timedelta:
    """How long to wait after the ``failures``-th consecutive failure (see module docstring)."""
    delay: dt.timedelta = min(BACKOFF_BASE * (2 ** min(failures - 1, 20)), BACKOFF_MAX)
    delay = delay * (0.5 + rng.random())  # full spread: a fleet does not retry in lockstep
    if not_after is not None and not_after > now:
        delay = min(delay, (not_after - now) / 10)
    if retry_after is not None:
        delay = max(delay, dt.timedelta(seconds=retry_after))
    return max(delay, dt.timedelta(seconds=1))


@dataclass(frozen=True)
class Failure:
    """How one failed issuance is reported and retried."""

    retry_at: dt.datetime
    message: str
    conditions: list[Condition]
    signer_problem: bool
    event_reason: str | None  # None: the same error as last time, already told


def failure(
    err: WioError,
    attempts: Attempts,
    valid_until: dt.datetime | None,
    now: dt.datetime,
    rng: random.Random,
    *,
    retryable: bool,
) -> Failure:
    """Count the attempt and decide the retry time, conditions and Event of a failure."""
    attempts.failures += 1
    signer_problem = isinstance(err, SignerUnavailable | SignerRejected)
    if retryable:
        delay = backoff(attempts.failures, valid_until, now, rng, getattr(err, "retry_after", None))
    else:
        delay = PERMANENT_RETRY
    message = f"{err} (attempt {attempts.failures}; next try in {int(delay.total_seconds())}s)"
    conditions = [Condition("Issuing", False, "Failed", message)]
    if signer_problem:
        conditions.append(Condition("SignerAvailable", False, type(err).__name__, str(err)))
    if valid_until is not None and now < valid_until:
        valid = f"current credential valid until {rfc3339(valid_until)}"
        conditions.append(Condition("Ready", True, "Valid", valid))
    else:
        reason = "Expired" if valid_until else "NotIssued"
        conditions.append(Condition("Ready", False, reason, message))
    event_reason = None
    if attempts.last_reason != str(err):
        attempts.last_reason = str(err)
        event_reason = "SignerError" if signer_problem else "IssueFailed"
    return Failure(now + delay, message, conditions, signer_problem, event_reason)
