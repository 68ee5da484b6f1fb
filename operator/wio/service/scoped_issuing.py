# SPDX-License-Identifier: Apache-2.0
"""How a ScopedCredential is issued: an access token, a Vault read, a lease renewal.

The acting half of the ScopedCredential controller (``wio.service.scoped`` adds the deciding
half and revocation): each path ends in ONE Secret write (``Opaque``, labelled and owned by
the ScopedCredential; the kind's codec is ``wio.service.credential_secret``) and ONE status
patch. A token is verified before it is written; a Vault secret whose Secret write fails is
revoked at once, since nobody will ever see it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from wio.backends.protocols import JwtType
from wio.clock import rfc3339, whole_seconds
from wio.errors import SignerRejected, WioError
from wio.issuing.jwt import access_token_claims, new_jti
from wio.issuing.verify_jwt import JwtVerifier, TokenProfile
from wio.models.resources import ScopedCredentialSpec, WorkloadIdentitySpec
from wio.policy.checks import FORCED_ROTATION
from wio.policy.rotation import ReissueReason
from wio.policy.scoped import (
    CredentialFacts,
    CredentialState,
    LeaseAction,
    Source,
    after_renewal,
    lease_action,
)
from wio.service import credential_secret
from wio.service.bodies import secret_manifest
from wio.service.controller import CredentialController
from wio.service.leases import live_leases_of, retired_status
from wio.service.views import ObjectView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subject:
    """The referenced identity: its spec (for the signer) and SPIFFE ID."""

    identity: WorkloadIdentitySpec
    spiffe_id: str


class ScopedIssuing(
    CredentialController[ScopedCredentialSpec, Subject, CredentialState, CredentialFacts]
):
    """Issuing for ScopedCredentials; ``ScopedCredentialController`` is the whole kind."""

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
        vault = self.parts.upstream.vault
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
            await self.parts.upstream.revoke_unused_lease(secret.lease_id)
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
        vault = self.parts.upstream.vault
        assert vault is not None
        facts = self.secrets.get(view.key.namespace, spec.secret_name)
        if facts is None:  # nothing to renew in place (the chain sees a missing Secret first)
            await self._read_secret(view, spec, subject, reason)
            return
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
        # Its echo is not judged again: the new expiry is recorded here.
        await self.patch_secret(
            view,
            spec.secret_name,
            {"metadata": {"annotations": notes}},
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
        facts = credential_secret.judge(view.key.name, data, annotations)
        await self.write_secret(view, secret_name, manifest, facts)

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
        if reason.reason == FORCED_ROTATION:
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
