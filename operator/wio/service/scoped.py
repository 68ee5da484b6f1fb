# SPDX-License-Identifier: Apache-2.0
"""ScopedCredential reconciliation: access tokens and Vault dynamic secrets, least privilege
by IdentityPolicy, revoked on delete.

The same machinery as WorkloadIdentities (``wio.service.identities``): watch events feed
compact views and queue keys on a work queue; a due-time scheduler queues a key again when its
stored renewal time arrives; decisions come from an ordered chain of checks
(``wio.policy.scoped``) over status and what the Secret watch saw, never from an API read.
A worker then:

1. parses the spec; finds the referenced WorkloadIdentity in the same namespace (from the
   identity service's own views) and requires it to exist and be Ready, since its SPIFFE ID is
   the credential's subject; evaluates IdentityPolicy (``evaluate_scoped``) and, for Vault,
   the admin's mounts. Any refusal is a condition naming the field; nothing is minted.
2. issues, under the operator-wide issuance rate limit:
   - ``spec.token``: an RFC 9068 access token (``typ`` at+jwt) signed by the identity's
     signer. ``sub`` and ``client_id`` are the identity's SPIFFE ID (the workload is both the
     subject and the OAuth client), ``iss`` the admin's ``jwtIssuer``, ``aud``, ``scope`` and
     the extra claims as asked and allowed. The signed token is verified before it is written.
   - ``spec.vault``: a read of ``spec.vault.path``; the data keys go to the Secret. At half
     the lease the lease is renewed (the Secret's data stays); once Vault grants less than
     asked (the role's max TTL is near) or refuses, the secret is read again. A replaced lease
     is not revoked at once, since pods may still use it until they pick up the new Secret:
     it stays in ``status.retiredLeases`` until it expires and is revoked if the
     ScopedCredential is deleted first.
   then ONE Secret write (server-side apply; ``Opaque``, labelled and owned by the
   ScopedCredential) and ONE status patch, an Event and metrics.
3. on delete (the finalizer) or when the WorkloadIdentity is deleted (its finalizer calls
   ``revoke_for_identity`` before letting go): Secret deleted, the ``jti`` and every live lease
   added to the revocation list until they expire, leases revoked in Vault (a Vault that does
   not answer within seconds leaves the entry ``upstreamPending`` and it is retried in the
   background, so a namespace deletion never hangs), an Event, an audit line, a metric. The
   lease IDs live in status and on the Secret, so all of this survives a restart. After an
   identity deletion the ScopedCredential itself stays, ``Ready=False`` with reason
   ``IdentityNotFound``, and issues again only if an identity of that name returns and policy
   allows it.

Reconciliation, the finalizer and ``revoke_for_identity`` take a per-object lock, so a
credential is never minted for an object whose revocation has started.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from wio.backends.protocols import JwtType
from wio.backends.vault_dynamic import DynamicSecret, VaultDynamicSecrets
from wio.clock import Clock, parse_rfc3339, rfc3339, whole_seconds
from wio.config import AdminConfig
from wio.errors import (
    PermanentError,
    RetryableError,
    SignerRejected,
    ValidationError,
    WioError,
)
from wio.issuing.jwt import access_token_claims, new_jti
from wio.issuing.verify_jwt import JwtVerifier, TokenProfile
from wio.k8s.client import KubeClient, custom_path, list_watched, secret_path
from wio.k8s.events import EventRecorder
from wio.metrics import Metrics
from wio.models.resources import (
    CREDENTIAL_SECRET_SUFFIX,
    ScopedCredentialSpec,
    WorkloadIdentitySpec,
)
from wio.models.revocation import Revocation
from wio.policy.identity_policy import evaluate_scoped
from wio.policy.rotation import ReissueReason, renewal_time
from wio.policy.scoped import (
    EXPIRES_ANNOTATION,
    JTI_ANNOTATION,
    KEYS_ANNOTATION,
    LEASE_ANNOTATION,
    TOKEN_KEY,
    CredentialFacts,
    CredentialState,
    LeaseAction,
    Source,
    after_renewal,
    credential_facts,
    lease_action,
    live_leases,
    reissue_reason,
)
from wio.service.bodies import (
    GROUP,
    MANAGED_BY,
    MANAGER,
    Condition,
    Owner,
    condition,
    secret_manifest,
)
from wio.service.common import (
    UPSTREAM_REVOKE_TIMEOUT,
    Attempts,
    accept_event,
    failure,
    older,
    wants_work,
    write_status,
)
from wio.service.identities import IdentityService
from wio.service.revocations import RevocationStore
from wio.service.signers import SignerSet
from wio.service.views import IdentityView, ObjectKey, decode_secret_data
from wio.service.workqueue import DueScheduler, WorkQueue

log = logging.getLogger(__name__)
audit = logging.getLogger("wio.audit")

KIND = "ScopedCredential"
PLURAL = "scopedcredentials"
#: The label naming the ScopedCredential a Secret belongs to.
OWNER_LABEL = f"{GROUP}/scopedcredential"
SOURCE_ANNOTATION = f"{GROUP}/source"
#: Replaced leases kept for revocation on delete; older ones are left to expire on their own.
MAX_RETIRED_LEASES = 16
#: How often leases whose revocation Vault did not confirm are tried again.
PENDING_RETRY_SECONDS = 30.0
#: How often a credential whose Secret name another wio object uses looks again.
CONFLICT_RETRY = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class _Blocked:
    """Why nothing can be issued right now (a condition reason and message)."""

    reason: str
    message: str


@dataclass
class ScopedCredentialService:
    config: AdminConfig
    kube: KubeClient
    identities: IdentityService
    signers: SignerSet
    vault: VaultDynamicSecrets | None
    revocations: RevocationStore
    events: EventRecorder
    metrics: Metrics
    clock: Clock
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.credentials: dict[ObjectKey, IdentityView] = {}
        self.by_identity: dict[ObjectKey, set[ObjectKey]] = {}
        self.secret_facts: dict[ObjectKey, CredentialFacts] = {}
        self.secret_written: dict[ObjectKey, str | None] = {}
        self.secrets_synced = False
        self.queue: WorkQueue[ObjectKey] = WorkQueue(
            self._reconcile_safely, workers=self.config.max_inflight_writes
        )
        self.scheduler: DueScheduler[ObjectKey] = DueScheduler(self.queue.add, self.clock)
        # One issuance rate limit for the whole operator, shared with WorkloadIdentities.
        self.bucket = self.identities.bucket
        self._attempts: dict[ObjectKey, Attempts] = {}
        self._locks: dict[ObjectKey, asyncio.Lock] = {}
        self._pending_wake = asyncio.Event()
        self._pending_task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Seed the views (after the identity service, whose views this one reads), then run."""
        for body in await list_watched(
            self.kube,
            self.config.watch_namespaces,
            secret_path,
            f"{MANAGED_BY}={MANAGER},{OWNER_LABEL}",
        ):
            self.observe_secret(body)
        self.secrets_synced = True
        items = await list_watched(
            self.kube, self.config.watch_namespaces, lambda ns: custom_path(PLURAL, ns)
        )
        items.sort(key=lambda b: (b.get("status") or {}).get("renewalTime") or "")
        for body in items:
            view = IdentityView.from_body(body)
            self._index(view)
            self.scheduler.schedule(view.key, self.clock.now() - dt.timedelta(days=1))
        self.scheduler.start()
        self.queue.start()
        self._pending_task = asyncio.create_task(self._retry_pending(), name="wio-lease-revoke")

    async def stop(self) -> None:
        if self._pending_task is not None:
            self._pending_task.cancel()
            await asyncio.gather(self._pending_task, return_exceptions=True)
            self._pending_task = None
        await self.scheduler.stop()
        await self.queue.stop()

    # -- watch events ------------------------------------------------------------------------

    def observe_credential(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        view = IdentityView.from_body(body)
        if deleted:
            self.forget(view.key)
            return
        previous = self.credentials.get(view.key)
        accept_event(previous, view)
        self._index(view)
        if wants_work(previous, view):
            self.queue.add(view.key)

    def _index(self, view: IdentityView) -> None:
        self.credentials[view.key] = view
        ref = view.spec.get("identityRef")
        if isinstance(ref, str):
            self.by_identity.setdefault(ObjectKey(view.key.namespace, ref), set()).add(view.key)

    def forget(self, key: ObjectKey) -> None:
        view = self.credentials.pop(key, None)
        if view is not None:
            ref = ObjectKey(key.namespace, str(view.spec.get("identityRef")))
            dependents = self.by_identity.get(ref)
            if dependents is not None:
                dependents.discard(key)
                if not dependents:
                    del self.by_identity[ref]
        self.scheduler.cancel(key)
        self._attempts.pop(key, None)

    def observe_identity(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        """A WorkloadIdentity changed (the identity service has already recorded it)."""
        meta = body.get("metadata") or {}
        key = ObjectKey(meta.get("namespace", ""), meta.get("name", ""))
        for dependent in self.by_identity.get(key, ()):
            self.queue.add(dependent)

    def observe_secret(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        meta = body.get("metadata") or {}
        labels = meta.get("labels") or {}
        owner = labels.get(OWNER_LABEL)
        if labels.get(MANAGED_BY) != MANAGER or not owner:
            return  # not a ScopedCredential's Secret
        key = ObjectKey(meta.get("namespace", ""), meta.get("name", ""))
        version = meta.get("resourceVersion")
        if deleted:
            self.secret_facts.pop(key, None)
            self.secret_written.pop(key, None)
        elif older(version, self.secret_written.get(key)):
            return  # an event from before our own last write of this Secret
        elif version and version == self.secret_written.get(key) and key in self.secret_facts:
            return  # the echo of our own write: its facts were recorded when we wrote it
        else:
            annotations = meta.get("annotations") or {}
            try:
                source = Source(annotations.get(SOURCE_ANNOTATION, ""))
            except ValueError:
                self.secret_facts[key] = CredentialFacts(
                    owner,
                    None,
                    None,
                    ReissueReason("SecretAltered", "the Secret lost wio's annotations"),
                )
            else:
                self.secret_facts[key] = credential_facts(
                    source, owner, decode_secret_data(body), annotations
                )
        owner_key = ObjectKey(key.namespace, owner)
        if owner_key in self.credentials:
            self.queue.add(owner_key)

    def untrusted_count(self) -> int:
        """Secrets still holding an access token signed by a key no longer published."""
        kids = self.signers.published_kids()
        if not kids:
            return 0
        return sum(1 for f in self.secret_facts.values() if f.kid is not None and f.kid not in kids)

    def requeue(self, namespace: str | None = None) -> None:
        """IdentityPolicies (all) or a namespace's labels changed: decide again."""
        for key in self.credentials:
            if namespace is None or key.namespace == namespace:
                self.queue.add(key)

    # -- reconciliation ----------------------------------------------------------------------

    def _lock(self, key: ObjectKey) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _reconcile_safely(self, key: ObjectKey) -> None:
        async with self._lock(key):
            await self.reconcile(key)

    async def reconcile(self, key: ObjectKey) -> None:
        view = self.credentials.get(key)
        if view is None or view.deleting or not view.guarded:
            return  # deleted, or Kopf has not yet added our finalizer (its event requeues)
        now = self.clock.now()
        try:
            spec = ScopedCredentialSpec.parse(key.name, view.spec)
        except ValidationError as err:
            await self._blocked(view, _Blocked("InvalidSpec", str(err)), now)
            return
        source = Source.TOKEN if spec.token is not None else Source.VAULT
        found = self._identity(key.namespace, spec.identity_ref)
        if isinstance(found, _Blocked):
            await self._blocked(view, found, now)
            return
        identity_spec, subject = found
        denial = self._policy(view, spec, identity_spec)
        if denial is not None:
            await self._deny(view, denial, now)
            return
        conflict = self._secret_conflict(view.key, spec.secret_name)
        if conflict is not None:
            await self._blocked(view, conflict, now)
            # Nothing tells us when the other owner lets go of the name: look again later.
            self.scheduler.schedule(view.key, now + CONFLICT_RETRY)
            return
        state = self._state(view, spec, subject, now)
        reason = reissue_reason(state)
        if reason is None:
            await self._settle(view, state, now)
            return
        try:
            if source is Source.TOKEN:
                await self._issue_token(view, spec, identity_spec, subject, reason)
            elif lease_action(reason, view.status.get("leaseRenewable") is True) is (
                LeaseAction.RENEW
            ):
                await self._renew_lease(view, spec, subject, reason)
            else:
                await self._read_secret(view, spec, subject, reason)
        except RetryableError as err:
            await self._failed(view, source, err, now, retryable=True)
        except PermanentError as err:
            await self._failed(view, source, err, now, retryable=False)

    def _identity(self, namespace: str, name: str) -> tuple[WorkloadIdentitySpec, str] | _Blocked:
        """The referenced identity, Ready, with its spec and SPIFFE ID; or why not."""
        identity = self.identities.identities.get(ObjectKey(namespace, name))
        if identity is None or identity.deleting:
            return _Blocked(
                "IdentityNotFound",
                f"spec.identityRef: WorkloadIdentity {name} does not exist in namespace "
                f"{namespace}; nothing is minted until it does and is Ready",
            )
        ready = condition(identity.status, "Ready")
        subject = identity.status.get("spiffeID")
        if ready is None or ready.get("status") != "True" or not isinstance(subject, str):
            return _Blocked(
                "IdentityNotReady",
                f"spec.identityRef: WorkloadIdentity {name} is not Ready; nothing is minted "
                "until it is",
            )
        try:
            identity_spec = WorkloadIdentitySpec.parse(name, identity.spec)
        except ValidationError as err:
            return _Blocked("IdentityNotReady", f"spec.identityRef: WorkloadIdentity {name}: {err}")
        return identity_spec, subject

    def _policy(
        self, view: IdentityView, spec: ScopedCredentialSpec, identity_spec: WorkloadIdentitySpec
    ) -> str | None:
        """The denial message, or None when allowed (IdentityPolicy, then the admin's mounts)."""
        namespace = view.key.namespace
        decision = evaluate_scoped(
            spec,
            namespace,
            self.identities.namespace_labels.get(namespace, {}),
            list(self.identities.policies.values()),
            self.identities.defaults,
            service_account=identity_spec.service_account,
        )
        if not decision.allowed:
            return decision.message
        if spec.vault is not None:
            if self.vault is None:
                return (
                    f"spec.vault.path: {spec.vault.path} cannot be read: the operator has no "
                    "Vault configured for dynamic secrets"
                )
            if not self.vault.allows(spec.vault.path):
                return (
                    f"spec.vault.path: {spec.vault.path} is outside the Vault mounts the "
                    f"operator may read ({', '.join(self.vault.mounts)})"
                )
        return None

    def _secret_conflict(self, key: ObjectKey, secret_name: str) -> _Blocked | None:
        """Another wio object already writes this Secret: writing it too would make the two
        overwrite each other forever, so neither the other's credential nor ours is touched."""
        secret = ObjectKey(key.namespace, secret_name)
        facts = self.secret_facts.get(secret)
        if secret in self.identities.secrets.facts:
            other = "a WorkloadIdentity"
        elif facts is not None and facts.owner != key.name:
            other = f"ScopedCredential {facts.owner}"
        else:
            return None
        return _Blocked(
            "SecretConflict",
            f"spec.secretName: Secret {secret_name} already holds the credential of {other}; "
            "choose another name",
        )

    def _state(
        self, view: IdentityView, spec: ScopedCredentialSpec, subject: str, now: dt.datetime
    ) -> CredentialState:
        status = view.status
        stored_id = status.get("jti") if spec.token is not None else status.get("leaseID")
        return CredentialState(
            now=now,
            subject=subject,
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
            secrets_synced=self.secrets_synced,
            secret=self.secret_facts.get(ObjectKey(view.key.namespace, spec.secret_name)),
            published_kids=self.signers.published_kids(),
        )

    async def _settle(self, view: IdentityView, state: CredentialState, now: dt.datetime) -> None:
        """Nothing to issue: make sure status says Ready, and wake up at the next due time."""
        if state.renewal_time is not None:
            self.scheduler.schedule(view.key, state.renewal_time)
        self._attempts.pop(view.key, None)
        ready = condition(view.status, "Ready")
        if (
            ready is None
            or ready.get("status") != "True"
            or ready.get("observedGeneration") != view.generation
            or (condition(view.status, "PolicyDenied") or {}).get("status") == "True"
        ):
            await self._write_status(
                view, now, {}, _ready_conditions("Valid", "credential is valid")
            )

    async def _blocked(self, view: IdentityView, blocked: _Blocked, now: dt.datetime) -> None:
        """Nothing can be issued (invalid spec, identity missing or not Ready)."""
        self.scheduler.cancel(view.key)
        ready = condition(view.status, "Ready")
        if (
            ready is not None
            and ready.get("status") == "False"
            and ready.get("reason") == blocked.reason
            and ready.get("observedGeneration") == view.generation
        ):
            return
        await self._write_status(
            view,
            now,
            {},
            [
                Condition("Ready", False, blocked.reason, blocked.message),
                Condition("Issuing", False, blocked.reason, "nothing is minted"),
            ],
        )
        self.events.record(
            self._owner(view).event_reference(), "Warning", blocked.reason, blocked.message
        )

    async def _deny(self, view: IdentityView, message: str, now: dt.datetime) -> None:
        self.scheduler.cancel(view.key)
        denied = condition(view.status, "PolicyDenied")
        if (
            denied
            and denied.get("status") == "True"
            and denied.get("message") == message
            and denied.get("observedGeneration") == view.generation
        ):
            return
        self.metrics.policy_denials.labels(KIND).inc()
        await self._write_status(
            view,
            now,
            {},
            [
                Condition("Ready", False, "PolicyDenied", message),
                Condition(
                    "Issuing", False, "PolicyDenied", "nothing is minted while policy denies it"
                ),
                Condition("PolicyDenied", True, "PolicyDenied", message),
            ],
        )
        self.events.record(self._owner(view).event_reference(), "Warning", "PolicyDenied", message)

    # -- issuing -----------------------------------------------------------------------------

    async def _issue_token(
        self,
        view: IdentityView,
        spec: ScopedCredentialSpec,
        identity_spec: WorkloadIdentitySpec,
        subject: str,
        reason: ReissueReason,
    ) -> None:
        token_spec = spec.token
        assert token_spec is not None
        await self.bucket.acquire()
        started = time.perf_counter()
        now = self.clock.now()
        signer = self.signers.get(identity_spec.signer)
        claims = access_token_claims(
            self.config.jwt_issuer,
            subject,
            token_spec.audience,
            token_spec.scopes,
            subject,  # client_id: the workload is the OAuth client as well as the subject
            token_spec.ttl,
            now,
            new_jti(),
            dict(token_spec.claims),
        )
        signed = await signer.jwt.sign(claims, typ=JwtType.ACCESS_TOKEN)
        # New material is checked before it replaces anything (DESIGN.md §4).
        try:
            JwtVerifier(
                await signer.jwt.public_jwks(),
                audience=token_spec.audience,
                issuer=self.config.jwt_issuer,
                profile=TokenProfile.ACCESS_TOKEN,
            ).verify(signed.token, now)
        except WioError as err:
            raise SignerRejected(
                f"signer {identity_spec.signer} returned a token that does not verify"
            ) from err
        jti = str(claims["jti"])
        issued_at = dt.datetime.fromtimestamp(int(claims["iat"]), dt.UTC)
        expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
        renew = self._renewal(issued_at, expires)
        notes = {
            SOURCE_ANNOTATION: Source.TOKEN.value,
            f"{GROUP}/spiffe-id": subject,
            JTI_ANNOTATION: jti,
            EXPIRES_ANNOTATION: rfc3339(expires),
            f"{GROUP}/renew-at": rfc3339(renew),
            f"{GROUP}/spec-hash": spec.spec_hash(),
        }
        await self._write_secret(view, spec.secret_name, {TOKEN_KEY: signed.token.encode()}, notes)
        fields: dict[str, Any] = {"jti": jti}
        message = f"access token {jti} for {subject}, valid until {rfc3339(expires)}"
        await self._issued(
            view, spec, subject, reason, Source.TOKEN, fields, expires, renew, message, started
        )

    async def _read_secret(
        self, view: IdentityView, spec: ScopedCredentialSpec, subject: str, reason: ReissueReason
    ) -> None:
        assert spec.vault is not None
        assert self.vault is not None
        await self.bucket.acquire()
        started = time.perf_counter()
        secret = await self.vault.read(spec.vault.path)
        now = self.clock.now()
        expires = whole_seconds(now + secret.lease_duration)
        renew = self._renewal(whole_seconds(now), expires)
        notes = {
            SOURCE_ANNOTATION: Source.VAULT.value,
            f"{GROUP}/spiffe-id": subject,
            LEASE_ANNOTATION: secret.lease_id,
            EXPIRES_ANNOTATION: rfc3339(expires),
            f"{GROUP}/renew-at": rfc3339(renew),
            f"{GROUP}/spec-hash": spec.spec_hash(),
            f"{GROUP}/vault-path": spec.vault.path,
            KEYS_ANNOTATION: ",".join(sorted(secret.data)),
        }
        try:
            await self._write_secret(view, spec.secret_name, secret.data, notes)
        except BaseException:
            # Nobody will ever see these credentials: take them back rather than leave them
            # live until the lease runs out.
            await self._revoke_unused(secret)
            raise
        retired = self._retired_leases(view.status, now)
        fields: dict[str, Any] = {
            "leaseID": secret.lease_id,
            "leaseExpiresAt": rfc3339(expires),
            "leaseDuration": int(secret.lease_duration.total_seconds()),
            "leaseRenewable": secret.renewable,
            "retiredLeases": [
                {"leaseID": lease, "expiresAt": rfc3339(exp)} for lease, exp in retired.items()
            ]
            or None,
        }
        message = (
            f"read {spec.vault.path} for {subject}, lease valid until {rfc3339(expires)}"
            f" ({'renewable' if secret.renewable else 'not renewable'})"
        )
        await self._issued(
            view, spec, subject, reason, Source.VAULT, fields, expires, renew, message, started
        )

    async def _revoke_unused(self, secret: DynamicSecret) -> None:
        assert self.vault is not None
        try:
            await asyncio.wait_for(self.vault.revoke(secret.lease_id), UPSTREAM_REVOKE_TIMEOUT)
        except (WioError, TimeoutError) as err:
            log.warning("could not revoke an unused lease; it expires on its own: %s", err)

    def _retired_leases(
        self, status: Mapping[str, Any], now: dt.datetime
    ) -> dict[str, dt.datetime]:
        """Leases replaced so far and the one being replaced now, while they are live."""
        leases: dict[str, dt.datetime] = {}
        for item in status.get("retiredLeases") or []:
            if isinstance(item, Mapping):
                expires = parse_rfc3339(item.get("expiresAt"))
                if isinstance(item.get("leaseID"), str) and expires is not None:
                    leases[item["leaseID"]] = expires
        current, expires = status.get("leaseID"), parse_rfc3339(status.get("leaseExpiresAt"))
        if isinstance(current, str) and current and expires is not None:
            leases[current] = expires
        return live_leases(leases, now, MAX_RETIRED_LEASES)

    async def _renew_lease(
        self, view: IdentityView, spec: ScopedCredentialSpec, subject: str, reason: ReissueReason
    ) -> None:
        """Extend the current lease: the Secret's data stays, its expiry annotations move."""
        assert self.vault is not None
        lease_id = str(view.status.get("leaseID"))
        requested = dt.timedelta(seconds=int(view.status.get("leaseDuration") or 0))
        try:
            renewal = await self.vault.renew(lease_id, requested)
        except SignerRejected as err:
            # Gone, revoked or not renewable after all: a fresh read replaces it.
            log.info("renewing the lease of %s failed (%s); reading again", view.key, err)
            await self._read_secret(
                view, spec, subject, ReissueReason("LeaseNotRenewable", "Vault refused renewal")
            )
            return
        now = self.clock.now()
        if renewal.lease_duration <= dt.timedelta(0):
            await self._read_secret(
                view, spec, subject, ReissueReason("LeaseExhausted", "the lease cannot grow")
            )
            return
        expires = whole_seconds(now + renewal.lease_duration)
        renew = self._renewal(whole_seconds(now), expires)
        renewable = after_renewal(requested, renewal.lease_duration, renewal.renewable)
        written = await self.kube.merge_patch(
            secret_path(view.key.namespace, spec.secret_name),
            {
                "metadata": {
                    "annotations": {
                        EXPIRES_ANNOTATION: rfc3339(expires),
                        f"{GROUP}/renew-at": rfc3339(renew),
                    }
                }
            },
        )
        secret_key = ObjectKey(view.key.namespace, spec.secret_name)
        self.secret_written[secret_key] = (written.get("metadata") or {}).get("resourceVersion")
        facts = self.secret_facts.get(secret_key)
        if facts is not None:  # its echo is not judged again: record the new expiry here
            self.secret_facts[secret_key] = replace(facts, expires_at=expires)
        path = spec.vault.path if spec.vault else "the secret"
        message = f"renewed the lease of {path} until {rfc3339(expires)}"
        await self._write_status(
            view,
            now,
            {
                "leaseExpiresAt": rfc3339(expires),
                "expiresAt": rfc3339(expires),
                "renewalTime": rfc3339(renew),
                "leaseRenewable": renewable,
            },
            _ready_conditions("Renewed", message),
        )
        self._attempts.pop(view.key, None)
        self.metrics.rotations.labels("vault", "LeaseRenewed", "success").inc()
        self.scheduler.schedule(view.key, renew)
        log.info("renewed %s: %s", view.key, message)

    async def _write_secret(
        self,
        view: IdentityView,
        secret_name: str,
        data: Mapping[str, bytes],
        annotations: Mapping[str, str],
    ) -> None:
        manifest = scoped_secret_manifest(self._owner(view), secret_name, data, annotations)
        written = await self.kube.apply(secret_path(view.key.namespace, secret_name), manifest)
        secret_key = ObjectKey(view.key.namespace, secret_name)
        self.secret_written[secret_key] = (written.get("metadata") or {}).get("resourceVersion")
        self.secret_facts[secret_key] = credential_facts(
            Source(annotations[SOURCE_ANNOTATION]), view.key.name, data, annotations
        )

    async def _issued(
        self,
        view: IdentityView,
        spec: ScopedCredentialSpec,
        subject: str,
        reason: ReissueReason,
        source: Source,
        fields: dict[str, Any],
        expires: dt.datetime,
        renew: dt.datetime,
        message: str,
        started: float,
    ) -> None:
        """After the Secret write: the status patch, schedule, Event, metrics, log."""
        now = self.clock.now()
        first = not (view.status.get("jti") or view.status.get("leaseID"))
        rotations = int(view.status.get("rotations") or 0) + 1
        status = {
            **fields,
            "spiffeID": subject,
            "secretName": spec.secret_name,
            "specHash": spec.spec_hash(),
            "expiresAt": rfc3339(expires),
            "renewalTime": rfc3339(renew),
            "rotations": rotations,
        }
        if reason.reason == "ForcedRotation":
            status["lastForcedRotation"] = view.forced_request
        verb = "Issued" if first else "Rotated"
        text = message if first else f"{message} ({reason.reason}: {reason.message})"
        await self._write_status(view, now, status, _ready_conditions(verb, f"{verb} {text}"))
        self._attempts.pop(view.key, None)
        self.scheduler.schedule(view.key, renew)
        self.events.record(self._owner(view).event_reference(), "Normal", verb, f"{verb} {text}")
        self.metrics.issuance_seconds.labels(source.value).observe(time.perf_counter() - started)
        if first:
            self.metrics.issuances.labels(source.value, "success").inc()
        else:
            self.metrics.rotations.labels(source.value, reason.reason, "success").inc()
        log.info("%s %s: %s", verb.lower(), view.key, text)

    def _renewal(self, start: dt.datetime, end: dt.datetime) -> dt.datetime:
        return renewal_time(
            start, end, self.config.rotation_fraction, self.config.rotation_jitter, rng=self.rng
        )

    async def _failed(
        self,
        view: IdentityView,
        source: Source,
        err: WioError,
        now: dt.datetime,
        *,
        retryable: bool,
    ) -> None:
        attempts = self._attempts.setdefault(view.key, Attempts())
        expires = parse_rfc3339(view.status.get("expiresAt"))
        outcome = failure(err, attempts, expires, now, self.rng, retryable=retryable)
        if outcome.signer_problem:
            signer = "vault" if source is Source.VAULT else "jwt"
            self.metrics.signer_errors.labels(signer, type(err).__name__).inc()
        if view.status.get("jti") or view.status.get("leaseID"):
            self.metrics.rotations.labels(source.value, "Retry", "error").inc()
        else:
            self.metrics.issuances.labels(source.value, "error").inc()
        self.scheduler.schedule(view.key, outcome.retry_at)
        if outcome.event_reason:
            owner = self._owner(view).event_reference()
            self.events.record(owner, "Warning", outcome.event_reason, outcome.message)
        log.warning("issuing %s failed: %s", view.key, outcome.message)
        try:
            await self._write_status(view, now, {}, outcome.conditions)
        except WioError as status_err:
            log.warning("could not record the failure on %s: %s", view.key, status_err)

    async def _write_status(
        self,
        view: IdentityView,
        now: dt.datetime,
        fields: Mapping[str, Any],
        conditions: list[Condition],
    ) -> None:
        await write_status(self.kube, PLURAL, view, self.credentials, now, fields, conditions)

    def _owner(self, view: IdentityView) -> Owner:
        return Owner(KIND, view.key.namespace, view.key.name, view.uid)

    # -- revocation --------------------------------------------------------------------------

    async def finalize(self, body: Mapping[str, Any], reason: str = "Deleted") -> None:
        """Revoke on delete: revocations stored, leases revoked upstream, Secret gone."""
        view = IdentityView.from_body(body)
        async with self._lock(view.key):
            known = self.credentials.get(view.key)
            if known is not None and known.uid == view.uid:
                # Our own writes may be newer than the body Kopf holds.
                view.status = {**view.status, **known.status}
            self.forget(view.key)
            await self._revoke(view, reason)
        self._locks.pop(view.key, None)

    async def revoke_for_identity(self, identity: ObjectKey) -> None:
        """The WorkloadIdentity ``identity`` is being deleted: its credentials go with it."""
        for key in sorted(self.by_identity.get(identity, ())):
            async with self._lock(key):
                view = self.credentials.get(key)
                if view is None or not (view.status.get("jti") or view.status.get("leaseID")):
                    continue
                self.scheduler.cancel(key)
                await self._revoke(view, "IdentityDeleted")
                message = (
                    f"spec.identityRef: WorkloadIdentity {identity.name} was deleted; its "
                    "credential was revoked and nothing is minted until it exists again"
                )
                await self._write_status(
                    view,
                    self.clock.now(),
                    {
                        name: None
                        for name in (
                            "jti",
                            "leaseID",
                            "leaseExpiresAt",
                            "leaseDuration",
                            "leaseRenewable",
                            "retiredLeases",
                            "expiresAt",
                            "renewalTime",
                            "specHash",
                            "spiffeID",
                        )
                    },
                    [
                        Condition("Ready", False, "IdentityNotFound", message),
                        Condition("Issuing", False, "IdentityNotFound", "nothing is minted"),
                    ],
                )

    async def _revoke(self, view: IdentityView, reason: str) -> None:
        status = view.status
        now = self.clock.now()
        key = view.key
        secret_name = str(
            status.get("secretName")
            or view.spec.get("secretName")
            or f"{key.name}{CREDENTIAL_SECRET_SUFFIX}"
        )
        facts = self.secret_facts.get(ObjectKey(key.namespace, secret_name))
        subject = str(status.get("spiffeID") or "")
        is_vault = "vault" in view.spec or bool(status.get("leaseID"))
        kind = "lease" if is_vault else "token"
        # Everything this object may still have live: what status records, and what the
        # Secret holds (written just before a crash, before status could record it).
        live: dict[str, dt.datetime] = {}
        if is_vault:
            live.update(self._retired_leases(status, now))
        else:
            jti, expires = status.get("jti"), parse_rfc3339(status.get("expiresAt"))
            if isinstance(jti, str) and jti and expires is not None and expires > now:
                live[jti] = expires
        if (
            facts is not None
            and facts.credential_id
            and facts.credential_id not in live
            and facts.expires_at is not None
            and facts.expires_at > now
        ):
            live[facts.credential_id] = facts.expires_at
        pending: set[str] = set()
        if is_vault and live:
            results = await asyncio.gather(*(self._revoke_lease(lease) for lease in live))
            pending = {lease for lease, done in zip(live, results, strict=True) if not done}
        entries = [
            Revocation(
                kind=kind,
                id=credential_id,
                spiffe_id=subject,
                revoked_at=whole_seconds(now),
                expires_at=expires,
                reason=reason,
                upstream_pending=credential_id in pending,
            )
            for credential_id, expires in live.items()
        ]
        if entries:
            await self.revocations.add(entries)
        if pending:
            self._pending_wake.set()
        await self.kube.delete(secret_path(key.namespace, secret_name))
        self.secret_facts.pop(ObjectKey(key.namespace, secret_name), None)
        what = ", ".join(sorted(live)) if kind == "token" else f"{len(live)} lease(s)"
        message = (
            f"revoked {kind} {what or '(none live)'} of {subject or key}; "
            f"Secret {secret_name} deleted"
        )
        self.events.record(self._owner(view).event_reference(), "Normal", "Revoked", message)
        audit.info(
            "revoked",
            extra={
                "audit": {
                    "action": "revoke",
                    "kind": KIND,
                    "namespace": key.namespace,
                    "name": key.name,
                    "spiffeID": subject,
                    "credential": kind,
                    "ids": sorted(live),
                    "upstreamPending": sorted(pending),
                    "reason": reason,
                    "time": rfc3339(now),
                }
            },
        )
        self.metrics.revocations.labels(kind, "pending" if pending else "success").inc()
        log.info("revoked %s (%s): %s", key, reason, message)

    async def _revoke_lease(self, lease_id: str) -> bool:
        """True when Vault confirmed; False leaves it to the background retry."""
        if self.vault is None:
            return False
        try:
            await asyncio.wait_for(self.vault.revoke(lease_id), UPSTREAM_REVOKE_TIMEOUT)
        except (WioError, TimeoutError) as err:
            log.warning("lease revocation deferred: %s", err or "timed out")
            self.metrics.signer_errors.labels("vault", "RevokeFailed").inc()
            return False
        return True

    async def _retry_pending(self) -> None:
        """Revoke leases Vault did not confirm at delete time, until it does or they expire."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pending_wake.wait(), PENDING_RETRY_SECONDS)
            self._pending_wake.clear()
            now = self.clock.now()
            for entry in self.revocations.current.pending_upstream():
                if entry.kind != "lease":
                    continue
                if entry.expires_at <= now or await self._revoke_lease(entry.id):
                    try:
                        await self.revocations.mark_upstream_done("lease", entry.id)
                    except WioError as err:
                        log.warning("could not record a lease revocation: %s", err)


def scoped_secret_manifest(
    owner: Owner, secret_name: str, data: Mapping[str, bytes], annotations: Mapping[str, str]
) -> dict[str, Any]:
    """A ScopedCredential's Secret: ``Opaque``, owned by and labelled with the credential."""
    manifest = secret_manifest(owner, secret_name, data, annotations, secret_type="Opaque")  # noqa: S106
    manifest["metadata"]["labels"] = {MANAGED_BY: MANAGER, OWNER_LABEL: owner.name}
    return manifest


def _ready_conditions(reason: str, message: str) -> list[Condition]:
    return [
        Condition("Ready", True, reason, message),
        Condition("Issuing", False, "Idle", "no issuance in progress"),
        Condition("SignerAvailable", True, "Available", "the signer answered"),
        Condition("PolicyDenied", False, "Allowed", "an IdentityPolicy allows this credential"),
    ]
