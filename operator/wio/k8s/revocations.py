# SPDX-License-Identifier: Apache-2.0
"""The durable revocation list: one ConfigMap in the operator's namespace, written coalesced.

Storage only: the controllers decide what is revoked; this module keeps it.

``add`` returns only once the list that contains the new entries is stored, so a finalizer
never lets go of an object whose revocation could still be lost. Concurrent revocations
share writes: while one write is in flight, later entries wait and go out together in the
next, so deleting a thousand identities costs far fewer than a thousand writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from wio.clock import Clock
from wio.errors import ApiNotFound, ApiRejected, ApiUnavailable
from wio.k8s.client import KubeClient, configmap_path
from wio.models.revocation import Revocation, RevocationList
from wio.names import MANAGED_BY, MANAGER

log = logging.getLogger(__name__)
DATA_KEY = "revocations.json"
#: How soon a write the API server refused is tried again.
REJECTED_RETRY_SECONDS = 30.0


class RevocationStore:
    def __init__(
        self,
        kube: KubeClient,
        *,
        namespace: str,
        name: str,
        clock: Clock,
    ) -> None:
        self._kube = kube
        self._namespace = namespace
        self._name = name
        self._clock = clock
        self._lock = asyncio.Lock()
        self._dirty = False
        self.current = RevocationList()

    async def load(self) -> None:
        try:
            body = await self._kube.get(configmap_path(self._namespace, self._name))
        except ApiNotFound:
            return
        raw = ((body.get("data") or {}).get(DATA_KEY) or "").encode()
        self.current = RevocationList.from_json_bytes(raw).prune(self._clock.now())

    async def add(self, entries: Iterable[Revocation]) -> None:
        self.current = self.current.add(entries)
        self._dirty = True
        await self._flush()

    async def mark_upstream_done(self, kind: str, id_: str) -> None:
        self.current = self.current.mark_upstream_done(kind, id_)
        self._dirty = True
        await self._flush()

    async def _flush(self) -> None:
        async with self._lock:
            if not self._dirty:
                return  # someone else's write already carried our entries
            self._dirty = False
            # Entries whose credential has expired (and need no more upstream work) go with
            # every write, so the list holds only what can still be presented.
            self.current = self.current.prune(self._clock.now())
            snapshot = self.current
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": self._name,
                    "namespace": self._namespace,
                    "labels": {MANAGED_BY: MANAGER},
                },
                "data": {DATA_KEY: snapshot.to_json_bytes().decode()},
            }
            try:
                await self._kube.apply(configmap_path(self._namespace, self._name), body)
            except ApiRejected as err:
                # Refused as it is (too large, say): a finalizer waiting on this must retry
                # with backoff, never give up; expiring entries make room meanwhile.
                self._dirty = True
                raise ApiUnavailable(
                    f"the revocation list could not be stored, will retry: {err}",
                    retry_after=REJECTED_RETRY_SECONDS,
                ) from err
            except BaseException:
                self._dirty = True  # the next caller retries with everything
                raise
