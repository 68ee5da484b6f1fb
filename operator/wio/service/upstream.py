# SPDX-License-Identifier: Apache-2.0
"""Revocation at the source: Vault/OpenBao PKI by serial, and Vault leases.

A revocation is stored in wio's list first; telling the source is the second half. When the
source does not answer within seconds, the list entry stays ``upstreamPending`` (it survives
restarts) and a background task tries again until the source confirms or the credential has
expired, so a namespace deletion never waits on Vault. ``wio_upstream_revocations_pending``
says how many are waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

from wio.backends.vault_dynamic import VaultDynamicSecrets
from wio.clock import Clock
from wio.errors import ForeignCredential, WioError
from wio.k8s.revocations import RevocationStore
from wio.metrics import Metrics
from wio.service.signers import SignerSet

log = logging.getLogger(__name__)

#: Upstream revocation must never hang a finalizer or a namespace deletion.
UPSTREAM_TIMEOUT = 5.0
#: How often revocations the source did not confirm are tried again.
RETRY_SECONDS = 30.0


class UpstreamRevoker:
    def __init__(
        self,
        signers: SignerSet,
        vault: VaultDynamicSecrets | None,
        revocations: RevocationStore,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._signers = signers
        self.vault = vault
        self._revocations = revocations
        self._metrics = metrics
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._retry_pending(), name="wio-upstream-revoke")
        self._wake.set()  # pending entries loaded from a previous run are tried at once

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def revokes_serials(self, signer_name: str) -> bool:
        """Whether ``signer_name`` exists and revokes certificates upstream."""
        try:
            return self._signers.get(signer_name).x509_revokes
        except WioError:
            return False

    async def revoke_serial(self, signer_name: str, serial: str, namespace: str) -> bool:
        """True when the signer confirmed, refused for good (a certificate of another
        namespace) or cannot revoke at all; False to retry later."""
        if not self.revokes_serials(signer_name):
            return True
        signer = self._signers.get(signer_name)
        return await self._attempt(signer.x509.revoke(serial, namespace=namespace), signer_name)

    async def revoke_lease(self, lease_id: str) -> bool:
        """True when Vault confirmed; False to retry later."""
        if self.vault is None:
            return False
        return await self._attempt(self.vault.revoke(lease_id), "vault")

    async def revoke_unused_lease(self, lease_id: str) -> None:
        """A lease nobody will ever see (its Secret write failed): take it back now, once."""
        if self.vault is not None and not await self.revoke_lease(lease_id):
            log.warning("could not revoke an unused lease; it expires on its own")

    def retry_soon(self) -> None:
        self._wake.set()

    async def _attempt(self, call: Awaitable[None], source: str) -> bool:
        try:
            await asyncio.wait_for(call, UPSTREAM_TIMEOUT)
        except ForeignCredential as err:
            # Not this namespace's to revoke: asking again gets the same answer.
            log.warning("upstream revocation at %s refused, not retried: %s", source, err)
            self._metrics.signer_errors.labels(source, "RevokeRefused").inc()
            return True
        except (WioError, TimeoutError) as err:
            log.warning("upstream revocation at %s deferred: %s", source, err or "timed out")
            self._metrics.signer_errors.labels(source, "RevokeFailed").inc()
            return False
        return True

    async def revoke(self, kind: str, id_: str, signer: str | None, namespace: str) -> bool:
        """Tell the source of one credential of ``namespace``; True when done or nothing
        upstream revokes it (a JWT, an access token), False when it is left to the retry."""
        if kind == "lease":
            return await self.revoke_lease(id_)
        if kind == "x509" and signer:
            return await self.revoke_serial(signer, id_, namespace)
        return True

    async def retry_pending(self) -> None:
        """One pass over the pending revocations: each is done once its source confirms, or
        once the credential has expired and there is nothing left to revoke."""
        now = self._clock.now()
        for entry in self._revocations.current.pending_upstream():
            if entry.expires_at <= now or await self.revoke(
                entry.kind, entry.id, entry.signer, entry.namespace
            ):
                try:
                    await self._revocations.mark_upstream_done(entry.key)
                except WioError as err:
                    log.warning("could not record an upstream revocation: %s", err)
        self._metrics.upstream_pending.set(len(self._revocations.current.pending_upstream()))

    async def _retry_pending(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RETRY_SECONDS)
            self._wake.clear()
            await self.retry_pending()
