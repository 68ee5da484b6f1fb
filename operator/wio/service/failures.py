# SPDX-License-Identifier: Apache-2.0
"""Failed issuances: when to try again, and what the object's conditions say meanwhile.

- ``backoff``: exponential with full jitter, capped below a tenth of what validity is left,
  never shorter than a ``Retry-After``.
- ``failure``: what a failed issuance means for the object: when to try again, the
  conditions (Ready stays True while the old credential is valid) and whether to tell
  anyone (an Event only when the error changes).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from wio.clock import rfc3339
from wio.errors import SignerRejected, SignerUnavailable, WioError
from wio.service.status import Condition

# Backoff after a failed issuance: base and ceiling; the ceiling also stays below a tenth of
# whatever validity the current credential has left.
BACKOFF_BASE = dt.timedelta(seconds=2)
BACKOFF_MAX = dt.timedelta(minutes=5)
# A permanent failure (signer refuses, invalid object) is looked at again this often, in case
# an admin fixed the signer; spec changes retry at once.
PERMANENT_RETRY = dt.timedelta(minutes=10)


@dataclass
class Attempts:
    """Consecutive failures of one object, and the last error (an Event per new error only)."""

    failures: int = 0
    last_reason: str = ""


def backoff(
    failures: int,
    not_after: dt.datetime | None,
    now: dt.datetime,
    rng: random.Random,
    retry_after: float | None,
) -> dt.timedelta:
    """How long to wait after the ``failures``-th consecutive failure (see module docstring)."""
    delay: dt.timedelta = min(BACKOFF_BASE * (2 ** min(failures - 1, 20)), BACKOFF_MAX)
    delay = delay * (0.5 + rng.random())  # full spread: a fleet does not retry in lockstep
    if not_after is not None and not_after > now:
        delay = min(delay, (not_after - now) / 10)
    if retry_after is not None:
        delay = max(delay, dt.timedelta(seconds=retry_after))
    return max(delay, dt.timedelta(seconds=1))


@dataclass(frozen=True)
class Failure:
    """How one failed issuance is reported and retried."""

    retry_at: dt.datetime
    message: str
    conditions: list[Condition]
    signer_problem: bool
    event_reason: str | None  # None: the same error as last time, already told


def failure(
    err: WioError,
    attempts: Attempts,
    valid_until: dt.datetime | None,
    now: dt.datetime,
    rng: random.Random,
    *,
    retryable: bool,
) -> Failure:
    """Count the attempt and decide the retry time, conditions and Event of a failure."""
    attempts.failures += 1
    signer_problem = isinstance(err, SignerUnavailable | SignerRejected)
    if retryable:
        delay = backoff(attempts.failures, valid_until, now, rng, getattr(err, "retry_after", None))
    else:
        delay = PERMANENT_RETRY
    message = f"{err} (attempt {attempts.failures}; next try in {int(delay.total_seconds())}s)"
    conditions = [Condition("Issuing", False, "Failed", message)]
    if signer_problem:
        conditions.append(Condition("SignerAvailable", False, type(err).__name__, str(err)))
    if valid_until is not None and now < valid_until:
        valid = f"current credential valid until {rfc3339(valid_until)}"
        conditions.append(Condition("Ready", True, "Valid", valid))
    else:
        reason = "Expired" if valid_until else "NotIssued"
        conditions.append(Condition("Ready", False, reason, message))
    event_reason = None
    if attempts.last_reason != str(err):
        attempts.last_reason = str(err)
        event_reason = "SignerError" if signer_problem else "IssueFailed"
    return Failure(now + delay, message, conditions, signer_problem, event_reason)
