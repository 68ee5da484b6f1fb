# SPDX-License-Identifier: Apache-2.0
"""One credential lifecycle for every kind: the controller core.

Watches feed ``observe`` and ``observe_secret``; every change of what reconciliation acts on
queues the object's key on the controller's work queue, and its due-time scheduler queues it
again when a stored renewal time arrives. A worker then, holding the object's lock:

1. **parse** the spec (an invalid one blocks with ``InvalidSpec``);
2. **gate**: what the kind needs before policy (a ScopedCredential's identity must be Ready);
3. **policy**: IdentityPolicy evaluation (a denial mints nothing);
4. a Secret name that another wio object's credential already holds blocks with
   ``SecretConflict``: two owners would overwrite each other forever;
5. **gather** the state the reissue chain reads (status, the Secret's facts, the signers'
   published keys) and run the kind's **chain**: no reason **settles** (status says Ready, wake
   at the next due time); a reason **acts** (issue, adopt, refresh, renew) under the issuance
   rate limit; a failure backs off and says why in the conditions.

Repairs of a Secret someone else keeps changing are counted: past ten an hour wio stops and
names the other writer (``ConflictingWriter``) instead of fighting it.

``finalize`` (the finalizer) takes the same per-object lock, so an issuance still in flight
completes first and its credential is revoked with the rest: dependents, then the Secret is
deleted, then upstream revocation, then the revocation list is stored, then an Event, an
audit line and a metric; only then does the finalizer let go.

A kind supplies only what differs (``wio.service.kind.KindHooks``): its names, how it parses
and gates, its chain, what it issues, what its Secret holds (its codec) and what it revokes.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from wio.clock import rfc3339
from wio.errors import (
    NameTaken,
    PermanentError,
    RetryableError,
    ValidationError,
    WioError,
)
from wio.k8s.client import custom_path, list_watched, secret_path
from wio.metrics import CredentialTiming
from wio.models.audit import AuditEvent
from wio.names import MANAGED_BY, MANAGER
from wio.policy.checks import FORCED_ROTATION, REVOKE_REQUESTED
from wio.policy.reconcile import DRIFT_REASONS, DRIFT_WINDOW, drift_repairs_exhausted
from wio.policy.rotation import ReissueReason, renewal_time
from wio.service import readiness
from wio.service.failures import Attempts, failure
from wio.service.kind import (
    Blocked,
    Collaborators,
    FactsT,
    SpecT,
    StateT,
    SubjectT,
    retired_credentials,
    retired_status,
)
from wio.service.readiness import Readiness
from wio.service.revoking import Revoking
from wio.service.status import Condition, condition, write_status
from wio.service.views import (
    ObjectKey,
    ObjectView,
    SecretIndex,
    SecretRecord,
    accept_event,
    last_foreign_writer,
    older,
    wants_work,
)
from wio.service.workqueue import DueScheduler, KeyedLocks, WorkQueue

log = logging.getLogger(__name__)
#: The status fields that name an issued credential (serial, token IDs, Vault lease).
_IDS = ("serialNumber", "jwtID", "jti", "leaseID")

#: How often an object whose Secret name another wio object holds looks again: nothing tells
#: it when the other lets go of the name.
CONFLICT_RETRY = dt.timedelta(minutes=1)


class CredentialController(Revoking[SpecT, SubjectT, StateT, FactsT]):
    """The lifecycle every kind shares (see the module docstring); subclasses fill the gaps."""

    kind: ClassVar[str]
    plural: ClassVar[str]
    owner_label: ClassVar[str]
    readiness: ClassVar[Readiness]
    #: The status fields that describe an issued credential, cleared once it is revoked.
    credential_fields: ClassVar[tuple[str, ...]]
    #: Whether start-up lists this kind's Secrets by metadata only (their content is judged
    #: when the watch delivers it right after) or in full.
    list_secret_metadata: ClassVar[bool] = False

    def __init__(
        self,
        parts: Collaborators,
        views: dict[ObjectKey, ObjectView],
        secrets: SecretIndex[FactsT],
    ) -> None:
        self.parts = parts
        self.config = parts.config
        self.kube = parts.kube
        self.signers = parts.signers
        self.events = parts.events
        self.metrics = parts.metrics
        self.clock = parts.clock
        self.cache = parts.cache
        self.views = views
        self.secrets = secrets
        self.queue: WorkQueue[ObjectKey] = WorkQueue(
            self.reconcile, workers=self.config.max_inflight_writes
        )
        self.scheduler: DueScheduler[ObjectKey] = DueScheduler(self.queue.add, self.clock)
        self.locks: KeyedLocks[ObjectKey] = KeyedLocks()
        self._attempts: dict[ObjectKey, Attempts] = {}
        self._drift_repairs: dict[ObjectKey, list[dt.datetime]] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Seed the Secret index and the views with one LIST each, then start working.

        Listing Secrets before the first decision matters: without it a restart would see
        every Secret as missing and re-mint valid credentials.
        """
        for body in await list_watched(
            self.kube,
            self.config.watch_namespaces,
            secret_path,
            f"{MANAGED_BY}={MANAGER},{self.owner_label}",
            metadata_only=self.list_secret_metadata,
        ):
            if self.list_secret_metadata:
                self.observe_secret_metadata(body)
            else:
                self.observe_secret(body)
        self.secrets.synced = True
        items = await list_watched(
            self.kube, self.config.watch_namespaces, lambda ns: custom_path(self.plural, ns)
        )
        # Every object is looked at once after a start (a Secret may have gone while wio was
        # down), most urgent first: after downtime the earliest expiries go out first.
        items.sort(key=self.urgency)
        overdue = self.clock.now() - dt.timedelta(days=1)
        for body in items:
            view = ObjectView.from_body(body)
            self.views[view.key] = view
            self.on_observed(view)
            self.scheduler.schedule(view.key, overdue)
        self.scheduler.start()
        self.queue.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.queue.stop()

    # -- watch events --------------------------------------------------------------------------

    def observe(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        view = ObjectView.from_body(body)
        if deleted:
            self.forget(view.key)
            return
        previous = self.views.get(view.key)
        accept_event(previous, view)
        self.views[view.key] = view
        self.on_observed(view)
        # Our own status writes come back as events; only a change of what we act on queues.
        if wants_work(previous, view):
            self.queue.add(view.key)

    def forget(self, key: ObjectKey) -> None:
        self.views.pop(key, None)
        self.scheduler.cancel(key)
        self._attempts.pop(key, None)
        self._drift_repairs.pop(key, None)
        self.on_forget(key)

    def requeue(self, namespace: str | None = None) -> None:
        """Policies (all) or a namespace's labels changed, or a signing key was withdrawn."""
        for key in self.views:
            if namespace is None or key.namespace == namespace:
                self.queue.add(key)

    def observe_secret(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        meta = body.get("metadata") or {}
        labels = meta.get("labels") or {}
        owner = labels.get(self.owner_label)
        if labels.get(MANAGED_BY) != MANAGER or not owner:
            return  # not one of this kind's Secrets
        key = ObjectKey(meta.get("namespace", ""), meta.get("name", ""))
        version = meta.get("resourceVersion")
        known = self.secrets.records.get(key)
        if deleted:
            self.secrets.drop(key, keep_writer=True)
        elif known is not None and older(version, known.version):
            return  # an event from before a version we already know (our own write, say)
        elif (
            known is not None and version and version == known.version and key in self.secrets.facts
        ):
            return  # the echo of our own write: its facts were recorded when we wrote it
        else:
            self.secrets.facts[key] = self.judge_secret(owner, body)
            self.secrets.records[key] = SecretRecord.from_metadata(meta, owner, self.kind)
            writer = last_foreign_writer(meta.get("managedFields") or [])
            if writer:
                self.secrets.foreign_writers[key] = writer
        owner_key = ObjectKey(key.namespace, owner)
        if owner_key in self.views:
            self.queue.add(owner_key)

    def observe_secret_metadata(self, body: Mapping[str, Any]) -> None:
        """A Secret known only by its metadata (start-up): trust wio's own annotations until
        the watch delivers the content and it is judged."""
        meta = body.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(self.owner_label)
        key = ObjectKey(meta.get("namespace", ""), meta.get("name", ""))
        if owner and key not in self.secrets.facts:
            # No version: the watch's first event of this Secret is then judged in full,
            # not taken for the echo of something wio already looked at.
            record = SecretRecord.from_metadata(meta, owner, self.kind)
            self.secrets.records[key] = replace(record, version=None)
            facts = self.facts_from_metadata(owner, meta.get("annotations") or {})
            if facts is not None:
                self.secrets.facts[key] = facts

    # -- reconciliation ------------------------------------------------------------------------

    async def reconcile(self, key: ObjectKey) -> None:
        """One pass over one object, under its lock (a finalizer waits for it to finish)."""
        async with self.locks.hold(key):
            await self._reconcile(key)

    async def _reconcile(self, key: ObjectKey) -> None:
        view = self.views.get(key)
        if view is None or view.deleting or not view.guarded:
            return  # deleted, or Kopf has not yet added our finalizer (its event requeues)
        now = self.clock.now()
        try:
            spec = self.parse(view)
        except ValidationError as err:
            await self._blocked(view, Blocked("InvalidSpec", str(err)), now)
            return
        subject = self.gate(view, spec)
        if isinstance(subject, Blocked):
            await self._blocked(view, subject, now)
            return
        denial = self.policy(view, spec, subject)
        if denial is not None:
            await self._deny(view, denial, now)
            return
        conflict = self._secret_conflict(view, self.secret_name(spec))
        if conflict is not None:
            await self._blocked(view, conflict, now)
            self.scheduler.schedule(view.key, now + CONFLICT_RETRY)
            return
        state = self.gather(view, spec, subject, now)
        reason = self.chain(state)
        if reason is None:
            await self._settle(view, state, now)
            return
        if reason.reason in DRIFT_REASONS and await self._contested(view, spec, reason, now):
            return
        try:
            if reason.reason == REVOKE_REQUESTED:
                await self._revoke_in_place(view, now)
            await self.act(view, spec, subject, state, reason)
        except NameTaken as err:
            await self._blocked(view, Blocked("SecretConflict", str(err)), now)
            self.scheduler.schedule(view.key, now + CONFLICT_RETRY)
        except RetryableError as err:
            await self._failed(view, spec, err, now, retryable=True)
        except PermanentError as err:
            await self._failed(view, spec, err, now, retryable=False)

    async def issuance_slot(self) -> dt.datetime:
        """Wait for the operator-wide issuance rate limit; the time it is granted."""
        await self.parts.bucket.acquire()
        return self.clock.now()

    async def _contested(
        self, view: ObjectView, spec: SpecT, reason: ReissueReason, now: dt.datetime
    ) -> bool:
        """Count a repair of someone else's change; past the hourly budget, stop and say who."""
        repairs = self._drift_repairs.setdefault(view.key, [])
        resume = drift_repairs_exhausted(repairs, now)
        if resume is None:
            repairs[:] = [t for t in repairs if now - t < DRIFT_WINDOW] + [now]
            return False
        secret_name = self.secret_name(spec)
        writer = self.secrets.foreign_writers.get(ObjectKey(view.key.namespace, secret_name))
        who = f"{writer!r}" if writer else "another writer"
        message = (
            f"Secret {secret_name} keeps being changed by {who} ({reason.reason}): wio "
            f"repaired it {len(repairs)} times in the last hour and waits until {rfc3339(resume)}"
        )
        self.scheduler.schedule(view.key, resume)
        if (condition(view.status, "Issuing") or {}).get("reason") != "ConflictingWriter":
            self.events.record(
                self.owner(view).event_reference(), "Warning", "ConflictingWriter", message
            )
            log.warning("%s: %s", view.key, message)
            await self.write_status(
                view, now, {}, [Condition("Issuing", False, "ConflictingWriter", message)]
            )
        return True

    async def _settle(self, view: ObjectView, state: StateT, now: dt.datetime) -> None:
        """Nothing to issue: make sure status says Ready, and wake up at the next due time."""
        due = self.next_due(state)
        if due is not None:
            self.scheduler.schedule(view.key, due)
        self._attempts.pop(view.key, None)
        if not readiness.ready_is_current(view.status, view.generation):
            await self.write_status(view, now, {}, self.readiness.valid())
        self.on_settled(view, state)

    async def _blocked(self, view: ObjectView, blocked: Blocked, now: dt.datetime) -> None:
        self.scheduler.cancel(view.key)
        if readiness.block_is_current(view.status, view.generation, blocked.reason):
            return
        await self.write_status(view, now, {}, readiness.blocked(blocked.reason, blocked.message))
        self.events.record(
            self.owner(view).event_reference(), "Warning", blocked.reason, blocked.message
        )

    async def _deny(self, view: ObjectView, message: str, now: dt.datetime) -> None:
        """Policy does not allow this object's credential: nothing is minted, and one already
        issued (the policy was withdrawn or narrowed) is revoked: Secret deleted, listed."""
        self.scheduler.cancel(view.key)
        issued = self.issued_before(view)
        if not issued and readiness.denial_is_current(view.status, view.generation, message):
            return
        self.metrics.policy_denials.labels(self.kind).inc()
        self.audit(view, "deny", "denied", reason=message)
        fields: dict[str, Any] = {}
        if issued:
            # Tokens naming this subject go too: the subject itself is no longer allowed.
            await self.before_revoke(view, "PolicyWithdrawn")
            await self.revoke(view, "PolicyWithdrawn")
            fields = dict.fromkeys(self.credential_fields)
        await self.write_status(view, now, fields, readiness.denied(message))
        self.events.record(self.owner(view).event_reference(), "Warning", "PolicyDenied", message)

    async def _failed(
        self, view: ObjectView, spec: SpecT, err: WioError, now: dt.datetime, *, retryable: bool
    ) -> None:
        attempts = self._attempts.setdefault(view.key, Attempts())
        valid_until = self.valid_until(view)
        outcome = failure(err, attempts, valid_until, now, self.parts.rng, retryable=retryable)
        signer, source = self.failure_labels(view, spec)
        if outcome.signer_problem:
            self.metrics.signer_errors.labels(signer, type(err).__name__).inc()
        if self.issued_before(view):
            self.metrics.rotations.labels(source, "Retry", "error").inc()
        else:
            self.metrics.issuances.labels(source, "error").inc()
        action = "rotate" if self.issued_before(view) else "issue"
        self.audit(view, action, "failure", reason=outcome.message)
        self.scheduler.schedule(view.key, outcome.retry_at)
        if outcome.event_reason:
            owner = self.owner(view).event_reference()
            self.events.record(owner, "Warning", outcome.event_reason, outcome.message)
        log.warning("issuing %s failed: %s", view.key, outcome.message)
        try:
            await self.write_status(view, now, {}, outcome.conditions)
        except WioError as status_err:
            log.warning("could not record the failure on %s: %s", view.key, status_err)

    # -- after an issuance ---------------------------------------------------------------------

    async def record_issuance(
        self,
        view: ObjectView,
        reason: ReissueReason,
        *,
        source: str,
        message: str,
        fields: Mapping[str, Any],
        due: dt.datetime,
        started: float,
    ) -> None:
        """After the Secret write: the status patch, schedule, Event, metrics, log."""
        first = not self.issued_before(view)
        verb = "Issued" if first else "Rotated"
        text = f"{verb} {message}" + ("" if first else f" ({reason.reason}: {reason.message})")
        now = self.clock.now()
        if reason.reason == REVOKE_REQUESTED:
            # Everything before this credential is listed already: nothing left to retire.
            fields = {**fields, "retiredCredentials": None, "lastRevocation": view.revoke_request}
        else:
            fields = {**fields, "retiredCredentials": self.retire(view, now)}
        await self.write_status(view, now, fields, self.readiness.issued(verb, text))
        self._attempts.pop(view.key, None)
        self.scheduler.schedule(view.key, due)
        self.events.record(self.owner(view).event_reference(), "Normal", verb, text)
        self.metrics.issuance_seconds.labels(source).observe(time.perf_counter() - started)
        if first:
            self.metrics.issuances.labels(source, "success").inc()
        else:
            self.metrics.rotations.labels(source, reason.reason, "success").inc()
        self.audit_issuance(view, first, reason, [str(fields[k]) for k in _IDS if fields.get(k)])
        log.info("%s %s: %s", verb.lower(), view.key, text)

    def audit_issuance(
        self, view: ObjectView, first: bool, reason: ReissueReason, credentials: list[str]
    ) -> None:
        """The audit record of a credential issued, or re-issued for ``reason``."""
        action = "issue" if first else "rotate"
        if reason.reason == FORCED_ROTATION:
            action = "forced-rotation"
        self.audit(view, action, "success", credentials=credentials, reason=reason.reason)

    def audit(
        self,
        view: ObjectView,
        action: str,
        outcome: str,
        *,
        credentials: Sequence[str] = (),
        reason: str | None = None,
    ) -> None:
        self.parts.audit.record(
            AuditEvent(
                action,
                outcome,
                actor=view.actor,
                subject=self.subject_of(view) or None,
                kind=self.kind,
                namespace=view.key.namespace,
                name=view.key.name,
                credentials=credentials,
                reason=reason,
            )
        )

    def credential_timings(self) -> Iterator[CredentialTiming]:
        """Every live credential of this kind, for the metrics (read at scrape)."""
        for view in list(self.views.values()):
            if not view.deleting:
                yield from self.timings(view)

    def retire(self, view: ObjectView, now: dt.datetime) -> list[dict[str, str]] | None:
        """``status.retiredCredentials`` once the current credential is replaced: it joins
        the earlier generations still valid, so a later revocation lists them all."""
        earlier = retired_credentials(view.status, now)
        return retired_status([*earlier, *self.recorded_credentials(view, now)], now)

    def renewal(self, start: dt.datetime, end: dt.datetime) -> dt.datetime:
        return renewal_time(
            start,
            end,
            self.config.rotation_fraction,
            self.config.rotation_jitter,
            rng=self.parts.rng,
        )

    def rotations(self, view: ObjectView) -> int:
        """``status.rotations`` after one more issuance: re-issues since the first one."""
        count = int(view.status.get("rotations") or 0)
        return count + 1 if self.issued_before(view) else count

    def succeeded(self, view: ObjectView) -> None:
        """A write without a new credential (adoption, renewal) ended the failures."""
        self._attempts.pop(view.key, None)

    # -- status --------------------------------------------------------------------------------

    async def write_status(
        self,
        view: ObjectView,
        now: dt.datetime,
        fields: Mapping[str, Any],
        conditions: Sequence[Condition],
    ) -> None:
        await write_status(self.kube, self.plural, view, self.views, now, fields, conditions)

    # -- revocation ----------------------------------------------------------------------------

    async def finalize(self, body: Mapping[str, Any], reason: str = "Deleted") -> None:
        """Revoke on delete: dependents, Secret gone, upstream told, revocation stored."""
        view = ObjectView.from_body(body)
        async with self.locks.hold(view.key):
            known = self.views.get(view.key)
            if known is not None and known.uid == view.uid:
                # Our own writes (an issuance that finished while we waited) may be newer
                # than the body Kopf holds.
                view.status = {**view.status, **known.status}
            self.forget(view.key)
            await self.before_revoke(view, reason)
            await self.revoke(view, reason)
