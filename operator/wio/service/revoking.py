# SPDX-License-Identifier: Apache-2.0
"""Revoking an object's credentials: delete its own Secret, tell the source, list, report.

Used by the finalizer (``CredentialController.finalize``), by a withdrawn policy and by the
revoke annotation. The order holds everywhere: the Secret is deleted (only one wio created for
this very object, with its UID as a precondition), the signer or Vault is told (what it does
not confirm is retried by ``wio.service.upstream``), the revocations are stored, and only then
are the Event, the audit line and the metric written.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from wio.clock import Clock, whole_seconds
from wio.errors import ApiConflict
from wio.k8s.client import secret_path
from wio.k8s.events import EventRecorder
from wio.metrics import Metrics
from wio.models.audit import AuditEvent
from wio.models.revocation import Revocation
from wio.service.kind import Collaborators, FactsT, Live, SpecT, StateT, SubjectT
from wio.service.ownership import SecretOwnership
from wio.service.views import ObjectKey, ObjectView

log = logging.getLogger("wio.service.controller")


class Revoking(SecretOwnership[SpecT, SubjectT, StateT, FactsT]):
    """The revoking side of a controller (``wio.service.controller`` sets the attributes)."""

    parts: Collaborators
    clock: Clock
    events: EventRecorder
    metrics: Metrics

    async def _revoke_in_place(self, view: ObjectView, now: dt.datetime) -> None:
        """The revoke annotation: list every credential issued so far (upstream too), without
        deleting the Secret, which the fresh issuance that follows replaces in one write."""
        live = self.live_credentials(view, now)
        note = f" on request ({view.revoke_request}); a new credential follows"
        await self._list_and_report(view, live, "RevokeRequested", now, note)

    async def revoke(self, view: ObjectView, reason: str) -> None:
        """Delete the object's own Secret and list every live credential, from status and
        from what its Secret holds; the caller holds the lock."""
        now = self.clock.now()
        key = view.key
        live = self.live_credentials(view, now)
        # Only Secrets wio wrote for this very object are deleted, each with its UID as a
        # precondition: nothing issued means nothing deleted.
        own = self.own_secret_names(view)
        for name in own:
            record = self.secrets.records[ObjectKey(key.namespace, name)]
            try:
                await self.kube.delete(secret_path(key.namespace, name), uid=record.uid)
            except ApiConflict:
                log.info("Secret %s/%s was replaced meanwhile; left alone", key.namespace, name)
            self.secrets.drop(ObjectKey(key.namespace, name))
        note = f"; Secret {', '.join(own)} deleted" if own else "; no Secret of its own to delete"
        await self._list_and_report(view, live, reason, now, note)

    async def _list_and_report(
        self, view: ObjectView, live: Sequence[Live], reason: str, now: dt.datetime, note: str
    ) -> None:
        """What every revocation ends with: the source told, the list stored, then the Event
        (its message ending in ``note``), the audit line and the metric."""
        subject = self.subject_of(view)
        pending = await self._revoke_upstream(view, live)
        await self._store_revocations(view, subject, live, pending, reason, now)
        message, labels = self.revocation_report(view, subject, live, pending)
        self._report_revocation(view, subject, message + note, live, labels, reason)

    async def _store_revocations(
        self,
        view: ObjectView,
        subject: str,
        live: Sequence[Live],
        pending: set[str],
        reason: str,
        now: dt.datetime,
    ) -> None:
        """List ``live`` as revoked until each would have expired; returns once stored."""
        # The namespace is the object's own (metadata, not status): an entry only ever counts
        # against credentials of that namespace, so an ID copied from another namespace's
        # certificate or token into this object's status revokes nothing there.
        entries = [
            Revocation(
                kind=item.kind,
                id=item.id,
                namespace=view.key.namespace,
                spiffe_id=subject,
                revoked_at=whole_seconds(now),
                expires_at=item.expires_at,
                reason=reason,
                key_fingerprint=item.key_fingerprint,
                upstream_pending=item.id in pending,
                signer=item.signer if item.id in pending else None,
            )
            for item in live
        ]
        if entries:
            await self.parts.revocations.add(entries)
            self.parts.trust.revocations_changed()

    def _report_revocation(
        self,
        view: ObjectView,
        subject: str,
        message: str,
        live: Sequence[Live],
        labels: tuple[str, str],
        reason: str,
    ) -> None:
        """The Event, the audit record, the metric and the log of one revocation."""
        key = view.key
        self.events.record(self.owner(view).event_reference(), "Normal", "Revoked", message)
        self.parts.audit.record(
            AuditEvent(
                "revoke",
                "success",
                actor=view.actor,
                subject=subject or None,
                kind=self.kind,
                namespace=key.namespace,
                name=key.name,
                credentials=sorted(item.id for item in live),
                reason=reason,
            )
        )
        self.metrics.revocations.labels(*labels).inc()
        log.info("revoked %s (%s): %s", key, reason, message)

    async def _revoke_upstream(self, view: ObjectView, live: Sequence[Live]) -> set[str]:
        """Tell the signer or Vault; the IDs it did not confirm (retried in the background)."""
        upstream, namespace = self.parts.upstream, view.key.namespace
        pending = {
            i.id for i in live if not await upstream.revoke(i.kind, i.id, i.signer, namespace)
        }
        if pending:
            upstream.retry_soon()
        return pending
