# SPDX-License-Identifier: Apache-2.0
"""Leader election decisions, and the elector against a scripted Lease, on fake clocks."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace

import pytest

from wio.clock import FakeClock
from wio.config import parse_config
from wio.errors import ApiConflict, ApiUnavailable, ConfigError
from wio.policy.leadership import LeaseRecord, LeaseTimings, may_take, released, taken
from wio.service.leadership import LeaderElector, LeadershipLost

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
TIMINGS = LeaseTimings(dt.timedelta(seconds=10), dt.timedelta(seconds=7), dt.timedelta(seconds=2))


def held_by(holder: str, version: str = "1") -> LeaseRecord:
    return LeaseRecord(holder, 10, NOW, NOW, 3, version)


def test_a_lease_held_by_another_is_taken_only_after_a_whole_duration_unchanged() -> None:
    record = held_by("b")
    assert not may_take(record, "a", unchanged_since=100.0, now=109.9, duration=10)
    assert may_take(record, "a", unchanged_since=100.0, now=110.0, duration=10)
    # The holder's own (longer) duration counts when it asked for more.
    longer = replace(record, duration_seconds=60)
    assert not may_take(longer, "a", unchanged_since=100.0, now=150.0, duration=10)


def test_our_own_or_a_released_lease_may_be_taken_at_once() -> None:
    assert may_take(held_by("a"), "a", unchanged_since=100.0, now=100.0, duration=10)
    assert may_take(held_by(""), "a", unchanged_since=100.0, now=100.0, duration=10)


def test_taking_over_counts_a_transition_and_renewing_does_not() -> None:
    later = NOW + dt.timedelta(seconds=30)
    took = taken(held_by("b"), "a", later, 10)
    assert (took.holder, took.acquire_time, took.renew_time) == ("a", later, later)
    assert took.transitions == 4
    assert took.resource_version == "1"  # written back against the version read
    renewed = taken(took, "a", later + dt.timedelta(seconds=2), 10)
    assert renewed.transitions == 4
    assert renewed.acquire_time == later
    first = taken(None, "a", NOW, 10)
    assert (first.holder, first.transitions, first.resource_version) == ("a", 0, "")


def test_a_released_lease_has_no_holder() -> None:
    handed = released(held_by("a"), NOW)
    assert handed.holder == ""
    assert handed.duration_seconds == 1


@pytest.mark.parametrize(
    ("timings", "field"),
    [
        ({"leaseDuration": "5s", "renewDeadline": "5s"}, "leaderElection.leaseDuration"),
        ({"renewDeadline": "2s", "retryPeriod": "2s"}, "leaderElection.retryPeriod"),
        ({"leaseDuration": "1h", "renewDeadline": "7s"}, "leaderElection.leaseDuration"),
        ({"enabled": "yes"}, "leaderElection.enabled"),
        ({"leaseTime": "5s"}, "leaderElection.leaseTime"),
    ],
)
def test_bad_leader_election_settings_are_refused_naming_the_field(
    timings: dict[str, str], field: str
) -> None:
    doc = {"trustDomain": "t.local", "jwtIssuer": "https://t.local", "leaderElection": timings}
    with pytest.raises(ConfigError) as refused:
        parse_config(doc, {})
    assert field in str(refused.value)


class ScriptedLease:
    """A Lease held in memory with resourceVersion checks, failing on cue."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.down = False
        self.slow_reads = False
        self.writes: list[LeaseRecord] = []

    async def read(self) -> LeaseRecord | None:
        if self.down:
            raise ApiUnavailable("GET lease: connection refused")
        record = self.record
        if self.slow_reads:
            await asyncio.sleep(0)  # the answer is on its way while others act
        return record

    async def write(self, record: LeaseRecord) -> None:
        if self.down:
            raise ApiUnavailable("PUT lease: connection refused")
        current = self.record.resource_version if self.record else ""
        if record.resource_version != current:
            raise ApiConflict("lease: the object has been modified")
        self.version += 1
        self.record = replace(record, resource_version=str(self.version))
        self.writes.append(self.record)


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def elector(lease: ScriptedLease, clock: Monotonic, me: str = "a") -> LeaderElector:
    return LeaderElector(
        lease,  # type: ignore[arg-type]
        identity=me,
        timings=TIMINGS,
        clock=FakeClock(NOW),
        monotonic=clock,
        sleep=clock.sleep,
    )


@pytest.mark.asyncio
async def test_a_free_lease_is_acquired_at_once() -> None:
    lease, clock = ScriptedLease(), Monotonic()
    a = elector(lease, clock)
    await a.acquire()
    assert a.leading
    assert lease.record is not None
    assert lease.record.holder == "a"
    assert clock.now == 1000.0


@pytest.mark.asyncio
async def test_a_standby_waits_while_the_leader_renews_and_takes_over_when_it_stops() -> None:
    lease, clock = ScriptedLease(), Monotonic()
    lease.record = held_by("b", "7")
    a = elector(lease, clock)
    waiting = asyncio.create_task(a.acquire())
    for _ in range(20):  # b renews every 2 s for 40 s: a never takes it
        await clock.sleep(2)
        assert lease.record is not None
        lease.record = replace(lease.record, renew_time=NOW, resource_version=f"r{clock.now}")
    assert not waiting.done()
    assert not a.leading
    # b stops renewing: a takes over one lease duration after the last change it saw.
    stopped = clock.now
    await asyncio.wait_for(waiting, timeout=5)
    assert a.leading
    assert lease.record.holder == "a"
    assert 10 <= clock.now - stopped <= 10 + 2


@pytest.mark.asyncio
async def test_a_leader_that_cannot_renew_steps_down_within_the_renew_deadline() -> None:
    lease, clock = ScriptedLease(), Monotonic()
    a = elector(lease, clock)
    await a.acquire()
    lease.down = True
    began = clock.now
    with pytest.raises(LeadershipLost):
        await asyncio.wait_for(a.hold(), timeout=5)
    assert not a.leading
    # Stepped down before anyone could take over (one lease duration).
    assert 7 <= clock.now - began < 10


@pytest.mark.asyncio
async def test_a_leader_whose_lease_was_taken_steps_down() -> None:
    lease, clock = ScriptedLease(), Monotonic()
    a = elector(lease, clock)
    await a.acquire()
    assert lease.record is not None
    lease.record = replace(lease.record, holder="usurper", resource_version="x")
    with pytest.raises(LeadershipLost):
        await asyncio.wait_for(a.hold(), timeout=5)


@pytest.mark.asyncio
async def test_release_hands_the_lease_back_only_if_still_ours() -> None:
    lease, clock = ScriptedLease(), Monotonic()
    a = elector(lease, clock)
    await a.acquire()
    await a.release()
    assert lease.record is not None
    assert lease.record.holder == ""
    b = elector(lease, clock, "b")
    await b.acquire()
    await a.release()  # no longer leading: writes nothing
    assert lease.record.holder == "b"


@pytest.mark.asyncio
async def test_two_replicas_racing_for_a_free_lease_never_both_win() -> None:
    lease, clock = ScriptedLease(), Monotonic()
    lease.slow_reads = True  # both read "no Lease" before either writes
    a, b = elector(lease, clock, "a"), elector(lease, clock, "b")
    tries = {asyncio.create_task(a.acquire()): a, asyncio.create_task(b.acquire()): b}
    done, pending = await asyncio.wait(tries, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1
    winner = tries[done.pop()]
    (loser,) = (tries[task] for task in pending)
    assert winner.leading
    assert not loser.leading
    assert lease.record is not None
    assert lease.record.holder == winner.identity
    assert len(lease.writes) == 1  # the loser's create was refused (409), not applied
    for task in pending:
        task.cancel()
