# SPDX-License-Identifier: Apache-2.0
"""``VaultDynamicSecrets``: leased secrets read from Vault/OpenBao for ScopedCredentials.

A dynamic secret (database credentials from the database engine, cloud keys...) is a read of
``<mount>/<path>`` that answers with data and a lease: an ID, a duration and whether it can be
renewed. This backend reads it, renews its lease (``sys/leases/renew``) and revokes it
(``sys/leases/revoke``), all through the shared ``VaultClient`` (thread pool, login, error
mapping). Reads are confined to the admin's ``mounts``: a path under any other mount is
refused here before Vault is asked, as a second line behind the service's own check.

Values never appear in messages or ``repr``; lease IDs do appear in status (they identify a
lease; holding one grants nothing without a Vault token allowed to renew or revoke it).

The Vault policy the operator's login needs, for a mount ``database``::

    path "database/creds/*"  { capabilities = ["read"] }
    path "sys/leases/renew"  { capabilities = ["update"] }
    path "sys/leases/revoke" { capabilities = ["update"] }
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wio.backends.vault import VaultClient, api_path, check_mount
from wio.errors import SignerRejected, SignerUnavailable

#: Longest lease ID kept (the CRD's ``status.leaseID`` limit).
MAX_LEASE_ID = 1024
#: Most data keys one secret may bring into a Kubernetes Secret.
MAX_KEYS = 64
#: Largest total size of a secret's values; Kubernetes caps a Secret at 1 MiB.
MAX_DATA_BYTES = 512 * 1024

_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")
_LEASE_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_LEASE_ID}}}")


@dataclass(frozen=True)
class DynamicSecret:
    """One read: the Secret data it yields and its lease; ``repr`` never shows the data."""

    data: Mapping[str, bytes] = field(repr=False)
    lease_id: str
    lease_duration: dt.timedelta
    renewable: bool


@dataclass(frozen=True)
class LeaseRenewal:
    """What a renewal granted: the lease now lives ``lease_duration`` from the renewal."""

    lease_duration: dt.timedelta
    renewable: bool


class VaultDynamicSecrets:
    """Reads, renews and revokes leased secrets under the admin-configured ``mounts``."""

    def __init__(self, client: VaultClient, mounts: tuple[str, ...]) -> None:
        for index, mount in enumerate(mounts):
            check_mount(mount, f"vault.mounts[{index}]")
        self._client = client
        self._mounts = tuple(mounts)

    @property
    def mounts(self) -> tuple[str, ...]:
        return self._mounts

    def allows(self, path: str) -> bool:
        return any(path.startswith(f"{mount}/") for mount in self._mounts)

    async def read(self, path: str) -> DynamicSecret:
        """Read ``path`` (relative, under a configured mount); it must answer with a lease."""
        if not self.allows(path) or any(s in ("", ".", "..") for s in path.split("/")):
            raise SignerRejected(f"Vault path {path} is outside the configured mounts")
        answer = await self._client.call(
            "read", path, lambda c: c.adapter.get(api_path(*path.split("/")))
        )
        return _dynamic_secret(answer, path)

    async def renew(self, lease_id: str, increment: dt.timedelta) -> LeaseRenewal:
        """Extend ``lease_id`` by ``increment`` (Vault may grant less, up to the max TTL)."""
        _check_lease_id(lease_id)
        body = {"lease_id": lease_id, "increment": int(increment.total_seconds())}
        answer = await self._client.call(
            "lease renewal",
            _lease_target(lease_id),
            lambda c: c.adapter.put(api_path("sys", "leases", "renew"), json=body),
        )
        if not isinstance(answer, Mapping):
            raise SignerUnavailable(
                f"Vault lease renewal on {_lease_target(lease_id)}: malformed response"
            )
        duration = answer.get("lease_duration")
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
            raise SignerUnavailable(
                f"Vault lease renewal on {_lease_target(lease_id)}: malformed response"
            )
        return LeaseRenewal(dt.timedelta(seconds=duration), answer.get("renewable") is True)

    async def revoke(self, lease_id: str) -> None:
        """Revoke ``lease_id`` now; revoking a lease that is already gone succeeds."""
        _check_lease_id(lease_id)
        body = {"lease_id": lease_id}
        await self._client.call(
            "lease revocation",
            _lease_target(lease_id),
            lambda c: c.adapter.put(api_path("sys", "leases", "revoke"), json=body),
        )


def _lease_target(lease_id: str) -> str:
    """The lease's path without its random suffix: enough to say which engine failed."""
    return lease_id.rsplit("/", 1)[0] if "/" in lease_id else "lease"


def _check_lease_id(lease_id: str) -> None:
    if not isinstance(lease_id, str) or not _LEASE_ID.fullmatch(lease_id):
        raise SignerRejected(f"a lease ID must be 1-{MAX_LEASE_ID} printable characters")


def _dynamic_secret(answer: Any, path: str) -> DynamicSecret:
    where = f"Vault read on {path}"
    if not isinstance(answer, Mapping):
        raise SignerUnavailable(f"{where}: malformed response")
    lease_id = answer.get("lease_id")
    duration = answer.get("lease_duration")
    if not lease_id:
        # A static secret (KV) has nothing to renew or revoke: it is not what
        # ScopedCredentials are for, and deleting one could not take it back.
        raise SignerRejected(f"{where}: the response has no lease; only dynamic secrets are read")
    if not isinstance(lease_id, str) or not _LEASE_ID.fullmatch(lease_id):
        raise SignerUnavailable(f"{where}: malformed lease ID")
    if isinstance(duration, bool) or not isinstance(duration, int) or duration <= 0:
        raise SignerRejected(f"{where}: the lease has no positive duration")
    data = answer.get("data")
    if not isinstance(data, Mapping) or not data:
        raise SignerRejected(f"{where}: the response carries no data")
    if len(data) > MAX_KEYS:
        raise SignerRejected(f"{where}: {len(data)} data keys; at most {MAX_KEYS}")
    converted: dict[str, bytes] = {}
    for name, value in data.items():
        if not isinstance(name, str) or not _SECRET_KEY.fullmatch(name):
            raise SignerRejected(f"{where}: a data key is not a valid Secret key")
        if isinstance(value, str):
            converted[name] = value.encode("utf-8")
        else:
            # Numbers, lists and objects keep their JSON form, as `vault read -format=json`
            # prints them; the consumer decides how to read them.
            converted[name] = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    if sum(len(v) for v in converted.values()) > MAX_DATA_BYTES:
        raise SignerRejected(f"{where}: the data exceeds {MAX_DATA_BYTES} bytes")
    return DynamicSecret(
        data=converted,
        lease_id=lease_id,
        lease_duration=dt.timedelta(seconds=duration),
        renewable=answer.get("renewable") is True,
    )
