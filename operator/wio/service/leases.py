# SPDX-License-Identifier: Apache-2.0
"""Vault/OpenBao leases of ScopedCredentials: which are still live.

A replaced lease is not revoked at once, since pods may still use it until they pick up the
new Secret: it stays in ``status.retiredLeases`` until it expires, and is revoked if the
ScopedCredential is deleted first (``wio.service.upstream`` tells Vault, and retries).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from wio.clock import parse_rfc3339, rfc3339
from wio.policy.scoped import live_leases

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
