# SPDX-License-Identifier: Apache-2.0
"""The durable revocation list: ConfigMaps in the operator's namespace, filled one at a time.

Storage only: the controllers decide what is revoked; this module keeps it.

**Sharded, filled in order.** No one object grows with the fleet: entries go into
``<name>-00``, ``<name>-01``, … (at most ``shards``, 64 by default). New entries join the
shard being filled until it holds ``SHARD_BUDGET_BYTES`` (128 KiB), then the emptiest shard
is filled next. An entry stays in its shard until its credential has expired, and a write
touches only the shards whose entries changed: a burst of revocations rewrites one or two
small shards, not the whole list. At about 190 bytes an entry, the default holds some 44,000
unexpired revocations (66,000 before any shard refuses more).

**Durable before a finalizer lets go.** ``add`` returns only once every shard that holds a
new entry is stored. Concurrent revocations share writes: while one write is in flight,
later entries wait and go out together in the next, so deleting a thousand identities costs
far fewer than a thousand writes. A write the API server refuses, or a list with no room
left, is a retryable error (the finalizer waiting on it backs off and tries again while
expiring entries make room), never a permanent one.

**Migration.** At start the store lists wio's ConfigMaps in its namespace. The first
release's single list (``<name>``) and shards beyond the configured count are moved into
the shards; then the old list is deleted (with its UID as a precondition) and the extra
shards are emptied.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import logging
import re
from collections.abc import Iterable
from dataclasses import replace

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
DEFAULT_SHARDS = 64
MAX_SHARDS = 99
#: A shard is filled up to this many bytes of entries. Small, because the shard being filled
#: is rewritten whole with every write of a burst, and the API server decodes and caches each
#: version; far below its 1 MiB object limit. Once every shard is that full the emptiest takes
#: more, up to one and a half times this, beyond which the list counts as full.
SHARD_BUDGET_BYTES = 128 * 1024
#: How soon a write the API server refused (or a full list) is tried again.
REJECTED_RETRY_SECONDS = 30.0


def shard_names(name: str, count: int) -> list[str]:
    return [f"{name}-{index:02d}" for index in range(count)]


def _cost(entry: Revocation) -> int:
    return len(entry.row_text) + 1


class RevocationStore:
    def __init__(
        self,
        kube: KubeClient,
        *,
        namespace: str,
        name: str,
        clock: Clock,
        shards: int = DEFAULT_SHARDS,
        budget: int = SHARD_BUDGET_BYTES,
    ) -> None:
        if not 1 <= shards <= MAX_SHARDS:
            raise ValueError(f"shards must be 1 to {MAX_SHARDS}")
        self._kube = kube
        self._namespace = namespace
        self._legacy = name
        self._names = shard_names(name, shards)
        self._shard_pattern = re.compile(re.escape(name) + r"-(\d\d)")
        self._clock = clock
        self._budget = budget
        self._hard_limit = budget * 3 // 2
        self._lock = asyncio.Lock()
        #: Each shard's entries, and its size in bytes.
        self._shards: list[dict[Key, Revocation]] = [{} for _ in range(shards)]
        self._sizes = [0] * shards
        self._where: dict[Key, int] = {}
        #: (expiry, key) of every entry, earliest first: pruning never scans the whole list.
        self._expiry: list[tuple[dt.datetime, Key]] = []
        #: Expired entries kept until their upstream revocation is confirmed.
        self._held: set[Key] = set()
        self._filling = 0
        self._dirty: set[int] = set()
        #: Shards of an earlier, larger count: emptied by the next write.
        self._stale: set[str] = set()
        #: The shards that exist (listed at start, or written since).
        self._existing: set[str] = set()
        self._snapshot: RevocationList | None = RevocationList()

    @property
    def current(self) -> RevocationList:
        """Every stored entry, in revocation order: an immutable value for readers
        (introspection, the trust fan-out), made again only after a change."""
        if self._snapshot is None:
            entries = (e for shard in self._shards for e in shard.values())
            self._snapshot = RevocationList.of(entries)
        return self._snapshot

    @property
    def shard_count(self) -> int:
        return len(self._names)

    async def load(self) -> None:
        """Read every shard (and an earlier layout, which is moved at once)."""
        legacy_uid: str | None = None
        moved: list[Revocation] = []
        for body in await self._kube.list(
            configmap_path(self._namespace), label_selector=f"{MANAGED_BY}={MANAGER}"
        ):
            meta = body.get("metadata") or {}
            name = str(meta.get("name", ""))
            raw = ((body.get("data") or {}).get(DATA_KEY) or "").encode()
            match = self._shard_pattern.fullmatch(name)
            if match is not None:
                self._existing.add(name)
            try:
                if name == self._legacy:
                    legacy_uid = meta.get("uid")
                    moved += parse_legacy(raw)
                elif match is not None:
                    entries = parse_shard(raw)
                    index = int(match.group(1))
                    if index < self.shard_count:
                        for entry in entries:
                            self._place(entry, index)
                    elif entries:
                        self._stale.add(name)  # of a larger count: emptied once moved
                        moved += entries
            except ValidationError as err:
                # Revocations must never be lost quietly: a list wio cannot read stops it.
                raise ValidationError(
                    f"ConfigMap {self._namespace}/{name}", f"unreadable revocation list: {err}"
                ) from err
        self._dirty.clear()  # what was read is stored as it is
        self._filling = self._sizes.index(min(self._sizes))
        self._prune()
        if moved or legacy_uid is not None:
            await self.add(moved)
            log.info("revocation list moved into shards of %s", self._legacy)
        if legacy_uid is not None:
            # Replaced meanwhile by someone else (409): not wio's to delete.
            with contextlib.suppress(ApiConflict):
                await self._kube.delete(
                    configmap_path(self._namespace, self._legacy), uid=legacy_uid
                )

    async def add(self, entries: Iterable[Revocation]) -> None:
        for entry in entries:
            if entry.key not in self._where:  # the first record of a credential wins
                self._place(entry, self._shard_with_room(_cost(entry)))
        await self._flush()

    async def mark_upstream_done(self, key: Key) -> None:
        index = self._where.get(key)
        if index is None:
            return
        entry = self._shards[index][key]
        self._remove(entry)
        if key in self._held:
            self._held.discard(key)  # expired, and now nothing upstream is left to do
        else:
            self._place(replace(entry, upstream_pending=False), index)
        await self._flush()

    def _place(self, entry: Revocation, index: int) -> None:
        self._shards[index][entry.key] = entry
        self._sizes[index] += _cost(entry)
        self._where[entry.key] = index
        heapq.heappush(self._expiry, (entry.expires_at, entry.key))
        self._dirty.add(index)
        self._snapshot = None

    def _remove(self, entry: Revocation) -> None:
        index = self._where.pop(entry.key)
        del self._shards[index][entry.key]
        self._sizes[index] -= _cost(entry)
        self._dirty.add(index)
        self._snapshot = None

    def _shard_with_room(self, cost: int) -> int:
        """The shard being filled, or the emptiest once it is full."""
        if self._sizes[self._filling] + cost > self._budget:
            self._filling = self._sizes.index(min(self._sizes))
        return self._filling

    def _spill(self, index: int) -> None:
        """Move a too-full shard's newest entries to shards that have room again."""
        shard = self._shards[index]
        while self._sizes[index] > self._hard_limit and shard:
            key = next(reversed(shard))
            cost = _cost(shard[key])
            target = self._sizes.index(min(self._sizes))
            if self._sizes[target] + cost > self._hard_limit:
                return
            entry = shard[key]
            self._remove(entry)
            self._place(entry, target)

    def _prune(self) -> None:
        """Entries whose credential has expired (and that need no more upstream work) leave
        their shards, which are written with the next flush."""
        now = self._clock.now()
        while self._expiry and self._expiry[0][0] <= now:
            expires, key = heapq.heappop(self._expiry)
            index = self._where.get(key)
            if index is None or self._shards[index][key].expires_at != expires:
                continue  # gone already, or placed again (moved) with its own heap entry
            entry = self._shards[index][key]
            if entry.upstream_pending:
                self._held.add(key)  # leaves once the source confirms
            else:
                self._remove(entry)

    async def _flush(self) -> None:
        async with self._lock:
            self._prune()
            if not self._dirty and not self._stale:
                return  # someone else's write already carried our entries
            for index in sorted(self._dirty):
                self._spill(index)
            dirty, self._dirty = sorted(self._dirty), set()
            stale, self._stale = sorted(self._stale), set()
            writes = {
                self._names[i]: shard_json(self._shards[i].values())
                for i in dirty
                if self._sizes[i] <= self._hard_limit
            }
            full = [self._names[i] for i in dirty if self._names[i] not in writes]
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
            for name in [*full, *(name for name, _ in failed)]:
                # The next caller retries with everything the shard holds by then.
                if name in self._names:
                    self._dirty.add(self._names.index(name))
                else:
                    self._stale.add(name)
            if full:
                raise ApiUnavailable(
                    f"the revocation list is full ({self.shard_count} shards); raise "
                    "revocationShards. Will retry as entries expire",
                    retry_after=REJECTED_RETRY_SECONDS,
                )
            if failed:
                name, err = failed[0]
                if isinstance(err, ApiRejected):
                    # Refused as it is: a finalizer waiting on this retries with backoff,
                    # never gives up; expiring entries make room meanwhile.
                    raise ApiUnavailable(
                        f"revocation shard {name} could not be stored, will retry: {err}",
                        retry_after=REJECTED_RETRY_SECONDS,
                    ) from err
                raise err

    async def _write(self, name: str, data: bytes) -> None:
        """Create the shard, or merge-patch its data. Not server-side apply: the API server
        decodes an apply patch as YAML, which for a shard of half a MiB costs it far more CPU
        than JSON does, and a mass revocation writes shards many times a second."""
        path = configmap_path(self._namespace, name)
        patch = {"data": {DATA_KEY: data.decode()}}
        if name not in self._existing:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": name,
                    "namespace": self._namespace,
                    "labels": {MANAGED_BY: MANAGER},
                },
                **patch,
            }
            try:
                await self._kube.create(configmap_path(self._namespace), body, metadata_only=True)
            except ApiConflict:
                pass  # there already (made before a restart, say): patch it below
            else:
                self._existing.add(name)
                return
        await self._kube.merge_patch(path, patch)
        self._existing.add(name)


class RevocationMirror:
    """What a standby replica knows of the revocation list: the leader's ConfigMaps, watched.

    Read-only. Every stored form counts (the shards of any count, and the first release's
    single list), so a standby never answers "active" for something the leader has stored
    as revoked, whatever layout the leader is migrating from.
    """

    def __init__(self, kube: KubeClient, *, namespace: str, name: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._legacy = name
        self._shard_pattern = re.compile(re.escape(name) + r"-(\d\d)")
        self._stored: dict[str, tuple[Revocation, ...]] = {}
        self._snapshot: RevocationList | None = RevocationList()
        self.synced = asyncio.Event()

    @property
    def current(self) -> RevocationList:
        if self._snapshot is None:
            self._snapshot = RevocationList.of(
                e for entries in self._stored.values() for e in entries
            )
        return self._snapshot

    async def follow(self) -> None:
        """Keep up with the leader's writes until cancelled."""
        async for event in self._kube.watch(
            configmap_path(self._namespace), label_selector=f"{MANAGED_BY}={MANAGER}"
        ):
            if event.type == "LISTED":
                listed = {self._name_of(body) for body in event.objects}
                for gone in set(self._stored) - listed:
                    del self._stored[gone]
            for body in event.objects:
                self._take(body, deleted=event.type == "DELETED")
            self._snapshot = None
            self.synced.set()

    def _name_of(self, body: dict[str, object]) -> str:
        meta = body.get("metadata")
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""

    def _take(self, body: dict[str, object], *, deleted: bool) -> None:
        name = self._name_of(body)
        if name != self._legacy and self._shard_pattern.fullmatch(name) is None:
            return
        if deleted:
            self._stored.pop(name, None)
            return
        data = body.get("data")
        raw = (data.get(DATA_KEY) or "") if isinstance(data, dict) else ""
        try:
            entries = (
                parse_legacy(raw.encode()) if name == self._legacy else parse_shard(raw.encode())
            )
        except ValidationError as err:
            # Keep what was read before: dropping entries would un-revoke credentials.
            log.warning(
                "ConfigMap %s/%s: unreadable revocation list: %s", self._namespace, name, err
            )
            return
        self._stored[name] = tuple(entries)
