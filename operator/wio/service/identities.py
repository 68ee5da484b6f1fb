# SPDX-License-Identifier: Apache-2.0
"""WorkloadIdentity: what the controller core (``wio.service.controller``) needs of this kind.

- **subject**: ``spiffe://<trust-domain>/ns/<namespace>/sa/<spec.serviceAccountName>``, from
  spec and namespace only;
- **policy**: ``evaluate_identity`` over the IdentityPolicies matching the namespace;
- **chain**: ``wio.policy.reconcile`` (not issued, Secret moved, missing, damaged, adoptable,
  replaced, distrusted issuer, unpublished JWT key, spec changed, forced, expired, due);
- **act**: a full issuance (a fresh key, the signer's certificate validated before it replaces
  anything, a JWT-SVID when asked, ONE Secret write and ONE status patch); a JWT-SVID-only
  refresh (one Secret patch, one status patch); or adoption of a credential written just
  before a crash (status only);
- **revoke**: the certificate's serial (upstream too, where the signer revokes) and the
  JWT-SVID's ``jti``, current and any still-valid one the Secret holds.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from wio.backends.protocols import JwtType, SvidRequest
from wio.clock import parse_rfc3339, rfc3339
from wio.errors import ValidationError
from wio.issuing.jwt import jwt_svid_claims, new_jti
from wio.issuing.keys import generate_private_key
from wio.issuing.verify_x509 import verify_svid
from wio.issuing.x509svid import X509SVID
from wio.metrics import CredentialTiming
from wio.models.keytypes import KeyType
from wio.models.resources import WorkloadIdentitySpec, default_identity_secret_name
from wio.models.spiffe import SpiffeID
from wio.names import IDENTITY_OWNER_LABEL, WORKLOAD_IDENTITIES, WORKLOAD_IDENTITY
from wio.policy.checks import FORCED_ROTATION
from wio.policy.identity_policy import evaluate_identity
from wio.policy.reconcile import (
    ADOPT,
    TOKEN_ONLY,
    IdentityState,
    SecretFacts,
    issued_anchor,
    next_due,
    reissue_reason,
    secret_facts,
)
from wio.policy.rotation import ReissueReason
from wio.service import identity_secret, readiness
from wio.service.bodies import secret_manifest
from wio.service.controller import CredentialController
from wio.service.kind import (
    Blocked,
    Collaborators,
    Live,
    retired_credentials,
    retired_status,
    timing_of,
)
from wio.service.views import ObjectKey, ObjectView, decode_secret_data

log = logging.getLogger(__name__)

#: Called with an identity's key and the reason while its credential is revoked (its finalizer
#: runs, or its policy was withdrawn): what was issued on the identity's behalf (its
#: ScopedCredentials) is revoked with it.
DependentsHook = Callable[[ObjectKey, str], Awaitable[None]]


class IdentityController(
    CredentialController[WorkloadIdentitySpec, SpiffeID, IdentityState, SecretFacts]
):
    kind = WORKLOAD_IDENTITY
    plural = WORKLOAD_IDENTITIES
    owner_label = IDENTITY_OWNER_LABEL
    readiness = readiness.IDENTITY
    credential_fields = (
        *("serialNumber", "keyFingerprint", "notBefore", "notAfter", "renewalTime", "specHash"),
        *("jwtExpiresAt", "jwtRenewalTime", "jwtID", "secretName", "retiredCredentials"),
    )
    list_secret_metadata = True

    def __init__(self, parts: Collaborators, *, dependents: DependentsHook | None = None) -> None:
        super().__init__(parts, parts.cache.identities, parts.cache.identity_secrets)
        self._dependents = dependents

    # -- reading -------------------------------------------------------------------------------

    def parse(self, view: ObjectView) -> WorkloadIdentitySpec:
        return WorkloadIdentitySpec.parse(view.key.name, view.spec)

    def default_secret_name(self, name: str) -> str:
        return default_identity_secret_name(name)

    def gate(self, view: ObjectView, spec: WorkloadIdentitySpec) -> SpiffeID | Blocked:
        return SpiffeID.for_workload(
            self.config.trust_domain, view.key.namespace, spec.service_account
        )

    def policy(self, view: ObjectView, spec: WorkloadIdentitySpec, subject: SpiffeID) -> str | None:
        namespace = view.key.namespace
        decision = evaluate_identity(
            spec,
            namespace,
            self.cache.namespace_labels.get(namespace, {}),
            list(self.cache.policies.values()),
            self.parts.policy_defaults,
        )
        return None if decision.allowed else decision.message

    def gather(
        self, view: ObjectView, spec: WorkloadIdentitySpec, subject: SpiffeID, now: dt.datetime
    ) -> IdentityState:
        status = view.status
        return IdentityState(
            now=now,
            expected_spiffe_id=str(subject),
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
            revoke_request=view.revoke_request,
            revoke_ack=status.get("lastRevocation") or None,
            secrets_synced=self.secrets.synced,
            secret=self.secrets.get(view.key.namespace, spec.secret_name),
            trusted_anchors=self.signers.trusted_anchors(),
            published_kids=self.signers.published_kids(),
        )

    def chain(self, state: IdentityState) -> ReissueReason | None:
        return reissue_reason(state)

    def next_due(self, state: IdentityState) -> dt.datetime | None:
        return next_due(state)

    def judge_secret(self, owner: str, body: Mapping[str, Any]) -> SecretFacts:
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        return secret_facts(
            decode_secret_data(body), self.signers.cached_trust_bundle(), annotations
        )

    def facts_from_metadata(self, owner: str, annotations: Mapping[str, str]) -> SecretFacts:
        return identity_secret.recorded_facts(annotations)

    def urgency(self, body: Mapping[str, Any]) -> str:
        return str((body.get("status") or {}).get("notAfter") or "")

    def issued_before(self, view: ObjectView) -> bool:
        return bool(view.status.get("serialNumber"))

    def valid_until(self, view: ObjectView) -> dt.datetime | None:
        return parse_rfc3339(view.status.get("notAfter"))

    def failure_labels(self, view: ObjectView, spec: WorkloadIdentitySpec) -> tuple[str, str]:
        return spec.signer, "x509"

    # -- metrics hooks -------------------------------------------------------------------------

    def on_settled(self, view: ObjectView, state: IdentityState) -> None:
        self.parts.trust.ensure(view.key.namespace)

    def timings(self, view: ObjectView) -> Iterator[CredentialTiming]:
        for kind, expires, renews in (
            ("x509", "notAfter", "renewalTime"),
            ("jwt", "jwtExpiresAt", "jwtRenewalTime"),
        ):
            found = timing_of(view, kind, expires, renews)
            if found is not None:
                yield found

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

    # -- acting --------------------------------------------------------------------------------

    async def act(
        self,
        view: ObjectView,
        spec: WorkloadIdentitySpec,
        subject: SpiffeID,
        state: IdentityState,
        reason: ReissueReason,
    ) -> None:
        if reason.reason == ADOPT and state.secret is not None:
            await self._adopt(view, spec.secret_name, state.secret, reason)
        elif reason.reason in TOKEN_ONLY:
            await self._refresh_token(view, spec, subject, reason)
        else:
            await self._issue(view, spec, subject, reason)

    async def _issue(
        self,
        view: ObjectView,
        spec: WorkloadIdentitySpec,
        spiffe_id: SpiffeID,
        reason: ReissueReason,
    ) -> None:
        now = await self.issuance_slot()
        started = time.perf_counter()
        signer = self.signers.get(spec.signer)
        key = await _new_key(spec.x509.key_type)
        request = SvidRequest.for_key(
            key,
            spiffe_id,
            ttl=spec.x509.ttl,
            now=now,
            dns_names=spec.x509.dns_names,
            with_csr=signer.x509_needs_csr,
        )
        svid = X509SVID(await signer.x509.issue(request), key)
        bundle = await self.signers.trust_bundle()
        _validate(svid, spiffe_id, bundle, self.config.trust_domain.name, spec.x509.ttl, now)
        token = token_exp = token_renew = jti = kid = None
        if spec.jwt is not None:
            claims = jwt_svid_claims(
                str(spiffe_id), spec.jwt.audiences, spec.jwt.ttl, now, new_jti()
            )
            signed = await signer.jwt.sign(claims, typ=JwtType.JWT_SVID)
            token, jti, kid = signed.token, str(claims["jti"]), signed.kid
            token_exp = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
            token_renew = self.renewal(now, token_exp)
        issued = identity_secret.IssuedIdentity(
            svid=svid,
            ca_bundle_pem=await self.signers.trust_bundle_pem(),
            spiffe_bundle_json=await self.parts.trust.documents.spiffe_bundle_json(),
            trust_domain=self.config.trust_domain.name,
            spec_hash=spec.spec_hash(),
            # From issuedAt, not from the notBefore that is backdated for clock skew.
            renewal_time=self.renewal(now, svid.not_after),
            token=token,
            token_expires_at=token_exp,
            token_renewal_time=token_renew,
            token_id=jti,
            token_kid=kid,
            forced_ack=view.forced_request if reason.reason == FORCED_ROTATION else None,
            rotations=self.rotations(view),
        )
        data, notes = identity_secret.encode(issued)
        namespace = view.key.namespace
        anchor = issued_anchor((svid.cert, *svid.chain), bundle)
        await self.write_secret(
            view,
            spec.secret_name,
            secret_manifest(self.owner(view), spec.secret_name, data, notes, self.owner_label),
            identity_secret.written_facts(issued, notes, anchor),
        )
        self.parts.trust.ensure(namespace)
        message = f"{spiffe_id} serial {svid.serial_hex}, valid until {rfc3339(svid.not_after)}"
        due = min(t for t in (issued.renewal_time, token_renew) if t is not None)
        await self.record_issuance(
            view,
            reason,
            source="x509",
            message=message,
            fields=identity_secret.issued_status(issued, secret_name=spec.secret_name),
            due=due,
            started=started,
        )

    async def _adopt(
        self, view: ObjectView, secret_name: str, facts: SecretFacts, reason: ReissueReason
    ) -> None:
        """Record what the Secret already holds (written just before a crash): status only."""
        status = identity_secret.adopted_status(facts, secret_name=secret_name)
        await self.write_status(
            view, self.clock.now(), status, self.readiness.issued("Adopted", reason.message)
        )
        self.succeeded(view)
        log.info("adopted %s: %s", view.key, reason.message)
        renewal = parse_rfc3339(status["renewalTime"])
        token_renewal = parse_rfc3339(status["jwtRenewalTime"])
        due = min((t for t in (renewal, token_renewal) if t is not None), default=None)
        if due is not None:
            self.scheduler.schedule(view.key, due)

    async def _refresh_token(
        self,
        view: ObjectView,
        spec: WorkloadIdentitySpec,
        spiffe_id: SpiffeID,
        reason: ReissueReason,
    ) -> None:
        """Only the JWT-SVID is due: one Secret patch and one status patch."""
        assert spec.jwt is not None
        now = await self.issuance_slot()
        signer = self.signers.get(spec.signer)
        claims = jwt_svid_claims(str(spiffe_id), spec.jwt.audiences, spec.jwt.ttl, now, new_jti())
        signed = await signer.jwt.sign(claims, typ=JwtType.JWT_SVID)
        exp = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
        renew = self.renewal(now, exp)
        data, notes, status = identity_secret.token_refresh(
            signed.token, str(claims["jti"]), exp, renew
        )
        facts = self.secrets.get(view.key.namespace, spec.secret_name)
        if facts is None:  # nothing to refresh in place (the chain sees a missing Secret first)
            await self._issue(view, spec, spiffe_id, reason)
            return
        await self.patch_secret(
            view,
            spec.secret_name,
            {
                "metadata": {"annotations": notes},
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
            },
            replace(facts, token_kid=signed.kid, annotations={**facts.annotations, **notes}),
        )
        # The JWT-SVID it replaces stays valid until it expires: listed with the earlier ones.
        earlier = [*retired_credentials(view.status, now), *self._recorded_token(view, now)]
        status = {**status, "retiredCredentials": retired_status(earlier, now)}
        await self.write_status(view, now, status, [])
        self.metrics.rotations.labels("jwt", reason.reason, "success").inc()
        self.audit_issuance(view, False, reason, [str(claims["jti"])])
        renewal = parse_rfc3339(view.status.get("renewalTime"))
        self.scheduler.schedule(view.key, min(t for t in (renewal, renew) if t is not None))

    # -- revocation ----------------------------------------------------------------------------

    async def before_revoke(self, view: ObjectView, reason: str) -> None:
        if self._dependents is not None:
            await self._dependents(view.key, reason)

    def recorded_credentials(self, view: ObjectView, now: dt.datetime) -> list[Live]:
        status = view.status
        live: list[Live] = []
        serial = status.get("serialNumber")
        not_after = parse_rfc3339(status.get("notAfter"))
        if serial and not_after and not_after > now:
            fingerprint = status.get("keyFingerprint")
            live.append(Live("x509", str(serial), not_after, fingerprint, self._signer_of(view)))
        live += self._recorded_token(view, now)
        return live

    def _recorded_token(self, view: ObjectView, now: dt.datetime) -> list[Live]:
        jti = view.status.get("jwtID")
        jwt_exp = parse_rfc3339(view.status.get("jwtExpiresAt"))
        return [Live("jwt", str(jti), jwt_exp)] if jti and jwt_exp and jwt_exp > now else []

    def live_credentials(self, view: ObjectView, now: dt.datetime) -> list[Live]:
        """The current certificate and JWT-SVID, the earlier generations still valid, and
        what its own Secret holds (written just before a crash, or status patched by someone
        else: status alone must not decide what is revoked)."""
        signer = self._signer_of(view)
        found = [
            *self.recorded_credentials(view, now),
            *(
                replace(item, signer=signer) if item.kind == "x509" else item
                for item in retired_credentials(view.status, now)
            ),
        ]
        for name in self.own_secret_names(view):
            facts = self.secrets.get(view.key.namespace, name)
            if facts is not None:
                found += identity_secret.held_credentials(facts, signer, now)
        return list({(item.kind, item.id): item for item in found}.values())

    def _signer_of(self, view: ObjectView) -> str:
        return str(view.spec.get("signer") or "default")

    def subject_of(self, view: ObjectView) -> str:
        try:
            return str(self.gate(view, self.parse(view)))
        except ValidationError:
            return ""

    def revocation_report(
        self, view: ObjectView, subject: str, live: Sequence[Live], pending: set[str]
    ) -> tuple[str, tuple[str, str]]:
        serials = sorted(item.id for item in live if item.kind == "x509")
        message = f"revoked {subject or view.key} serial {', '.join(serials) or '-'}"
        return message, ("x509", "pending" if pending else "success")


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
    """New material must be right before it replaces anything: chain, SAN, lifetime."""
    verify_svid([svid.cert, *svid.chain], bundle, trust_domain, now)
    if str(svid.spiffe_id) != str(spiffe_id):
        raise ValidationError("certificate", "the signer returned another SPIFFE ID")
    lifetime = svid.not_after - now
    if lifetime > ttl + dt.timedelta(minutes=1):
        raise ValidationError("certificate", "the signer returned a longer lifetime than asked")
