# SPDX-License-Identifier: Apache-2.0
"""The durable revocation list: sharded ConfigMaps in the operator's namespace, written coalesced.

Storage only: the controllers decide what is revoked; this module keeps it.

**Sharded.** No one object grows with the fleet: entries are spread by a hash of their key
over ``shards`` ConfigMaps named ``<name>-00``, ``<name>-01``, … (16 by default; at about
190 bytes an entry, each holds some 5,000 before it nears the API server's 1 MiB limit, so
the default keeps about 80,000 unexpired revocations). A write touches only the shards whose
entries changed. Entries leave as their credential expires: a shard that held one is
rewritten with the next write.

**Durable before a finalizer lets go.** ``add`` returns only once every shard that holds a
new entry is stored. Concurrent revocations share writes: while one write is in flight,
later entries wait and go out together in the next, so deleting a thousand identities costs
far fewer than a thousand writes. A write the API server refuses is a retryable error (the
finalizer waiting on it backs off and tries again), never a permanent one.

**Migration.** At start the store lists wio's ConfigMaps in its namespace: the first
release's single list (``<name>``) and shards of another count are read, rewritten into the
current shards, then the old list is deleted (with its UID as a precondition) and shards
beyond the count are emptied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable

from wio.clock import Clock
from wio.errors import ApiConflict, ApiRejected, ApiUnavailable, ValidationError
from wio.k8s.client import KubeClient, configmap_path
from wio.models.revocation import (
    Key,
    Revocation,
    RevocationList,
    parse_legacy,
    parse_shard,
    shard_json,
)
from wio.names import MANAGED_BY, MANAGER

log = logging.getLogger(__name__)
DATA_KEY = "revocations.json"
#: The default shard count (see the module docstring for what it holds).
DEFAULT_SHARDS = 16
MAX_SHARDS = 64
#: How soon a write the API server refused is tried again.
REJECTED_RETRY_SECONDS = 30.0
#: A shard this large is logged as a warning: the API server refuses objects over 1 MiB.
WARN_SHARD_BYTES = 768 * 1024


def shard_names(name: str, count: int) -> list[str]:
    return [f"{name}-{index:02d}" for index in range(count)]


class RevocationStore:
    def __init__(
        self,
        kube: KubeClient,
        *,
        namespace: str,
        name: str,
        clock: Clock,
        shards: int = DEFAULT_SHARDS,
    ) -> None:
        if not 1 <= shards <= MAX_SHARDS:
            raise ValueError(f"shards must be 1 to {MAX_SHARDS}")
        self._kube = kube
        self._namespace = namespace
        self._legacy = name
        self._names = shard_names(name, shards)
        self._shard_pattern = re.compile(re.escape(name) + r"-(\d\d)")
        self._clock = clock
        self._lock = asyncio.Lock()
        self._dirty: set[int] = set()
        #: Shards of an earlier, larger count: emptied by the next write.
        self._stale: set[str] = set()
        self.current = RevocationList()

    @property
    def shard_count(self) -> int:
        return len(self._names)

    async def load(self) -> None:
        """Read every shard (and an earlier layout, which is migrated at once)."""
        legacy_uid: str | None = None
        found: list[Revocation] = []
        misplaced = False
        for body in await self._kube.list(
            configmap_path(self._namespace), label_selector=f"{MANAGED_BY}={MANAGER}"
        ):
            meta = body.get("metadata") or {}
            name = str(meta.get("name", ""))
            raw = ((body.get("data") or {}).get(DATA_KEY) or "").encode()
            match = self._shard_pattern.fullmatch(name)
            try:
                if name == self._legacy:
                    legacy_uid = meta.get("uid")
                    found += parse_legacy(raw)
                elif match is not None:
                    entries = parse_shard(raw)
                    index = int(match.group(1))
                    if index >= self.shard_count and entries:
                        self._stale.add(name)  # of a larger count: emptied once moved
                    found += entries
                    misplaced |= any(e.shard(self.shard_count) != index for e in entries)
            except ValidationError as err:
                # Revocations must never be lost quietly: a list wio cannot read stops it.
                raise ValidationError(
                    f"ConfigMap {self._namespace}/{name}", f"unreadable revocation list: {err}"
                ) from err
        self.current = RevocationList().add(found).prune(self._clock.now())
        if legacy_uid is not None or self._stale or misplaced:
            self._dirty = set(range(self.shard_count))
            await self._flush()
            log.info("revocation list migrated into %d shards", self.shard_count)
        if legacy_uid is not None:
            # Replaced meanwhile by someone else (409): not wio's to delete.
            with contextlib.suppress(ApiConflict):
                await self._kube.delete(
                    configmap_path(self._namespace, self._legacy), uid=legacy_uid
                )

    async def add(self, entries: Iterable[Revocation]) -> None:
        items = list(entries)
        self.current = self.current.add(items)
        self._dirty.update(e.shard(self.shard_count) for e in items)
        await self._flush()

    async def mark_upstream_done(self, key: Key) -> None:
        self.current = self.current.mark_upstream_done(key)
        self._dirty.update(e.shard(self.shard_count) for e in self.current.entries if e.key == key)
        await self._flush()

    async def _flush(self) -> None:
        async with self._lock:
            if not self._dirty and not self._stale:
                return  # someone else's write already carried our entries
            # Entries whose credential has expired (and need no more upstream work) leave
            # with this write: the shards that held them are written too.
            before = self.current
            self.current = before.prune(self._clock.now())
            if self.current is not before:
                kept = set(self.current.entries)
                self._dirty.update(
                    e.shard(self.shard_count) for e in before.entries if e not in kept
                )
            dirty, self._dirty = sorted(self._dirty), set()
            stale, self._stale = sorted(self._stale), set()
            shards = self.current.by_shard(self.shard_count)
            writes = {self._names[i]: shard_json(shards[i]) for i in dirty}
            writes.update((name, shard_json(())) for name in stale)
            results = await asyncio.gather(
                *(self._write(name, data) for name, data in writes.items()),
                return_exceptions=True,
            )
            failed = [
                (name, result)
                for name, result in zip(writes, results, strict=True)
                if isinstance(result, BaseException)
            ]
            for name, _ in failed:
                # The next caller retries with everything the shard holds by then.
                if name in self._names:
                    self._dirty.add(self._names.index(name))
                else:
                    self._stale.add(name)
            if failed:
                name, err = failed[0]
                if isinstance(err, ApiRejected):
                    # Refused as it is (too large, say): a finalizer waiting on this retries
                    # with backoff, never gives up; expiring entries make room meanwhile.
                    raise ApiUnavailable(
                        f"revocation shard {name} could not be stored, will retry: {err}",
                        retry_after=REJECTED_RETRY_SECONDS,
                    ) from err
                raise err

    async def _write(self, name: str, data: bytes) -> None:
        if len(data) > WARN_SHARD_BYTES:
            log.warning(
                "revocation shard %s holds %d KiB, near the API server's 1 MiB limit: raise "
                "revocationShards",
                name,
                len(data) // 1024,
            )
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self._namespace,
                "labels": {MANAGED_BY: MANAGER},
            },
            "data": {DATA_KEY: data.decode()},
        }
        await self._kube.apply(configmap_path(self._namespace, name), body)
