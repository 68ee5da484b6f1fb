# SPDX-License-Identifier: Apache-2.0
"""The leader-election Lease (``coordination.k8s.io/v1``) in the operator's namespace.

Reads it into a ``LeaseRecord`` and writes one back with the read ``resourceVersion`` as a
precondition, so two replicas racing for it cannot both win: the loser gets ``ApiConflict``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from wio.clock import parse_rfc3339
from wio.errors import ApiNotFound
from wio.k8s.client import KubeClient
from wio.names import MANAGED_BY, MANAGER
from wio.policy.leadership import LeaseRecord

_API = "/apis/coordination.k8s.io/v1"


def _micro_time(when: dt.datetime | None) -> str | None:
    """A Lease's MicroTime: RFC 3339 with microseconds, in UTC."""
    if when is None:
        return None
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _integer(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class LeaderLease:
    def __init__(self, kube: KubeClient, *, namespace: str, name: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._name = name
        self._collection = f"{_API}/namespaces/{namespace}/leases"

    @property
    def path(self) -> str:
        return f"{self._collection}/{self._name}"

    async def read(self) -> LeaseRecord | None:
        """The Lease as it is now; None when there is none yet."""
        try:
            body = await self._kube.get(self.path)
        except ApiNotFound:
            return None
        spec = body.get("spec") or {}
        holder = spec.get("holderIdentity")
        return LeaseRecord(
            holder=holder if isinstance(holder, str) else "",
            duration_seconds=_integer(spec.get("leaseDurationSeconds")),
            acquire_time=parse_rfc3339(spec.get("acquireTime")),
            renew_time=parse_rfc3339(spec.get("renewTime")),
            transitions=_integer(spec.get("leaseTransitions")),
            resource_version=str((body.get("metadata") or {}).get("resourceVersion") or ""),
        )

    async def write(self, record: LeaseRecord) -> None:
        """Create the Lease (``record`` read as None) or replace the version that was read.
        Raises ``ApiConflict`` when someone else wrote it first."""
        metadata: dict[str, Any] = {
            "name": self._name,
            "namespace": self._namespace,
            "labels": {MANAGED_BY: MANAGER},
        }
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": record.holder,
                "leaseDurationSeconds": record.duration_seconds,
                "acquireTime": _micro_time(record.acquire_time),
                "renewTime": _micro_time(record.renew_time),
                "leaseTransitions": record.transitions,
            },
        }
        if not record.resource_version:
            await self._kube.create(self._collection, body)
            return
        metadata["resourceVersion"] = record.resource_version
        await self._kube.request("PUT", self.path, body=body)
