# SPDX-License-Identifier: Apache-2.0
"""One work queue and one due-time scheduler per process, instead of a task per object.

- ``WorkQueue`` holds object keys to reconcile: a key queued twice is processed once, a key is
  never processed by two workers at once, and a key re-queued while in progress is processed
  again afterwards (the client-go workqueue contract). A fixed pool of workers drains it, which
  bounds in-flight work against the API server and the signer.
- ``DueScheduler`` keeps one due time per key in a heap and sleeps until the earliest; it is
  woken early when a key's due time moves. Nothing polls: an idle operator sleeps.
- ``TokenBucket`` rate-limits issuance so a restart after downtime does not stampede.
- ``KeyedLocks`` keeps reconcile and finalize of one object from overlapping.

Time comes from an injected monotonic source and wall clock, so tests drive them directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from wio.clock import Clock

K = TypeVar("K", bound=Hashable)
log = logging.getLogger(__name__)


class WorkQueue(Generic[K]):
    """Deduplicating queue of keys with a fixed pool of workers (see module docstring)."""

    def __init__(self, handler: Callable[[K], Awaitable[None]], *, workers: int) -> None:
        self._handler = handler
        self._workers = workers
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, key: K) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        self._idle.clear()
        if key not in self._processing:
            self._queue.put_nowait(key)

    def __len__(self) -> int:
        return len(self._dirty) + len(self._processing)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"wio-worker-{i}") for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def wait_idle(self) -> None:
        """Until nothing is queued or in progress (tests and graceful shutdown)."""
        await self._idle.wait()

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._dirty.discard(key)
            self._processing.add(key)
            try:
                await self._handler(key)
            except asyncio.CancelledError:
                raise
            except Exception:  # a handler bug must not kill the worker; the handler logs details
                log.exception("unhandled error while reconciling %s", key)
            finally:
                self._processing.discard(key)
                if key in self._dirty:
                    self._queue.put_nowait(key)
                if not self._dirty and not self._processing:
                    self._idle.set()


class DueScheduler(Generic[K]):
    """Calls ``fire(key)`` when a key's due time arrives; one sleeping task for all keys."""

    def __init__(self, fire: Callable[[K], None], clock: Clock) -> None:
        self._fire = fire
        self._clock = clock
        self._due: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._counter = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def schedule(self, key: K, when: dt.datetime) -> None:
        """Set (or move) ``key``'s due time; earlier than the current earliest wakes the loop."""
        ts = when.timestamp()
        if self._due.get(key) == ts:
            return
        self._due[key] = ts
        self._counter += 1
        heapq.heappush(self._heap, (ts, self._counter, key))
        if self._heap[0][2] == key:
            self._wake.set()

    def cancel(self, key: K) -> None:
        # The heap entry stays and is skipped when popped: cheaper than a heap rebuild.
        self._due.pop(key, None)

    def due_at(self, key: K) -> dt.datetime | None:
        ts = self._due.get(key)
        return dt.datetime.fromtimestamp(ts, dt.UTC) if ts is not None else None

    def __len__(self) -> int:
        return len(self._due)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="wio-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            now = self._clock.now().timestamp()
            while self._heap and self._heap[0][0] <= now:
                ts, _, key = heapq.heappop(self._heap)
                if self._due.get(key) == ts:
                    del self._due[key]
                    self._fire(key)
            self._wake.clear()
            timeout = None if not self._heap else max(0.0, self._heap[0][0] - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` banked; ``acquire`` waits for one."""

    def __init__(
        self, rate: float, burst: int, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("TokenBucket needs rate > 0 and burst >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._monotonic = monotonic
        self._last = monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now

    async def acquire(self) -> None:
        async with self._lock:  # FIFO: waiters are served in arrival order
            self._refill()
            while self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self._rate)
                self._refill()
            self._tokens -= 1


class KeyedLocks(Generic[K]):
    """One lock per key, held by reconcile and finalize alike, dropped when nobody holds or
    waits for it (so ten thousand idle objects hold no locks)."""

    def __init__(self) -> None:
        self._locks: dict[K, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: K) -> AsyncIterator[None]:
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
