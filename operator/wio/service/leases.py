# SPDX-License-Identifier: Apache-2.0
"""Vault/OpenBao leases of ScopedCredentials: which are live, revoking them, and retrying.

A replaced lease is not revoked at once, since pods may still use it until they pick up the
new Secret: it stays in ``status.retiredLeases`` until it expires, and is revoked if the
ScopedCredential is deleted first. A revocation Vault does not confirm within seconds leaves
the revocation list entry ``upstreamPending``; a background task retries those until Vault
confirms or the lease expires, so a namespace deletion never waits on Vault.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from wio.backends.vault_dynamic import VaultDynamicSecrets
from wio.clock import Clock, parse_rfc3339, rfc3339
from wio.errors import WioError
from wio.k8s.revocations import RevocationStore
from wio.metrics import Metrics
from wio.policy.scoped import live_leases
from wio.service.failures import UPSTREAM_REVOKE_TIMEOUT

log = logging.getLogger(__name__)

#: Replaced leases kept for revocation on delete; older ones are left to expire on their own.
MAX_RETIRED_LEASES = 16
#: How often leases whose revocation Vault did not confirm are tried again.
PENDING_RETRY_SECONDS = 30.0


def live_leases_of(status: Mapping[str, Any], now: dt.datetime) -> dict[str, dt.datetime]:
    """The current lease and the replaced ones status records, while they are live."""
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


def retired_status(leases: Mapping[str, dt.datetime]) -> list[dict[str, str]] | None:
    """``status.retiredLeases`` (None removes the field)."""
    return [{"leaseID": lease, "expiresAt": rfc3339(exp)} for lease, exp in leases.items()] or None


class LeaseRevoker:
    """Revokes leases in Vault now, or later in the background when Vault does not answer."""

    def __init__(
        self,
        vault: VaultDynamicSecrets | None,
        revocations: RevocationStore,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.vault = vault
        self._revocations = revocations
        self._metrics = metrics
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._retry_pending(), name="wio-lease-revoke")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def revoke(self, lease_id: str) -> bool:
        """True when Vault confirmed; False leaves it to the background retry."""
        if self.vault is None:
            return False
        try:
            await asyncio.wait_for(self.vault.revoke(lease_id), UPSTREAM_REVOKE_TIMEOUT)
        except (WioError, TimeoutError) as err:
            log.warning("lease revocation deferred: %s", err or "timed out")
            self._metrics.signer_errors.labels("vault", "RevokeFailed").inc()
            return False
        return True

    async def revoke_unused(self, lease_id: str) -> None:
        """A lease nobody will ever see (its Secret write failed): take it back now."""
        if self.vault is None:
            return
        try:
            await asyncio.wait_for(self.vault.revoke(lease_id), UPSTREAM_REVOKE_TIMEOUT)
        except (WioError, TimeoutError) as err:
            log.warning("could not revoke an unused lease; it expires on its own: %s", err)

    def retry_soon(self) -> None:
        self._wake.set()

    async def _retry_pending(self) -> None:
        """Revoke leases Vault did not confirm at delete time, until it does or they expire."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), PENDING_RETRY_SECONDS)
            self._wake.clear()
            now = self._clock.now()
            for entry in self._revocations.current.pending_upstream():
                if entry.kind != "lease":
                    continue
                if entry.expires_at <= now or await self.revoke(entry.id):
                    try:
                        await self._revocations.mark_upstream_done("lease", entry.id)
                    except WioError as err:
                        log.warning("could not record a lease revocation: %s", err)
