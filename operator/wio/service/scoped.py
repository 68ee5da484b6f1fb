# SPDX-License-Identifier: Apache-2.0
"""ScopedCredential: what the controller core (``wio.service.controller``) needs of this kind.

The subject is the referenced WorkloadIdentity's SPIFFE ID; it must exist in the namespace and
be Ready. Policy is ``evaluate_scoped`` (no matching IdentityPolicy denies), then, for Vault,
the admin's mounts; the chain is ``wio.policy.scoped``. ``spec.token`` issues an RFC 9068
access token (``sub`` and ``client_id`` the identity's SPIFFE ID: the workload is both subject
and OAuth client), verified before it is written; ``spec.vault`` reads a dynamic secret and
renews its lease at half-life until Vault grants less than asked, then reads again
(``wio.service.leases``). Deleting the credential, or its identity (``revoke_for_identity``,
called by the identity's finalizer), revokes the ``jti`` or every live lease; after an
identity deletion the ScopedCredential stays, ``Ready=False`` with ``IdentityNotFound``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from wio.clock import parse_rfc3339
from wio.errors import ValidationError
from wio.metrics import CredentialTiming
from wio.models.resources import (
    ScopedCredentialSpec,
    WorkloadIdentitySpec,
    default_credential_secret_name,
)
from wio.models.spiffe import SpiffeID
from wio.names import CREDENTIAL_OWNER_LABEL, SCOPED_CREDENTIAL, SCOPED_CREDENTIALS
from wio.policy.identity_policy import evaluate_identity, evaluate_scoped
from wio.policy.rotation import ReissueReason
from wio.policy.scoped import (
    CredentialFacts,
    CredentialState,
    Source,
    reissue_reason,
)
from wio.service import credential_secret, readiness
from wio.service.kind import Blocked, Collaborators, Live, retired_credentials, timing_of
from wio.service.leases import live_leases_of
from wio.service.scoped_issuing import ScopedIssuing, Subject
from wio.service.status import condition
from wio.service.views import ObjectKey, ObjectView, decode_secret_data

log = logging.getLogger(__name__)


class ScopedCredentialController(ScopedIssuing):
    kind = SCOPED_CREDENTIAL
    plural = SCOPED_CREDENTIALS
    owner_label = CREDENTIAL_OWNER_LABEL
    readiness = readiness.CREDENTIAL
    credential_fields = (
        *("jti", "leaseID", "leaseExpiresAt", "leaseDuration", "leaseRenewable", "retiredLeases"),
        *("expiresAt", "renewalTime", "specHash", "spiffeID", "retiredCredentials"),
    )

    def __init__(self, parts: Collaborators) -> None:
        super().__init__(parts, parts.cache.credentials, parts.cache.credential_secrets)
        self.by_identity: dict[ObjectKey, set[ObjectKey]] = {}

    # -- the identity index --------------------------------------------------------------------

    def on_observed(self, view: ObjectView) -> None:
        ref = view.spec.get("identityRef")
        if isinstance(ref, str):
            self.by_identity.setdefault(ObjectKey(view.key.namespace, ref), set()).add(view.key)

    def timings(self, view: ObjectView) -> Iterator[CredentialTiming]:
        kind = "vault" if view.status.get("leaseID") else "token"
        found = timing_of(view, kind, "expiresAt", "renewalTime")
        if found is not None:
            yield found

    def on_forget(self, key: ObjectKey) -> None:
        for ref in [r for r, keys in self.by_identity.items() if key in keys]:
            self.by_identity[ref].discard(key)
            if not self.by_identity[ref]:
                del self.by_identity[ref]

    def observe_identity(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        """A WorkloadIdentity changed (the identity controller has already recorded it)."""
        meta = body.get("metadata") or {}
        key = ObjectKey(meta.get("namespace", ""), meta.get("name", ""))
        for dependent in self.by_identity.get(key, ()):
            self.queue.add(dependent)

    # -- reading -------------------------------------------------------------------------------

    def parse(self, view: ObjectView) -> ScopedCredentialSpec:
        return ScopedCredentialSpec.parse(view.key.name, view.spec)

    def default_secret_name(self, name: str) -> str:
        return default_credential_secret_name(name)

    def gate(self, view: ObjectView, spec: ScopedCredentialSpec) -> Subject | Blocked:
        """The referenced identity and the subject it stands for; or why nothing is minted.

        The subject is computed from the identity's spec and this namespace, never read from
        its status: whoever may patch a status must not choose whom a token names. Status only
        holds issuance back (an identity not yet Ready); policy is evaluated again here.
        """
        namespace, name = view.key.namespace, spec.identity_ref
        identity = self.cache.identities.get(ObjectKey(namespace, name))
        if identity is None or identity.deleting:
            return Blocked(
                "IdentityNotFound",
                f"spec.identityRef: WorkloadIdentity {name} does not exist in namespace "
                f"{namespace}; nothing is minted until it does and is Ready",
            )
        not_ready = Blocked(
            "IdentityNotReady",
            f"spec.identityRef: WorkloadIdentity {name} is not Ready; nothing is minted until "
            "it is",
        )
        ready = condition(identity.status, "Ready")
        if ready is None or ready.get("status") != "True":
            return not_ready
        try:
            identity_spec = WorkloadIdentitySpec.parse(name, identity.spec)
        except ValidationError as err:
            return Blocked("IdentityNotReady", f"spec.identityRef: WorkloadIdentity {name}: {err}")
        decision = evaluate_identity(
            identity_spec,
            namespace,
            self.cache.namespace_labels.get(namespace, {}),
            list(self.cache.policies.values()),
            self.parts.policy_defaults,
        )
        if not decision.allowed:
            return not_ready
        return Subject(identity_spec, self._subject(namespace, identity_spec))

    def policy(self, view: ObjectView, spec: ScopedCredentialSpec, subject: Subject) -> str | None:
        """The denial message, or None when allowed (IdentityPolicy, then the admin's mounts)."""
        namespace = view.key.namespace
        decision = evaluate_scoped(
            spec,
            namespace,
            self.cache.namespace_labels.get(namespace, {}),
            list(self.cache.policies.values()),
            self.parts.policy_defaults,
            service_account=subject.identity.service_account,
        )
        if not decision.allowed:
            return decision.message
        vault = self.parts.upstream.vault
        if spec.vault is not None:
            if vault is None:
                return (
                    f"spec.vault.path: {spec.vault.path} cannot be read: the operator has no "
                    "Vault configured for dynamic secrets"
                )
            if not vault.allows(spec.vault.path):
                return (
                    f"spec.vault.path: {spec.vault.path} is outside the Vault mounts the "
                    f"operator may read ({', '.join(vault.mounts)})"
                )
        return None

    def gather(
        self, view: ObjectView, spec: ScopedCredentialSpec, subject: Subject, now: dt.datetime
    ) -> CredentialState:
        status = view.status
        stored_id = status.get("jti") if spec.token is not None else status.get("leaseID")
        return CredentialState(
            now=now,
            subject=subject.spiffe_id,
            spec_hash=spec.spec_hash(),
            secret_name=spec.secret_name,
            stored_id=stored_id if isinstance(stored_id, str) and stored_id else None,
            stored_subject=status.get("spiffeID") or None,
            stored_spec_hash=status.get("specHash") or None,
            stored_secret_name=status.get("secretName") or None,
            expires_at=parse_rfc3339(status.get("expiresAt")),
            renewal_time=parse_rfc3339(status.get("renewalTime")),
            forced_request=view.forced_request,
            forced_ack=status.get("lastForcedRotation") or None,
            revoke_request=view.revoke_request,
            revoke_ack=status.get("lastRevocation") or None,
            secrets_synced=self.secrets.synced,
            secret=self.secrets.get(view.key.namespace, spec.secret_name),
            published_kids=self.signers.published_kids(),
        )

    def chain(self, state: CredentialState) -> ReissueReason | None:
        return reissue_reason(state)

    def next_due(self, state: CredentialState) -> dt.datetime | None:
        return state.renewal_time

    def judge_secret(self, owner: str, body: Mapping[str, Any]) -> CredentialFacts:
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        return credential_secret.judge(owner, decode_secret_data(body), annotations)

    def urgency(self, body: Mapping[str, Any]) -> str:
        return str((body.get("status") or {}).get("renewalTime") or "")

    def issued_before(self, view: ObjectView) -> bool:
        return bool(view.status.get("jti") or view.status.get("leaseID"))

    def valid_until(self, view: ObjectView) -> dt.datetime | None:
        return parse_rfc3339(view.status.get("expiresAt"))

    def failure_labels(self, view: ObjectView, spec: ScopedCredentialSpec) -> tuple[str, str]:
        source = _source(spec)
        return ("vault" if source is Source.VAULT else "jwt"), source.value

    def untrusted_count(self) -> int:
        """Secrets still holding an access token signed by a key no longer published."""
        kids = self.signers.published_kids()
        if not kids:
            return 0
        return sum(
            1 for f in self.secrets.facts.values() if f.kid is not None and f.kid not in kids
        )

    # -- revocation ----------------------------------------------------------------------------

    def recorded_credentials(self, view: ObjectView, now: dt.datetime) -> list[Live]:
        """The current access token (a Vault lease's generations are ``retiredLeases``)."""
        jti, expires = view.status.get("jti"), parse_rfc3339(view.status.get("expiresAt"))
        if isinstance(jti, str) and jti and expires is not None and expires > now:
            return [Live("token", jti, expires)]
        return []

    def live_credentials(self, view: ObjectView, now: dt.datetime) -> list[Live]:
        """What status records, and what its own Secret holds (written just before a crash,
        or status patched by someone else)."""
        status = view.status
        kind = _revoked_kind(view)
        live: dict[str, dt.datetime] = {}
        if kind == "lease":
            live.update(live_leases_of(status, now))
        else:
            for item in (*self.recorded_credentials(view, now), *retired_credentials(status, now)):
                live[item.id] = item.expires_at
        for name in self.own_secret_names(view):
            facts = self.secrets.get(view.key.namespace, name)
            if (
                facts is not None
                and facts.credential_id
                and facts.credential_id not in live
                and facts.expires_at is not None
                and facts.expires_at > now
            ):
                live[facts.credential_id] = facts.expires_at
        return [Live(kind, credential_id, expires) for credential_id, expires in live.items()]

    def subject_of(self, view: ObjectView) -> str:
        """The referenced identity's SPIFFE ID, from its spec; empty once it is gone."""
        ref = view.spec.get("identityRef")
        identity = self.cache.identities.get(ObjectKey(view.key.namespace, str(ref or "")))
        if identity is None:
            return ""
        try:
            identity_spec = WorkloadIdentitySpec.parse(identity.key.name, identity.spec)
            return self._subject(view.key.namespace, identity_spec)
        except ValidationError:
            return ""

    def _subject(self, namespace: str, identity: WorkloadIdentitySpec) -> str:
        """The SPIFFE ID a token names: the identity's, from its spec and this namespace."""
        return str(
            SpiffeID.for_workload(self.config.trust_domain, namespace, identity.service_account)
        )

    def revocation_report(
        self, view: ObjectView, subject: str, live: Sequence[Live], pending: set[str]
    ) -> tuple[str, tuple[str, str]]:
        kind = _revoked_kind(view)
        ids = sorted(item.id for item in live)
        what = ", ".join(ids) if kind == "token" else f"{len(ids)} lease(s)"
        message = f"revoked {kind} {what or '(none live)'} of {subject or view.key}"
        return message, (kind, "pending" if pending else "success")

    async def revoke_for_identity(self, identity: ObjectKey, reason: str) -> None:
        """The WorkloadIdentity ``identity`` is being deleted (``reason`` ``Deleted``), or its
        policy no longer allows it: the credentials naming it go with it."""
        if reason == "Deleted":
            revoked_as, blocked_as = "IdentityDeleted", "IdentityNotFound"
            why = (
                "was deleted; its credential was revoked and nothing is minted until it "
                "exists again"
            )
        else:
            revoked_as, blocked_as = "IdentityPolicyWithdrawn", "IdentityNotReady"
            why = (
                "is no longer allowed by policy; its credential was revoked and nothing is "
                "minted until it is Ready again"
            )
        for key in sorted(self.by_identity.get(identity, ())):
            async with self.locks.hold(key):
                view = self.views.get(key)
                # What status records, or what a Secret written before a crash holds.
                if view is None or not self.live_credentials(view, self.clock.now()):
                    continue
                self.scheduler.cancel(key)
                await self.revoke(view, revoked_as)
                message = f"spec.identityRef: WorkloadIdentity {identity.name} {why}"
                await self.write_status(
                    view,
                    self.clock.now(),
                    dict.fromkeys(self.credential_fields),
                    readiness.blocked(blocked_as, message),
                )


def _source(spec: ScopedCredentialSpec) -> Source:
    return Source.TOKEN if spec.token is not None else Source.VAULT


def _revoked_kind(view: ObjectView) -> str:
    """The revocation list's entry kind of what this credential issued: lease or token."""
    return "lease" if "vault" in view.spec or view.status.get("leaseID") else "token"
