# SPDX-License-Identifier: Apache-2.0
"""Renewal is due at the jittered fraction of a lifetime, in whole seconds, and a reason to
reissue is a CamelCase token. The chains that return those reasons are tested with their own
modules (``test_reconcile_policy``, ``test_scoped_policy``)."""

from __future__ import annotations

import datetime as dt
import math
import random
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from wio.errors import ValidationError
from wio.policy.rotation import ReissueReason, renewal_time

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# --- renewal_time -----------------------------------------------------------------------------


def seeded(seed: int) -> random.Random:
    """A reproducible rng: tests need determinism, production passes random.SystemRandom()."""
    return random.Random(seed)  # noqa: S311 - jitter is not a secret


def _us(when: dt.datetime) -> int:
    return (when - EPOCH) // dt.timedelta(microseconds=1)


@given(
    start=st.integers(min_value=1_600_000_000, max_value=2_200_000_000),
    lifetime=st.integers(min_value=1, max_value=400 * 86_400),
    fraction=st.floats(min_value=0.01, max_value=0.99),
    jitter=st.floats(min_value=0.0, max_value=0.5),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_renewal_time_lies_within_the_jitter_window_in_whole_seconds(
    start: int, lifetime: int, fraction: float, jitter: float, seed: int
) -> None:
    assume(Fraction(fraction) * (1 + Fraction(jitter)) < 1)
    nb = EPOCH + dt.timedelta(seconds=start)
    na = nb + dt.timedelta(seconds=lifetime)
    due = renewal_time(nb, na, fraction, jitter, rng=seeded(seed))

    assert due.microsecond == 0
    assert due.tzinfo is not None
    # Exact bounds: nb + L*f*(1-j) <= due <= nb + L*f*(1+j).
    f, j, life_us = Fraction(fraction), Fraction(jitter), lifetime * 1_000_000
    lower = _us(nb) + life_us * f * (1 - j)
    upper = _us(nb) + life_us * f * (1 + j)
    if math.ceil(lower / 1_000_000) <= math.floor(upper / 1_000_000):
        assert lower <= _us(due) <= upper
    else:
        # A window narrower than a second holding no whole second: truncation is all we do.
        assert math.floor(lower / 1_000_000) * 1_000_000 <= _us(due) <= upper
    assert nb <= due < na
    # Same seed, same answer: the rng is the only source of variation.
    assert due == renewal_time(nb, na, fraction, jitter, rng=seeded(seed))


@given(
    micros=st.integers(min_value=0, max_value=999_999),
    lifetime=st.integers(min_value=600, max_value=86_400),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_renewal_time_with_sub_second_not_before_stays_in_the_window(
    micros: int, lifetime: int, seed: int
) -> None:
    nb = NOW + dt.timedelta(microseconds=micros)
    na = nb + dt.timedelta(seconds=lifetime)
    due = renewal_time(nb, na, rng=seeded(seed))
    assert due.microsecond == 0
    assert nb + (na - nb) * 0.45 <= due <= nb + (na - nb) * 0.55


def test_renewal_time_without_jitter_is_the_fraction_point() -> None:
    nb = NOW
    due = renewal_time(nb, nb + dt.timedelta(hours=1), 0.5, 0.0, rng=seeded(1))
    assert due == nb + dt.timedelta(minutes=30)


def test_renewal_times_spread_across_the_whole_window() -> None:
    # A fleet issued at the same instant must not rotate in lockstep.
    nb, na = NOW, NOW + dt.timedelta(hours=1)
    rng = seeded(7)
    dues = {renewal_time(nb, na, rng=rng) for _ in range(2000)}
    offsets = sorted((d - nb).total_seconds() for d in dues)
    assert offsets[0] < 1620 + 30  # near 27 minutes...
    assert offsets[-1] > 1980 - 30  # ...and near 33 minutes
    assert len(dues) > 300


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.0}, "fraction"),
        ({"fraction": float("nan")}, "fraction"),
        ({"fraction": True}, "fraction"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": 1.0}, "jitter"),
        ({"fraction": 0.9, "jitter": 0.2}, "jitter"),  # could renew after expiry
        ({"not_after": NOW}, "notAfter"),
        ({"not_after": NOW - dt.timedelta(seconds=1)}, "notAfter"),
        ({"not_before": NOW.replace(tzinfo=None)}, "notBefore"),
        ({"not_after": (NOW + dt.timedelta(hours=1)).replace(tzinfo=None)}, "notAfter"),
    ],
)
def test_renewal_time_arguments_are_validated(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "not_before": NOW,
        "not_after": NOW + dt.timedelta(hours=1),
        "fraction": 0.5,
        "jitter": 0.1,
    }
    args.update(kwargs)
    with pytest.raises(ValidationError) as caught:
        renewal_time(**args, rng=seeded(0))  # type: ignore[arg-type]
    assert caught.value.field == field


# --- reissue reasons --------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "renewalDue", "Renewal Due", "Renewal-Due", "Due!"])
def test_reissue_reasons_must_be_camel_case_tokens(reason: str) -> None:
    with pytest.raises(ValidationError):
        ReissueReason(reason, "message")


def test_a_reissue_reason_needs_a_message() -> None:
    assert ReissueReason("RenewalDue", "due").message == "due"
    with pytest.raises(ValidationError):
        ReissueReason("RenewalDue", "")
