# SPDX-License-Identifier: Apache-2.0
"""Leader election on a ``coordination.k8s.io`` Lease: who may hold it, and what to write.

Every replica serves the public documents and introspection; only the holder of the Lease
reconciles and writes. These are the decisions, as pure functions of what was read and the
time; ``wio.service.leadership`` does the reading and writing.

Expiry is judged the way client-go's leader election judges it: not by the ``renewTime``
another replica wrote (its clock may be off), but by how long this replica has seen the same
record unchanged, on its own monotonic clock. A holder that stopped renewing is taken over
one lease duration after the record last changed here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class LeaseTimings:
    """How long a Lease is good for, how soon its holder gives up renewing, how often to try.

    ``renew_deadline`` < ``duration``: a leader that cannot renew stops leading before
    anyone else may start, so two replicas never write at once.
    """

    duration: dt.timedelta
    renew_deadline: dt.timedelta
    retry_period: dt.timedelta

    def __post_init__(self) -> None:
        if not dt.timedelta(0) < self.retry_period < self.renew_deadline < self.duration:
            raise ValueError(
                "leader election timings need 0 < retryPeriod < renewDeadline < leaseDuration"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """The parts of a Lease's spec that election reads and writes."""

    holder: str
    duration_seconds: int
    acquire_time: dt.datetime | None
    renew_time: dt.datetime | None
    transitions: int
    resource_version: str = ""

    @property
    def observed(self) -> tuple[str, dt.datetime | None, str]:
        """What must change for the record to count as renewed."""
        return (self.holder, self.renew_time, self.resource_version)


def may_take(
    record: LeaseRecord, me: str, unchanged_since: float, now: float, duration: float
) -> bool:
    """May ``me`` write itself into ``record``? Yes when it is ours, released (no holder),
    or unchanged for a whole lease duration by this replica's monotonic clock (``now`` and
    ``unchanged_since`` are its seconds)."""
    if record.holder in ("", me):
        return True
    return now - unchanged_since >= max(duration, float(record.duration_seconds))


def taken(record: LeaseRecord | None, me: str, now: dt.datetime, duration: int) -> LeaseRecord:
    """``record`` (None: no Lease yet) with ``me`` holding it from ``now``."""
    if record is None:
        return LeaseRecord(me, duration, now, now, 0)
    if record.holder == me:
        return replace(record, duration_seconds=duration, renew_time=now)
    return replace(
        record,
        holder=me,
        duration_seconds=duration,
        acquire_time=now,
        renew_time=now,
        transitions=record.transitions + 1,
    )


def released(record: LeaseRecord, now: dt.datetime) -> LeaseRecord:
    """``record`` handed back at once: no holder, so any replica may take it on its next try
    (client-go's ``ReleaseOnCancel`` writes the same)."""
    return replace(record, holder="", duration_seconds=1, renew_time=now)
