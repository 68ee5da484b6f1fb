# SPDX-License-Identifier: Apache-2.0
"""WorkloadIdentity reconciliation: observe → decide → sign → write → status.

Watches feed ``observe_*``; every change queues the object's key on one work queue, and one
due-time scheduler queues it again when its stored renewal time arrives. A worker then:

1. reads the compact view the watches delivered (no API read);
2. parses the spec and evaluates IdentityPolicy (a denial mints nothing);
3. runs the reissue checks (``wio.policy.reconcile``); with no reason it only reschedules;
4. otherwise, under the issuance rate limit: a fresh key, a signature from the named signer,
   validation of the new material, then ONE Secret write (server-side apply) and ONE status
   patch; an Event and metrics follow.

Failures never touch the existing Secret: a signer or API failure backs off exponentially
with jitter, capped below a tenth of the remaining validity, while ``SignerAvailable=False``
says why and ``Ready`` stays True as long as the old credential is valid.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from wio.backends.protocols import JwtType, SvidRequest
from wio.clock import Clock, parse_rfc3339, rfc3339, whole_seconds
from wio.config import AdminConfig
from wio.errors import (
    PermanentError,
    RetryableError,
    ValidationError,
    WioError,
)
from wio.issuing.jwt import jwt_svid_claims, new_jti
from wio.issuing.keys import KeyType, generate_private_key
from wio.issuing.verify_x509 import verify_svid
from wio.issuing.x509svid import X509SVID
from wio.k8s.client import KubeClient, custom_path, list_watched, secret_path
from wio.k8s.events import EventRecorder
from wio.metrics import Metrics
from wio.models.resources import IdentityPolicy, WorkloadIdentitySpec
from wio.models.revocation import Revocation
from wio.models.spiffe import SpiffeID
from wio.policy.identity_policy import Decision, PolicyDefaults, evaluate_identity
from wio.policy.reconcile import (
    ADOPT,
    DRIFT_REASONS,
    DRIFT_WINDOW,
    TOKEN_ONLY,
    IdentityState,
    SecretFacts,
    drift_repairs_exhausted,
    facts_from_annotations,
    issued_anchor,
    next_due,
    reissue_reason,
    secret_facts,
)
from wio.policy.rotation import ReissueReason, renewal_time
from wio.service.bodies import (
    GROUP,
    MANAGED_BY,
    MANAGER,
    Condition,
    IssuedIdentity,
    Owner,
    condition,
    identity_annotations,
    identity_secret_data,
    issued_status,
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
from wio.service.revocations import RevocationStore
from wio.service.signers import SignerSet
from wio.service.trust import TrustPublisher
from wio.service.views import (
    IdentityView,
    ObjectKey,
    SecretIndex,
    decode_secret_data,
    last_foreign_writer,
    owner_key,
)
from wio.service.workqueue import DueScheduler, TokenBucket, WorkQueue

log = logging.getLogger(__name__)
audit = logging.getLogger("wio.audit")

KIND = "WorkloadIdentity"
PLURAL = "workloadidentities"
#: Called with an identity's key while its finalizer runs, before it lets go: what was issued
#: on the identity's behalf (its ScopedCredentials) is revoked with it.
DependentsHook = Callable[[ObjectKey], Awaitable[None]]


@dataclass
class IdentityService:
    config: AdminConfig
    kube: KubeClient
    signers: SignerSet
    trust: TrustPublisher
    revocations: RevocationStore
    events: EventRecorder
    metrics: Metrics
    clock: Clock
    rng: random.Random = field(default_factory=random.Random)
    dependents: list[DependentsHook] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.identities: dict[ObjectKey, IdentityView] = {}
        self.secrets = SecretIndex()
        self.policies: dict[str, IdentityPolicy] = {}
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self.defaults = PolicyDefaults.from_config(self.config)
        self.queue: WorkQueue[ObjectKey] = WorkQueue(
            self._reconcile_safely, workers=self.config.max_inflight_writes
        )
        self.scheduler: DueScheduler[ObjectKey] = DueScheduler(self.queue.add, self.clock)
        self.bucket = TokenBucket(self.config.issuance_rate, self.config.issuance_burst)
        self._attempts: dict[ObjectKey, Attempts] = {}
        self._drift_repairs: dict[ObjectKey, list[dt.datetime]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Seed the views with one LIST each, then start the scheduler and the workers.

        Listing Secrets before the first decision matters: without it a restart would see
        every Secret as missing and re-mint valid credentials.
        """
        for body in await self.kube.list("/api/v1/namespaces"):
            self.observe_namespace(body)
        for body in await self.kube.list(custom_path("identitypolicies", None)):
            self.observe_policy(body)
        # Metadata only: which Secrets exist and what wio recorded on them. Their content is
        # checked when the Secret watch delivers them, right after; listing the data here too
        # would hold every Secret in memory twice at start-up.
        for body in await list_watched(
            self.kube,
            self.config.watch_namespaces,
            secret_path,
            f"{MANAGED_BY}={MANAGER}",
            metadata_only=True,
        ):
            self.observe_secret_metadata(body)
        self.secrets.synced = True
        items = await list_watched(
            self.kube, self.config.watch_namespaces, lambda ns: custom_path(PLURAL, ns)
        )
        # Every identity is looked at once after a start (a Secret may have gone while wio was
        # down), earliest expiry first: after downtime the most urgent rotations go out first.
        items.sort(key=lambda b: (b.get("status") or {}).get("notAfter") or "")
        for body in items:
            view = IdentityView.from_body(body)
            self.identities[view.key] = view
            self.scheduler.schedule(view.key, self.clock.now() - dt.timedelta(days=1))
        self.scheduler.start()
        self.queue.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.queue.stop()

    # -- watch events ------------------------------------------------------------------------

    def observe_identity(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        view = IdentityView.from_body(body)
        if deleted:
            self.forget(view.key)
            return
        previous = self.identities.get(view.key)
        accept_event(previous, view)
        self.identities[view.key] = view
        # Our own status writes come back as events; only a change of what we act on queues.
        if wants_work(previous, view):
            self.queue.add(view.key)

    def forget(self, key: ObjectKey) -> None:
        self.identities.pop(key, None)
        self.scheduler.cancel(key)
        self._attempts.pop(key, None)
        self._drift_repairs.pop(key, None)
        self.metrics.forget_identity(key.namespace, key.name)

    def observe_secret(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        meta = body.get("metadata") or {}
        key = ObjectKey(meta.get("namespace", ""), meta.get("name", ""))
        owner = owner_key(body)
        if owner is None:
            return  # a wio Secret that is not an identity's (the local signer's state, say)
        version = meta.get("resourceVersion")
        if deleted:
            self.secrets.facts.pop(key, None)
            self.secrets.written.pop(key, None)
        elif older(version, self.secrets.written.get(key)):
            return  # an event from before our own last write of this Secret
        elif version and version == self.secrets.written.get(key) and key in self.secrets.facts:
            return  # the echo of our own write: the facts were recorded when we wrote it
        else:
            data = decode_secret_data(body)
            trusted = self.signers.cached_trust_bundle()
            annotations = meta.get("annotations") or {}
            self.secrets.facts[key] = secret_facts(data, trusted, self.clock.now(), annotations)
            writer = last_foreign_writer(meta.get("managedFields") or [])
            if writer:
                self.secrets.foreign_writers[key] = writer
        if owner in self.identities:
            self.queue.add(owner)

    def observe_secret_metadata(self, body: Mapping[str, Any]) -> None:
        """A Secret known only by its metadata (start-up): trust wio's own annotations until
        the watch delivers the content and it is checked."""
        meta = body.get("metadata") or {}
        if owner_key(body) is None:
            return
        key = ObjectKey(meta.get("namespace", ""), meta.get("name", ""))
        if key not in self.secrets.facts:
            self.secrets.facts[key] = facts_from_annotations(meta.get("annotations") or {})

    def observe_policy(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        name = (body.get("metadata") or {}).get("name", "")
        if deleted:
            self.policies.pop(name, None)
        else:
            try:
                self.policies[name] = IdentityPolicy.parse(name, body.get("spec") or {})
            except ValidationError as err:
                log.warning("IdentityPolicy %s ignored: %s", name, err)
                self.policies.pop(name, None)
        self._requeue_all()

    def observe_namespace(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        meta = body.get("metadata") or {}
        name = meta.get("name", "")
        labels = dict(meta.get("labels") or {})
        if deleted:
            self.namespace_labels.pop(name, None)
            return
        if self.namespace_labels.get(name) != labels:
            self.namespace_labels[name] = labels
            for key in self.identities:
                if key.namespace == name:
                    self.queue.add(key)

    def _requeue_all(self) -> None:
        for key in self.identities:
            self.queue.add(key)

    def signers_changed(self) -> None:
        """A CA or JWT key left the trust bundle (distrusted): decide every identity again, so
        each credential it signed is re-issued, at the issuance rate limit."""
        self._requeue_all()

    def untrusted_count(self) -> int:
        """Identity Secrets still holding a certificate or JWT-SVID whose signer is no longer
        trusted (the progress of an emergency re-issue)."""
        anchors, kids = self.signers.trusted_anchors(), self.signers.published_kids()
        return sum(
            1
            for f in self.secrets.facts.values()
            if (anchors and f.anchor is not None and f.anchor not in anchors)
            or (kids and f.token_kid is not None and f.token_kid not in kids)
        )

    # -- reconciliation ----------------------------------------------------------------------

    async def _reconcile_safely(self, key: ObjectKey) -> None:
        self.metrics.queue_depth.set(len(self.queue))
        try:
            await self.reconcile(key)
        finally:
            self.metrics.scheduled.set(len(self.scheduler))

    async def reconcile(self, key: ObjectKey) -> None:
        view = self.identities.get(key)
        if view is None or view.deleting or not view.guarded:
            return  # deleted, or Kopf has not yet added our finalizer (its event requeues)
        now = self.clock.now()
        try:
            spec = WorkloadIdentitySpec.parse(key.name, view.spec)
        except ValidationError as err:
            await self._write_conditions(
                view,
                now,
                [
                    Condition("Ready", False, "InvalidSpec", str(err)),
                    Condition("Issuing", False, "InvalidSpec", str(err)),
                ],
            )
            return
        decision = evaluate_identity(
            spec,
            key.namespace,
            self.namespace_labels.get(key.namespace, {}),
            list(self.policies.values()),
            self.defaults,
        )
        if not decision.allowed:
            await self._deny(view, decision, now)
            return
        state = self._state(view, spec, now)
        reason = reissue_reason(state)
        if reason is None:
            await self._settle(view, state, now)
            return
        if reason.reason == ADOPT and state.secret is not None:
            await self._adopt(view, state.secret, reason, now)
            return
        if reason.reason in DRIFT_REASONS and await self._contested(view, spec, reason, now):
            return
        try:
            if reason.reason in TOKEN_ONLY:
                await self._refresh_token(view, spec, reason, now)
            else:
                await self._issue(view, spec, reason, now)
        except RetryableError as err:
            await self._failed(view, spec, err, now, retryable=True)
        except PermanentError as err:
            await self._failed(view, spec, err, now, retryable=False)

    async def _contested(
        self,
        view: IdentityView,
        spec: WorkloadIdentitySpec,
        reason: ReissueReason,
        now: dt.datetime,
    ) -> bool:
        """Count a repair of someone else's change; past the hourly budget, stop and say who."""
        repairs = self._drift_repairs.setdefault(view.key, [])
        resume = drift_repairs_exhausted(repairs, now)
        if resume is None:
            repairs[:] = [t for t in repairs if now - t < DRIFT_WINDOW] + [now]
            return False
        writer = self.secrets.foreign_writers.get(ObjectKey(view.key.namespace, spec.secret_name))
        who = f"{writer!r}" if writer else "another writer"
        message = (
            f"Secret {spec.secret_name} keeps being changed by {who} ({reason.reason}): wio "
            f"repaired it {len(repairs)} times in the last hour and waits until {rfc3339(resume)}"
        )
        self.scheduler.schedule(view.key, resume)
        if (condition(view.status, "Issuing") or {}).get("reason") != "ConflictingWriter":
            self.events.record(
                self._owner(view).event_reference(), "Warning", "ConflictingWriter", message
            )
            log.warning("%s: %s", view.key, message)
            await self._write_conditions(
                view, now, [Condition("Issuing", False, "ConflictingWriter", message)]
            )
        return True

    def _spiffe_id(self, namespace: str, spec: WorkloadIdentitySpec) -> SpiffeID:
        return SpiffeID.for_workload(self.config.trust_domain, namespace, spec.service_account)

    def _state(
        self, view: IdentityView, spec: WorkloadIdentitySpec, now: dt.datetime
    ) -> IdentityState:
        status = view.status
        return IdentityState(
            now=now,
            expected_spiffe_id=str(self._spiffe_id(view.key.namespace, spec)),
            spec_hash=spec.spec_hash(),
            secret_name=spec.secret_name,
            wants_token=spec.jwt is not None,
            stored_serial=status.get("serialNumber") or None,
            stored_spec_hash=status.get("specHash") or None,
            stored_secret_name=status.get("secretName") or None,
            not_after=parse_rfc3339(status.get("notAfter")),
            renewal_time=parse_rfc3339(status.get("renewalTime")),
            token_renewal_time=parse_rfc3339(status.get("jwtRenewalTime")),
            forced_request=view.forced_request,
            forced_ack=status.get("lastForcedRotation") or None,
            secrets_synced=self.secrets.synced,
            secret=self.secrets.get(view.key.namespace, spec.secret_name),
            trusted_anchors=self.signers.trusted_anchors(),
            published_kids=self.signers.published_kids(),
        )

    async def _settle(self, view: IdentityView, state: IdentityState, now: dt.datetime) -> None:
        """Nothing to issue: make sure status says Ready, and wake up at the next due time."""
        due = next_due(state)
        if due is not None:
            self.scheduler.schedule(view.key, due)
        self._attempts.pop(view.key, None)
        ready = condition(view.status, "Ready")
        if (
            ready is None
            or ready.get("status") != "True"
            or ready.get("observedGeneration") != view.generation
            or (condition(view.status, "PolicyDenied") or {}).get("status") == "True"
        ):
            await self._write_conditions(
                view, now, _ready_conditions("Issued", "credential is valid")
            )
        self.trust.ensure(view.key.namespace)
        if state.not_after and state.renewal_time:
            self.metrics.set_identity(
                view.key.namespace,
                view.key.name,
                not_after=state.not_after,
                renewal=state.renewal_time,
                ready=True,
            )

    async def _deny(self, view: IdentityView, decision: Decision, now: dt.datetime) -> None:
        self.scheduler.cancel(view.key)
        denied = condition(view.status, "PolicyDenied")
        if (
            denied
            and denied.get("status") == "True"
            and denied.get("message") == decision.message
            and denied.get("observedGeneration") == view.generation
        ):
            return
        self.metrics.policy_denials.labels(KIND).inc()
        self.metrics.set_ready(view.key.namespace, view.key.name, False)
        await self._write_conditions(
            view,
            now,
            [
                Condition("Ready", False, "PolicyDenied", decision.message),
                Condition(
                    "Issuing", False, "PolicyDenied", "nothing is minted while policy denies it"
                ),
                Condition("PolicyDenied", True, "PolicyDenied", decision.message),
            ],
        )
        self.events.record(
            self._owner(view).event_reference(), "Warning", "PolicyDenied", decision.message
        )

    # -- issuing -----------------------------------------------------------------------------

    async def _issue(
        self,
        view: IdentityView,
        spec: WorkloadIdentitySpec,
        reason: ReissueReason,
        now: dt.datetime,
    ) -> None:
        await self.bucket.acquire()
        started = time.perf_counter()
        now = self.clock.now()  # the bucket may have made us wait
        signer = self.signers.get(spec.signer)
        spiffe_id = self._spiffe_id(view.key.namespace, spec)
        key = await _new_key(spec.x509.key_type)
        request = SvidRequest.for_key(
            key,
            spiffe_id,
            ttl=spec.x509.ttl,
            now=now,
            dns_names=spec.x509.dns_names,
            with_csr=signer.x509_needs_csr,
        )
        issued = await signer.x509.issue(request)
        svid = X509SVID(issued, key)
        bundle = await self.signers.trust_bundle()
        _validate(svid, spiffe_id, bundle, self.config.trust_domain.name, spec.x509.ttl, now)
        token = token_exp = token_renew = None
        jti = kid = None
        if spec.jwt is not None:
            claims = jwt_svid_claims(
                str(spiffe_id), spec.jwt.audiences, spec.jwt.ttl, now, new_jti()
            )
            signed = await signer.jwt.sign(claims, typ=JwtType.JWT_SVID)
            token, jti, kid = signed.token, str(claims["jti"]), signed.kid
            token_exp = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
            token_renew = self._renewal(now, token_exp)
        material = IssuedIdentity(
            svid=svid,
            ca_bundle_pem=await self.signers.trust_bundle_pem(),
            spiffe_bundle_json=await self.trust.spiffe_bundle_json(),
            trust_domain=self.config.trust_domain.name,
            spec_hash=spec.spec_hash(),
            # From issuedAt, not from the notBefore that is backdated for clock skew.
            renewal_time=self._renewal(now, svid.not_after),
            token=token,
            token_expires_at=token_exp,
            token_renewal_time=token_renew,
            token_id=jti,
            forced_ack=view.forced_request if reason.reason == "ForcedRotation" else None,
            rotations=int(view.status.get("rotations") or 0)
            + (1 if view.status.get("serialNumber") else 0),
        )
        owner = self._owner(view)
        notes = identity_annotations(material)
        written = await self.kube.apply(
            secret_path(view.key.namespace, spec.secret_name),
            secret_manifest(owner, spec.secret_name, identity_secret_data(material), notes),
        )
        secret_key = ObjectKey(view.key.namespace, spec.secret_name)
        self.secrets.written[secret_key] = (written.get("metadata") or {}).get("resourceVersion")
        # What the Secret now holds, as the watch would judge it: its echo is not parsed again,
        # and a crash before the status patch below finds it adoptable.
        self.secrets.facts[secret_key] = SecretFacts(
            serial=svid.serial_hex,
            spiffe_id=str(spiffe_id),
            problem=None,
            has_token=token is not None,
            not_before=svid.not_before,
            not_after=svid.not_after,
            key_fingerprint=svid.key_fingerprint,
            annotations=notes,
            anchor=issued_anchor((svid.cert, *svid.chain), bundle),
            token_kid=kid,
        )
        first = not view.status.get("serialNumber")
        status = issued_status(material, secret_name=spec.secret_name)
        verb = "Issued" if first else "Rotated"
        message = (
            f"{verb} {spiffe_id} serial {svid.serial_hex}, valid until {rfc3339(svid.not_after)}"
            + ("" if first else f" ({reason.reason}: {reason.message})")
        )
        await self._write_status(view, now, status, _ready_conditions(verb, message))
        self._attempts.pop(view.key, None)
        self.trust.ensure(view.key.namespace)
        self.events.record(owner.event_reference(), "Normal", verb, message)
        elapsed = time.perf_counter() - started
        self.metrics.issuance_seconds.labels("x509").observe(elapsed)
        if first:
            self.metrics.issuances.labels("x509", "success").inc()
        else:
            self.metrics.rotations.labels("x509", reason.reason, "success").inc()
        self.metrics.set_identity(
            view.key.namespace,
            view.key.name,
            not_after=svid.not_after,
            renewal=material.renewal_time,
            ready=True,
        )
        due = min(t for t in (material.renewal_time, token_renew) if t is not None)
        self.scheduler.schedule(view.key, due)
        log.info("%s %s: %s", verb.lower(), view.key, message)

    async def _adopt(
        self, view: IdentityView, facts: SecretFacts, reason: ReissueReason, now: dt.datetime
    ) -> None:
        """Record what the Secret already holds (written just before a crash): status only."""
        notes = facts.annotations
        status = {
            "spiffeID": facts.spiffe_id,
            "secretName": self._state_secret_name(view),
            "serialNumber": facts.serial,
            "keyFingerprint": facts.key_fingerprint,
            "notBefore": rfc3339(facts.not_before) if facts.not_before else None,
            "notAfter": rfc3339(facts.not_after) if facts.not_after else None,
            "renewalTime": notes.get(f"{GROUP}/renew-at"),
            "specHash": notes.get(f"{GROUP}/spec-hash"),
            "jwtExpiresAt": notes.get(f"{GROUP}/jwt-expires-at"),
            "jwtRenewalTime": notes.get(f"{GROUP}/jwt-renew-at"),
            "jwtID": notes.get(f"{GROUP}/jwt-id"),
            "rotations": int(notes.get(f"{GROUP}/rotations") or 0),
        }
        if notes.get(f"{GROUP}/forced-rotation"):
            status["lastForcedRotation"] = notes[f"{GROUP}/forced-rotation"]
        await self._write_status(view, now, status, _ready_conditions("Adopted", reason.message))
        log.info("adopted %s: %s", view.key, reason.message)
        renewal = parse_rfc3339(status["renewalTime"])
        token_renewal = parse_rfc3339(status["jwtRenewalTime"])
        due = min((t for t in (renewal, token_renewal) if t is not None), default=None)
        if due is not None:
            self.scheduler.schedule(view.key, due)

    def _state_secret_name(self, view: IdentityView) -> str:
        return str(view.spec.get("secretName") or f"{view.key.name}-identity")

    async def _refresh_token(
        self,
        view: IdentityView,
        spec: WorkloadIdentitySpec,
        reason: ReissueReason,
        now: dt.datetime,
    ) -> None:
        """Only the JWT-SVID is due: one Secret patch and one status patch."""
        assert spec.jwt is not None
        await self.bucket.acquire()
        now = self.clock.now()
        signer = self.signers.get(spec.signer)
        spiffe_id = self._spiffe_id(view.key.namespace, spec)
        claims = jwt_svid_claims(str(spiffe_id), spec.jwt.audiences, spec.jwt.ttl, now, new_jti())
        signed = await signer.jwt.sign(claims, typ=JwtType.JWT_SVID)
        exp = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
        renew = self._renewal(now, exp)
        notes = {
            f"{GROUP}/jwt-expires-at": rfc3339(exp),
            f"{GROUP}/jwt-renew-at": rfc3339(renew),
            f"{GROUP}/jwt-id": str(claims["jti"]),
        }
        written = await self.kube.merge_patch(
            secret_path(view.key.namespace, spec.secret_name),
            {
                "metadata": {"annotations": notes},
                "data": {"token": base64.b64encode(signed.token.encode()).decode()},
            },
        )
        secret_key = ObjectKey(view.key.namespace, spec.secret_name)
        self.secrets.written[secret_key] = (written.get("metadata") or {}).get("resourceVersion")
        facts = self.secrets.facts.get(secret_key)
        if facts is not None:
            self.secrets.facts[secret_key] = replace(
                facts, token_kid=signed.kid, annotations={**facts.annotations, **notes}
            )
        status = {
            "jwtExpiresAt": rfc3339(exp),
            "jwtRenewalTime": rfc3339(renew),
            "jwtID": claims["jti"],
        }
        await self._write_status(view, now, status, [])
        self.metrics.rotations.labels("jwt", reason.reason, "success").inc()
        renewal = parse_rfc3339(view.status.get("renewalTime"))
        self.scheduler.schedule(view.key, min(t for t in (renewal, renew) if t is not None))

    def _renewal(self, not_before: dt.datetime, not_after: dt.datetime) -> dt.datetime:
        return renewal_time(
            not_before,
            not_after,
            self.config.rotation_fraction,
            self.config.rotation_jitter,
            rng=self.rng,
        )

    async def _failed(
        self,
        view: IdentityView,
        spec: WorkloadIdentitySpec,
        err: WioError,
        now: dt.datetime,
        *,
        retryable: bool,
    ) -> None:
        attempts = self._attempts.setdefault(view.key, Attempts())
        not_after = parse_rfc3339(view.status.get("notAfter"))
        outcome = failure(err, attempts, not_after, now, self.rng, retryable=retryable)
        if outcome.signer_problem:
            self.metrics.signer_errors.labels(spec.signer, type(err).__name__).inc()
        if view.status.get("serialNumber"):
            self.metrics.rotations.labels("x509", "Retry", "error").inc()
        else:
            self.metrics.issuances.labels("x509", "error").inc()
        if not_after is None or now >= not_after:
            self.metrics.set_ready(view.key.namespace, view.key.name, False)
        self.scheduler.schedule(view.key, outcome.retry_at)
        if outcome.event_reason:
            owner = self._owner(view).event_reference()
            self.events.record(owner, "Warning", outcome.event_reason, outcome.message)
        log.warning("issuing %s failed: %s", view.key, outcome.message)
        try:
            await self._write_conditions(view, now, outcome.conditions)
        except WioError as status_err:
            log.warning("could not record the failure on %s: %s", view.key, status_err)

    # -- status ------------------------------------------------------------------------------

    async def _write_conditions(
        self, view: IdentityView, now: dt.datetime, conditions: list[Condition]
    ) -> None:
        await self._write_status(view, now, {}, conditions)

    async def _write_status(
        self,
        view: IdentityView,
        now: dt.datetime,
        fields: dict[str, Any],
        conditions: list[Condition],
    ) -> None:
        await write_status(self.kube, PLURAL, view, self.identities, now, fields, conditions)

    def _owner(self, view: IdentityView) -> Owner:
        return Owner(KIND, view.key.namespace, view.key.name, view.uid)

    # -- revocation --------------------------------------------------------------------------

    async def finalize(self, body: Mapping[str, Any], reason: str = "Deleted") -> None:
        """Revoke on delete: Secret gone, revocation stored, upstream told, then let go."""
        view = IdentityView.from_body(body)
        self.forget(view.key)
        for revoke_dependents in self.dependents:
            await revoke_dependents(view.key)
        status = view.status
        secret_name = status.get("secretName") or (
            view.spec.get("secretName") or f"{view.key.name}-identity"
        )
        now = self.clock.now()
        await self.kube.delete(secret_path(view.key.namespace, secret_name))
        entries: list[Revocation] = []
        serial = status.get("serialNumber")
        not_after = parse_rfc3339(status.get("notAfter"))
        spiffe_id = status.get("spiffeID") or ""
        if serial and not_after and not_after > now:
            upstream = await self._revoke_upstream(view, serial)
            entries.append(
                Revocation(
                    kind="x509",
                    id=serial,
                    spiffe_id=spiffe_id,
                    revoked_at=whole_seconds(now),
                    expires_at=not_after,
                    reason=reason,
                    key_fingerprint=status.get("keyFingerprint"),
                    upstream_pending=not upstream,
                )
            )
        jti = status.get("jwtID")
        jwt_exp = parse_rfc3339(status.get("jwtExpiresAt"))
        if jti and jwt_exp and jwt_exp > now:
            entries.append(
                Revocation(
                    kind="jwt",
                    id=str(jti),
                    spiffe_id=spiffe_id,
                    revoked_at=whole_seconds(now),
                    expires_at=jwt_exp,
                    reason=reason,
                )
            )
        if entries:
            await self.revocations.add(entries)
        message = (
            f"revoked {spiffe_id or view.key} serial {serial or '-'}; Secret {secret_name} deleted"
        )
        self.events.record(self._owner(view).event_reference(), "Normal", "Revoked", message)
        audit.info(
            "revoked",
            extra={
                "audit": {
                    "action": "revoke",
                    "kind": KIND,
                    "namespace": view.key.namespace,
                    "name": view.key.name,
                    "spiffeID": spiffe_id,
                    "serial": serial,
                    "keyFingerprint": status.get("keyFingerprint"),
                    "jti": jti,
                    "reason": reason,
                    "time": rfc3339(now),
                }
            },
        )
        self.metrics.revocations.labels("x509", "success").inc()

    async def _revoke_upstream(self, view: IdentityView, serial: str) -> bool:
        """True when done or not applicable; False leaves it pending for a later retry."""
        signer_name = str(view.spec.get("signer") or "default")
        try:
            signer = self.signers.get(signer_name)
        except WioError:
            return True
        if not signer.x509_revokes:
            return True
        try:
            await asyncio.wait_for(signer.x509.revoke(serial), UPSTREAM_REVOKE_TIMEOUT)
        except (WioError, TimeoutError) as err:
            log.warning("upstream revocation of %s by %s deferred: %s", view.key, signer_name, err)
            self.metrics.signer_errors.labels(signer_name, "RevokeFailed").inc()
            return False
        return True


def _ready_conditions(reason: str, message: str) -> list[Condition]:
    return [
        Condition("Ready", True, reason, message),
        Condition("Issuing", False, "Idle", "no issuance in progress"),
        Condition("SignerAvailable", True, "Available", "the signer answered"),
        Condition(
            "PolicyDenied",
            False,
            "Allowed",
            "an IdentityPolicy or the defaults allow this identity",
        ),
    ]


async def _new_key(key_type: KeyType) -> Any:
    if key_type.is_rsa:
        # ~58 ms of CPU: off the event loop, so watches and other issuances keep flowing.
        return await asyncio.to_thread(generate_private_key, key_type)
    return generate_private_key(key_type)


def _validate(
    svid: X509SVID,
    spiffe_id: SpiffeID,
    bundle: list[Any],
    trust_domain: str,
    ttl: dt.timedelta,
    now: dt.datetime,
) -> None:
    """New material must be right before it replaces anything (DESIGN.md §4)."""
    verify_svid([svid.cert, *svid.chain], bundle, trust_domain, now)
    if str(svid.spiffe_id) != str(spiffe_id):
        raise ValidationError("certificate", "the signer returned another SPIFFE ID")
    lifetime = svid.not_after - now
    if lifetime > ttl + dt.timedelta(minutes=1):
        raise ValidationError("certificate", "the signer returned a longer lifetime than asked")
