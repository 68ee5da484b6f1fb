# SPDX-License-Identifier: Apache-2.0
"""Clocks, injected wherever a decision depends on the time.

Production code takes a ``Clock`` and never calls ``datetime.now`` itself, so
tests pass a ``FakeClock`` instead of patching modules (ARCHITECTURE.md §8).
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current UTC time."""

    def now(self) -> dt.datetime:
        """Return the current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FakeClock:
    """A clock that moves only when told to; for tests and simulations."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start time")

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, seconds: float) -> dt.datetime:
        self._now += dt.timedelta(seconds=seconds)
        return self._now

    def set(self, when: dt.datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FakeClock.set needs a timezone-aware time")
        self._now = when


def whole_seconds(when: dt.datetime) -> dt.datetime:
    """Truncate to whole seconds: stored times never carry fractions (ARCHITECTURE.md §5)."""
    return when.replace(microsecond=0)


def rfc3339(when: dt.datetime) -> str:
    """A UTC time in whole seconds, as status fields, annotations and documents store it."""
    return whole_seconds(when.astimezone(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: object) -> dt.datetime | None:
    """An RFC 3339 time read back from an object; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
