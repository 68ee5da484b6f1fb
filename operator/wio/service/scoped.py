# SPDX-License-Identifier: Apache-2.0
"""ScopedCredential: what the controller core (``wio.service.controller``) needs of this kind.

- **gate**: the referenced WorkloadIdentity in the same namespace must exist and be Ready
  (read from the watched cache); its SPIFFE ID is the credential's subject;
- **policy**: ``evaluate_scoped`` over the IdentityPolicies matching the namespace (with no
  matching policy a credential is denied), then, for Vault, the admin's mounts;
- **chain**: ``wio.policy.scoped``;
- **act**, under the operator-wide issuance rate limit:
  - ``spec.token``: an RFC 9068 access token (``typ`` at+jwt) signed by the identity's signer.
    ``sub`` and ``client_id`` are the identity's SPIFFE ID (the workload is both the subject
    and the OAuth client), ``iss`` the admin's ``jwtIssuer``, ``aud``, ``scope`` and the extra
    claims as asked and allowed. The signed token is verified before it is written.
  - ``spec.vault``: a read of ``spec.vault.path``; the data keys go to the Secret. At half the
    lease the lease is renewed (the Secret's data stays); once Vault grants less than asked
    (the role's max TTL is near) or refuses, the secret is read again (``wio.service.leases``).
  then ONE Secret write (``Opaque``, labelled and owned by the ScopedCredential) and ONE
  status patch.
- **revoke**: the ``jti`` or every live lease (upstream too), on delete or when the
  WorkloadIdentity is deleted (``revoke_for_identity``, called by its finalizer). After an
  identity deletion the ScopedCredential itself stays, ``Ready=False`` with reason
  ``IdentityNotFound``, and issues again only if an identity of that name returns.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from wio.backends.protocols import JwtType
from wio.clock import parse_rfc3339, rfc3339, whole_seconds
from wio.errors import SignerRejected, ValidationError, WioError
from wio.issuing.jwt import access_token_claims, new_jti
from wio.issuing.verify_jwt import JwtVerifier, TokenProfile
from wio.k8s.client import secret_path
from wio.models.resources import (
    ScopedCredentialSpec,
    WorkloadIdentitySpec,
    default_credential_secret_name,
)
from wio.names import CREDENTIAL_OWNER_LABEL, SCOPED_CREDENTIAL, SCOPED_CREDENTIALS
from wio.policy.identity_policy import evaluate_scoped
from wio.policy.rotation import ReissueReason
from wio.policy.scoped import (
    CredentialFacts,
    CredentialState,
    LeaseAction,
    Source,
    after_renewal,
    lease_action,
    reissue_reason,
)
from wio.service import credential_secret, readiness
from wio.service.bodies import secret_manifest
from wio.service.controller import Blocked, Collaborators, CredentialController, Live
from wio.service.leases import LeaseRevoker, live_leases_of, retired_status
from wio.service.status import condition
from wio.service.views import ObjectKey, ObjectView, decode_secret_data

log = logging.getLogger(__name__)

#: Status fields that describe an issued credential; cleared when its identity is deleted.
CREDENTIAL_FIELDS = (
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


@dataclass(frozen=True)
class Subject:
    """The referenced identity: its spec (for the signer) and SPIFFE ID."""

    identity: WorkloadIdentitySpec
    spiffe_id: str


class ScopedCredentialController(
    CredentialController[ScopedCredentialSpec, Subject, CredentialState, CredentialFacts]
):
    kind = SCOPED_CREDENTIAL
    plural = SCOPED_CREDENTIALS
    owner_label = CREDENTIAL_OWNER_LABEL
    readiness = readiness.CREDENTIAL

    def __init__(self, parts: Collaborators, leases: LeaseRevoker) -> None:
        super().__init__(parts, parts.cache.credentials, parts.cache.credential_secrets)
        self.leases = leases
        self.by_identity: dict[ObjectKey, set[ObjectKey]] = {}

    async def start(self) -> None:
        await super().start()
        self.leases.start()

    async def stop(self) -> None:
        await self.leases.stop()
        await super().stop()

    # -- the identity index --------------------------------------------------------------------

    def on_observed(self, view: ObjectView) -> None:
        ref = view.spec.get("identityRef")
        if isinstance(ref, str):
            self.by_identity.setdefault(ObjectKey(view.key.namespace, ref), set()).add(view.key)

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

    def secret_name(self, spec: ScopedCredentialSpec) -> str:
        return spec.secret_name

    def recorded_secret_name(self, view: ObjectView) -> str:
        return str(
            view.status.get("secretName")
            or view.spec.get("secretName")
            or default_credential_secret_name(view.key.name)
        )

    def gate(self, view: ObjectView, spec: ScopedCredentialSpec) -> Subject | Blocked:
        """The referenced identity, Ready, with its spec and SPIFFE ID; or why not."""
        namespace, name = view.key.namespace, spec.identity_ref
        identity = self.cache.identities.get(ObjectKey(namespace, name))
        if identity is None or identity.deleting:
            return Blocked(
                "IdentityNotFound",
                f"spec.identityRef: WorkloadIdentity {name} does not exist in namespace "
                f"{namespace}; nothing is minted until it does and is Ready",
            )
        ready = condition(identity.status, "Ready")
        subject = identity.status.get("spiffeID")
        if ready is None or ready.get("status") != "True" or not isinstance(subject, str):
            return Blocked(
                "IdentityNotReady",
                f"spec.identityRef: WorkloadIdentity {name} is not Ready; nothing is minted "
                "until it is",
            )
        try:
            identity_spec = WorkloadIdentitySpec.parse(name, identity.spec)
        except ValidationError as err:
            return Blocked("IdentityNotReady", f"spec.identityRef: WorkloadIdentity {name}: {err}")
        return Subject(identity_spec, subject)

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
        vault = self.leases.vault
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

    # -- acting --------------------------------------------------------------------------------

    async def act(
        self,
        view: ObjectView,
        spec: ScopedCredentialSpec,
        subject: Subject,
        state: CredentialState,
        reason: ReissueReason,
    ) -> None:
        if spec.token is not None:
            await self._issue_token(view, spec, subject, reason)
        elif lease_action(reason, view.status.get("leaseRenewable") is True) is LeaseAction.RENEW:
            await self._renew_lease(view, spec, subject, reason)
        else:
            await self._read_secret(view, spec, subject, reason)

    async def _issue_token(
        self, view: ObjectView, spec: ScopedCredentialSpec, subject: Subject, reason: ReissueReason
    ) -> None:
        token_spec = spec.token
        assert token_spec is not None
        now = await self.issuance_slot()
        started = time.perf_counter()
        signer_name = subject.identity.signer
        signer = self.signers.get(signer_name)
        claims = access_token_claims(
            self.config.jwt_issuer,
            subject.spiffe_id,
            token_spec.audience,
            token_spec.scopes,
            subject.spiffe_id,  # client_id: the workload is the OAuth client and the subject
            token_spec.ttl,
            now,
            new_jti(),
            dict(token_spec.claims),
        )
        signed = await signer.jwt.sign(claims, typ=JwtType.ACCESS_TOKEN)
        # New material is checked before it replaces anything.
        try:
            JwtVerifier(
                await signer.jwt.public_jwks(),
                audience=token_spec.audience,
                issuer=self.config.jwt_issuer,
                profile=TokenProfile.ACCESS_TOKEN,
            ).verify(signed.token, now)
        except WioError as err:
            raise SignerRejected(
                f"signer {signer_name} returned a token that does not verify"
            ) from err
        jti = str(claims["jti"])
        issued_at = dt.datetime.fromtimestamp(int(claims["iat"]), dt.UTC)
        expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
        renew = self.renewal(issued_at, expires)
        data, notes = credential_secret.encode_token(
            signed.token,
            subject=subject.spiffe_id,
            jti=jti,
            expires=expires,
            renew=renew,
            spec_hash=spec.spec_hash(),
        )
        await self._write_secret(view, spec.secret_name, data, notes)
        message = f"access token {jti} for {subject.spiffe_id}, valid until {rfc3339(expires)}"
        await self._record(
            view,
            spec,
            subject,
            reason,
            Source.TOKEN,
            {"jti": jti},
            expires,
            renew,
            message,
            started,
        )

    async def _read_secret(
        self, view: ObjectView, spec: ScopedCredentialSpec, subject: Subject, reason: ReissueReason
    ) -> None:
        assert spec.vault is not None
        vault = self.leases.vault
        assert vault is not None
        await self.issuance_slot()
        started = time.perf_counter()
        secret = await vault.read(spec.vault.path)
        now = self.clock.now()
        expires = whole_seconds(now + secret.lease_duration)
        renew = self.renewal(whole_seconds(now), expires)
        data, notes = credential_secret.encode_vault(
            secret.data,
            subject=subject.spiffe_id,
            lease_id=secret.lease_id,
            path=spec.vault.path,
            expires=expires,
            renew=renew,
            spec_hash=spec.spec_hash(),
        )
        try:
            await self._write_secret(view, spec.secret_name, data, notes)
        except BaseException:
            # Nobody will ever see these credentials: take them back rather than leave them
            # live until the lease runs out.
            await self.leases.revoke_unused(secret.lease_id)
            raise
        fields: dict[str, Any] = {
            "leaseID": secret.lease_id,
            "leaseExpiresAt": rfc3339(expires),
            "leaseDuration": int(secret.lease_duration.total_seconds()),
            "leaseRenewable": secret.renewable,
            "retiredLeases": retired_status(live_leases_of(view.status, now)),
        }
        message = (
            f"read {spec.vault.path} for {subject.spiffe_id}, lease valid until "
            f"{rfc3339(expires)} ({'renewable' if secret.renewable else 'not renewable'})"
        )
        await self._record(
            view, spec, subject, reason, Source.VAULT, fields, expires, renew, message, started
        )

    async def _renew_lease(
        self, view: ObjectView, spec: ScopedCredentialSpec, subject: Subject, reason: ReissueReason
    ) -> None:
        """Extend the current lease: the Secret's data stays, its expiry annotations move."""
        vault = self.leases.vault
        assert vault is not None
        lease_id = str(view.status.get("leaseID"))
        requested = dt.timedelta(seconds=int(view.status.get("leaseDuration") or 0))
        try:
            renewal = await vault.renew(lease_id, requested)
        except SignerRejected as err:
            # Gone, revoked or not renewable after all: a fresh read replaces it.
            log.info("renewing the lease of %s failed (%s); reading again", view.key, err)
            refused = ReissueReason("LeaseNotRenewable", "Vault refused renewal")
            await self._read_secret(view, spec, subject, refused)
            return
        now = self.clock.now()
        if renewal.lease_duration <= dt.timedelta(0):
            exhausted = ReissueReason("LeaseExhausted", "the lease cannot grow")
            await self._read_secret(view, spec, subject, exhausted)
            return
        expires = whole_seconds(now + renewal.lease_duration)
        renew = self.renewal(whole_seconds(now), expires)
        renewable = after_renewal(requested, renewal.lease_duration, renewal.renewable)
        notes = credential_secret.lease_renewal(expires, renew)
        namespace = view.key.namespace
        answer = await self.kube.merge_patch(
            secret_path(namespace, spec.secret_name), {"metadata": {"annotations": notes}}
        )
        facts = self.secrets.get(namespace, spec.secret_name)
        if facts is not None:  # its echo is not judged again: record the new expiry here
            self.record_written(
                namespace,
                spec.secret_name,
                answer,
                view.key.name,
                replace(facts, expires_at=expires),
            )
        path = spec.vault.path if spec.vault else "the secret"
        message = f"renewed the lease of {path} until {rfc3339(expires)}"
        await self.write_status(
            view,
            now,
            {
                "leaseExpiresAt": rfc3339(expires),
                "expiresAt": rfc3339(expires),
                "renewalTime": rfc3339(renew),
                "leaseRenewable": renewable,
            },
            self.readiness.issued("Renewed", message),
        )
        self.succeeded(view)
        self.metrics.rotations.labels("vault", "LeaseRenewed", "success").inc()
        self.scheduler.schedule(view.key, renew)
        log.info("renewed %s: %s", view.key, message)

    async def _write_secret(
        self,
        view: ObjectView,
        secret_name: str,
        data: Mapping[str, bytes],
        annotations: Mapping[str, str],
    ) -> None:
        manifest = secret_manifest(
            self.owner(view),
            secret_name,
            data,
            annotations,
            self.owner_label,
            secret_type="Opaque",  # noqa: S106 - a Secret type
        )
        namespace = view.key.namespace
        answer = await self.kube.apply(secret_path(namespace, secret_name), manifest)
        facts = credential_secret.judge(view.key.name, data, annotations)
        self.record_written(namespace, secret_name, answer, view.key.name, facts)

    async def _record(
        self,
        view: ObjectView,
        spec: ScopedCredentialSpec,
        subject: Subject,
        reason: ReissueReason,
        source: Source,
        fields: dict[str, Any],
        expires: dt.datetime,
        renew: dt.datetime,
        message: str,
        started: float,
    ) -> None:
        status = {
            **fields,
            "spiffeID": subject.spiffe_id,
            "secretName": spec.secret_name,
            "specHash": spec.spec_hash(),
            "expiresAt": rfc3339(expires),
            "renewalTime": rfc3339(renew),
            "rotations": self.rotations(view),
        }
        if reason.reason == "ForcedRotation":
            status["lastForcedRotation"] = view.forced_request
        await self.record_issuance(
            view,
            reason,
            source=source.value,
            message=message,
            fields=status,
            due=renew,
            started=started,
        )

    # -- revocation ----------------------------------------------------------------------------

    def live_credentials(self, view: ObjectView, now: dt.datetime) -> list[Live]:
        """What status records, and what the Secret holds (written just before a crash,
        before status could record it)."""
        status = view.status
        is_vault = "vault" in view.spec or bool(status.get("leaseID"))
        kind = "lease" if is_vault else "token"
        live: dict[str, dt.datetime] = {}
        if is_vault:
            live.update(live_leases_of(status, now))
        else:
            jti, expires = status.get("jti"), parse_rfc3339(status.get("expiresAt"))
            if isinstance(jti, str) and jti and expires is not None and expires > now:
                live[jti] = expires
        facts = self.secrets.get(view.key.namespace, self.recorded_secret_name(view))
        if (
            facts is not None
            and facts.credential_id
            and facts.credential_id not in live
            and facts.expires_at is not None
            and facts.expires_at > now
        ):
            live[facts.credential_id] = facts.expires_at
        return [Live(kind, credential_id, expires) for credential_id, expires in live.items()]

    async def revoke_upstream(self, view: ObjectView, live: Sequence[Live]) -> set[str]:
        pending = {item.id for item in live if item.kind == "lease"}
        for item in live:
            if item.kind == "lease" and await self.leases.revoke(item.id):
                pending.discard(item.id)
        if pending:
            self.leases.retry_soon()
        return pending

    def revocation_report(
        self, view: ObjectView, secret_name: str, live: Sequence[Live], pending: set[str]
    ) -> tuple[str, dict[str, Any], tuple[str, str]]:
        is_vault = "vault" in view.spec or bool(view.status.get("leaseID"))
        kind = "lease" if is_vault else "token"
        ids = sorted(item.id for item in live)
        what = ", ".join(ids) if kind == "token" else f"{len(ids)} lease(s)"
        subject = view.status.get("spiffeID") or view.key
        message = (
            f"revoked {kind} {what or '(none live)'} of {subject}; Secret {secret_name} deleted"
        )
        fields = {"credential": kind, "ids": ids, "upstreamPending": sorted(pending)}
        return message, fields, (kind, "pending" if pending else "success")

    async def revoke_for_identity(self, identity: ObjectKey) -> None:
        """The WorkloadIdentity ``identity`` is being deleted: its credentials go with it."""
        for key in sorted(self.by_identity.get(identity, ())):
            async with self.locks.hold(key):
                view = self.views.get(key)
                # What status records, or what a Secret written before a crash holds.
                if view is None or not self.live_credentials(view, self.clock.now()):
                    continue
                self.scheduler.cancel(key)
                await self.revoke(view, "IdentityDeleted")
                message = (
                    f"spec.identityRef: WorkloadIdentity {identity.name} was deleted; its "
                    "credential was revoked and nothing is minted until it exists again"
                )
                await self.write_status(
                    view,
                    self.clock.now(),
                    dict.fromkeys(CREDENTIAL_FIELDS),
                    readiness.blocked("IdentityNotFound", message),
                )


def _source(spec: ScopedCredentialSpec) -> Source:
    return Source.TOKEN if spec.token is not None else Source.VAULT
