# SPDX-License-Identifier: Apache-2.0
"""When a credential is due for renewal, and the reason type every reissue check returns.

- ``renewal_time`` places the renewal at ``fraction`` of the lifetime with uniform jitter, so
  a fleet issued together does not rotate together; the result is stored, never re-rolled.
- ``ReissueReason`` is what a check of the WorkloadIdentity chain (``wio.policy.reconcile``)
  or the ScopedCredential chain (``wio.policy.scoped``) returns: a CamelCase token usable as a
  Kubernetes condition reason and a Prometheus label, and a message that names what is wrong
  and never contains key material.

Both are pure: functions of their inputs and ``now``.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from dataclasses import dataclass
from fractions import Fraction

from wio.errors import ValidationError

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_SECOND_US = 1_000_000
_REASON = re.compile(r"[A-Z][A-Za-z0-9]*")

# --- renewal time ----------------------------------------------------------------------------


def renewal_time(
    not_before: dt.datetime,
    not_after: dt.datetime,
    fraction: float = 0.5,
    jitter: float = 0.1,
    *,
    rng: random.Random,
) -> dt.datetime:
    """When to renew a credential valid from ``not_before`` to ``not_after``.

    ``due = not_before + lifetime * fraction * (1 + u)``, ``u`` uniform in
    ``[-jitter, +jitter]``, truncated to whole seconds. When truncation would fall before the
    earliest allowed instant it is moved up to the first whole second inside the window, so
    the result always lies within ``[nb + L*f*(1-j), nb + L*f*(1+j)]`` whenever that window
    holds a whole second (it holds none only for lifetimes of a few seconds).

    Arithmetic is exact (integer microseconds and ``Fraction``) so the bounds are the bounds.
    Pass ``random.SystemRandom()`` in production and a seeded ``random.Random`` in tests.
    """
    _require_aware(not_before, "notBefore")
    _require_aware(not_after, "notAfter")
    if not_after <= not_before:
        raise ValidationError("notAfter", "must be after notBefore")
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise ValidationError("fraction", "must be a number")
    if not (math.isfinite(fraction) and 0 < fraction < 1):
        raise ValidationError("fraction", "must be strictly between 0 and 1")
    if isinstance(jitter, bool) or not isinstance(jitter, int | float):
        raise ValidationError("jitter", "must be a number")
    if not (math.isfinite(jitter) and 0 <= jitter < 1):
        raise ValidationError("jitter", "must be at least 0 and less than 1")
    if Fraction(fraction) * (1 + Fraction(jitter)) >= 1:
        # The latest renewal would fall at or after expiry: the credential could lapse.
        raise ValidationError("jitter", "fraction * (1 + jitter) must be below 1")

    start_us = (not_before - _EPOCH) // _MICROSECOND
    lifetime_us = (not_after - not_before) // _MICROSECOND
    f, j = Fraction(fraction), Fraction(jitter)
    u = Fraction(rng.uniform(-jitter, jitter)) if jitter else Fraction(0)
    u = min(max(u, -j), j)  # uniform() may round a hair past its bounds
    due_us = start_us + lifetime_us * f * (1 + u)
    earliest_us = start_us + lifetime_us * f * (1 - j)
    latest_us = start_us + lifetime_us * f * (1 + j)

    due_s = math.floor(due_us / _SECOND_US)
    first_s, last_s = math.ceil(earliest_us / _SECOND_US), math.floor(latest_us / _SECOND_US)
    if first_s <= last_s:
        due_s = min(max(due_s, first_s), last_s)
    return _EPOCH + dt.timedelta(seconds=due_s)


# --- reissue reasons -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReissueReason:
    """Why a credential must be reissued: a CamelCase ``reason`` token and a human message."""

    reason: str
    message: str

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str) or not _REASON.fullmatch(self.reason):
            raise ValidationError("reason", "must be a CamelCase token")
        if not isinstance(self.message, str) or not self.message:
            raise ValidationError("message", "must be a non-empty string")


# --- helpers ---------------------------------------------------------------------------------


def _require_aware(when: dt.datetime, name: str) -> None:
    if not isinstance(when, dt.datetime) or when.utcoffset() is None:
        raise ValidationError(name, "must be a timezone-aware datetime")
