# SPDX-License-Identifier: Apache-2.0
"""Leader election: one replica reconciles and writes, the others stand by and serve.

``acquire`` returns once this replica holds the Lease; ``hold`` renews it every retry period
and raises ``LeadershipLost`` when it could not for a whole renew deadline (shorter than the
lease duration, so the old leader stops before a new one may start); ``release`` hands it
back at once on a graceful stop, so a standby takes over within one retry period instead of
one lease duration. The decisions are ``wio.policy.leadership``'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from wio.clock import Clock
from wio.errors import ApiConflict, WioError
from wio.k8s.leader_lease import LeaderLease
from wio.policy.leadership import LeaseRecord, LeaseTimings, may_take, released, taken

log = logging.getLogger(__name__)


class LeadershipLost(Exception):
    """The Lease could not be renewed in time, or another replica holds it now."""


class LeaderElector:
    def __init__(
        self,
        lease: LeaderLease,
        *,
        identity: str,
        timings: LeaseTimings,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._lease = lease
        self.identity = identity
        self._timings = timings
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._on_change = on_change
        self._seen: tuple[str, object, str] | None = None
        self._seen_at = 0.0
        self.leading = False

    async def acquire(self) -> None:
        """Wait (forever; cancel to stop) until this replica holds the Lease."""
        waiting_for: str | None = None
        while not await self._try():
            holder = self._seen[0] if self._seen else ""
            if holder != waiting_for:
                log.info("standing by: %s leads", holder or "nobody (yet)")
                waiting_for = holder
            await self._sleep(self._timings.retry_period.total_seconds())
        log.info("leading as %s", self.identity)
        self._set_leading(True)

    async def hold(self) -> None:
        """Renew the Lease until cancelled; raise ``LeadershipLost`` when it cannot."""
        deadline = self._timings.renew_deadline.total_seconds()
        renewed = self._monotonic()
        while True:
            await self._sleep(self._timings.retry_period.total_seconds())
            left = deadline - (self._monotonic() - renewed)
            try:
                ok = await asyncio.wait_for(self._try(), timeout=max(left, 0.001))
            except TimeoutError:
                ok = False
            if ok:
                renewed = self._monotonic()
            elif self._monotonic() - renewed >= deadline:
                self._set_leading(False)
                raise LeadershipLost(
                    f"could not renew the leader Lease for {deadline:.0f}s; stopping"
                )

    async def release(self) -> None:
        """Hand the Lease back (graceful stop): best effort, an expiry covers a failure."""
        if not self.leading:
            return
        self._set_leading(False)
        try:
            record = await self._lease.read()
            if record is not None and record.holder == self.identity:
                await self._lease.write(released(record, self._clock.now()))
                log.info("released the leader Lease")
        except WioError as err:
            log.warning("could not release the leader Lease (it expires instead): %s", err)

    async def _try(self) -> bool:
        """Take or renew the Lease once; True when this replica holds it afterwards."""
        try:
            record = await self._lease.read()
        except WioError as err:
            log.debug("leader Lease unreadable: %s", err)
            return False
        now = self._monotonic()
        if record is not None and record.observed != self._seen:
            self._seen, self._seen_at = record.observed, now
        duration = self._timings.duration.total_seconds()
        if record is not None and not may_take(record, self.identity, self._seen_at, now, duration):
            return False
        if record is not None and record.holder not in ("", self.identity):
            log.info("taking over the leader Lease from %s (not renewed)", record.holder)
        return await self._write(taken(record, self.identity, self._clock.now(), int(duration)))

    async def _write(self, record: LeaseRecord) -> bool:
        try:
            await self._lease.write(record)
        except ApiConflict:
            return False  # another replica wrote first; read again next time
        except WioError as err:
            log.debug("leader Lease not written: %s", err)
            return False
        return True

    def _set_leading(self, leading: bool) -> None:
        self.leading = leading
        if self._on_change is not None:
            self._on_change(leading)
