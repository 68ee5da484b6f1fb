# SPDX-License-Identifier: Apache-2.0
"""The one scheduler and the work queue: due order, deduplication, one worker per key."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from wio.clock import FakeClock
from wio.service.workqueue import DueScheduler, WorkQueue

pytestmark = pytest.mark.unit
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_overdue_keys_fire_earliest_first_and_ties_in_the_order_given() -> None:
    async def scenario() -> list[str]:
        fired: list[str] = []
        clock = FakeClock(T0)
        scheduler: DueScheduler[str] = DueScheduler(fired.append, clock)
        # As the service does after a restart: everything already due, sorted by expiry.
        for key, minutes in [("b", -5), ("a", -9), ("c", -5), ("d", -1)]:
            scheduler.schedule(key, T0 + dt.timedelta(minutes=minutes))
        scheduler.schedule("later", T0 + dt.timedelta(hours=1))
        scheduler.start()
        for _ in range(20):
            await asyncio.sleep(0)
        await scheduler.stop()
        return fired

    assert asyncio.run(scenario()) == ["a", "b", "c", "d"]


def test_moving_or_cancelling_a_due_time_replaces_the_old_one() -> None:
    async def scenario() -> list[str]:
        fired: list[str] = []
        clock = FakeClock(T0)
        scheduler: DueScheduler[str] = DueScheduler(fired.append, clock)
        scheduler.schedule("moved", T0 + dt.timedelta(hours=1))
        scheduler.schedule("moved", T0 - dt.timedelta(seconds=1))
        scheduler.schedule("cancelled", T0 - dt.timedelta(seconds=2))
        scheduler.cancel("cancelled")
        scheduler.start()
        for _ in range(20):
            await asyncio.sleep(0)
        await scheduler.stop()
        return fired

    assert asyncio.run(scenario()) == ["moved"]


def test_a_key_queued_many_times_is_handled_once_and_never_concurrently() -> None:
    async def scenario() -> tuple[list[str], int]:
        handled: list[str] = []
        running: set[str] = set()
        overlap = 0

        async def handler(key: str) -> None:
            nonlocal overlap
            if key in running:
                overlap += 1
            running.add(key)
            await asyncio.sleep(0)
            handled.append(key)
            running.discard(key)

        queue: WorkQueue[str] = WorkQueue(handler, workers=4)
        for key in ["x", "x", "y", "x", "y"]:
            queue.add(key)
        queue.start()
        await queue.wait_idle()
        await queue.stop()
        return handled, overlap

    handled, overlap = asyncio.run(scenario())
    assert sorted(handled) == ["x", "y"]
    assert overlap == 0
