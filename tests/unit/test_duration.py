# SPDX-License-Identifier: Apache-2.0
"""Durations read like the CRDs write them (whole h/m/s, largest first), refuse everything
else naming the field, and print in one canonical spelling that reads back to the same value."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wio.errors import ValidationError
from wio.models.duration import format_duration, parse_duration

pytestmark = pytest.mark.unit

# The CRDs' CEL format rule (crds/*.yaml); every value it accepts must parse here.
CRD_FORMAT = re.compile(r"^([0-9]{1,5}h)?([0-9]{1,5}m)?([0-9]{1,5}s)?$")
LONGEST = timedelta(hours=99_999, minutes=59, seconds=59)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h", 3600),
        ("30m", 1800),
        ("90s", 90),
        ("1h30m", 5400),
        ("2h45m10s", 9910),
        ("1h10s", 3610),
        ("90m", 5400),
        ("007s", 7),
        ("99999h", 99_999 * 3600),
    ],
)
def test_go_style_durations_parse_to_their_seconds(text: str, seconds: int) -> None:
    assert parse_duration(text, field="spec.x509.ttl") == timedelta(seconds=seconds)


def test_zero_is_refused_unless_allowed() -> None:
    with pytest.raises(ValidationError, match="zero") as err:
        parse_duration("0s", field="spec.x509.ttl")
    assert err.value.field == "spec.x509.ttl"
    assert parse_duration("0s", field="skew", allow_zero=True) == timedelta(0)
    assert parse_duration("0h0m", field="skew", allow_zero=True) == timedelta(0)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("", "not a duration"),
        ("1d", "not a duration"),
        ("1.5h", "fraction"),
        ("-1h", "negative"),
        ("1h 30m", "not a duration"),
        (" 1h", "not a duration"),
        ("30m1h", "largest unit first"),
        ("1h1h", "not a duration"),
        ("1H", "not a duration"),
        ("100ms", "not a duration"),
        ("100000h", "not a duration"),
        ("h", "not a duration"),
        ("\u0661h", "not a duration"),  # an Arabic-Indic digit: \d would accept it
        (30, "got int"),
        (1.5, "got float"),
        (True, "got bool"),
        (None, "got NoneType"),
        (["1h"], "got list"),
    ],
)
def test_malformed_durations_are_refused_naming_the_field(value: object, hint: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(hint)) as err:
        parse_duration(value, field="spec.jwt.ttl")
    assert err.value.field == "spec.jwt.ttl"
    assert str(err.value).startswith("spec.jwt.ttl: ")


def test_a_refused_value_is_echoed_only_in_part() -> None:
    with pytest.raises(ValidationError) as err:
        parse_duration("x" * 500, field="ttl")
    assert len(str(err.value)) < 250


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1, "1s"),
        (59, "59s"),
        (60, "1m"),
        (90, "1m30s"),
        (3600, "1h"),
        (3610, "1h10s"),
        (3661, "1h1m1s"),
        (5400, "1h30m"),
        (86_400, "24h"),
        (365 * 86_400, "8760h"),
    ],
)
def test_format_gives_the_canonical_spelling(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(
    "value",
    [timedelta(seconds=-1), timedelta(milliseconds=1500), 90, "1h"],
)
def test_format_refuses_what_no_duration_can_hold(value: object) -> None:
    with pytest.raises(ValidationError):
        format_duration(value)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=int(LONGEST.total_seconds())))
def test_format_then_parse_round_trips(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    text = format_duration(value)
    assert CRD_FORMAT.fullmatch(text)
    assert parse_duration(text, field="ttl", allow_zero=True) == value


@given(
    st.one_of(st.none(), st.integers(0, 99_999)),
    st.one_of(st.none(), st.integers(0, 99_999)),
    st.one_of(st.none(), st.integers(0, 99_999)),
)
def test_anything_the_crd_accepts_parses_and_canonicalises_stably(
    hours: int | None, minutes: int | None, seconds: int | None
) -> None:
    text = "".join(
        f"{amount}{unit}"
        for amount, unit in ((hours, "h"), (minutes, "m"), (seconds, "s"))
        if amount is not None
    )
    if not text:
        return  # the CRD's own rule refuses the empty string
    assert CRD_FORMAT.fullmatch(text)
    value = parse_duration(text, field="ttl", allow_zero=True)
    assert value == timedelta(hours=hours or 0, minutes=minutes or 0, seconds=seconds or 0)
    canonical = format_duration(value)
    if value <= LONGEST:  # beyond it the canonical form needs six digits of hours
        assert parse_duration(canonical, field="ttl", allow_zero=True) == value


@given(st.text(max_size=12))
def test_parse_accepts_exactly_the_crd_format_and_refuses_the_rest_cleanly(text: str) -> None:
    if text and CRD_FORMAT.fullmatch(text):
        assert parse_duration(text, field="ttl", allow_zero=True) >= timedelta(0)
    else:
        with pytest.raises(ValidationError) as err:
            parse_duration(text, field="ttl", allow_zero=True)
        assert err.value.field == "ttl"
