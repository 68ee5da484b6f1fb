# SPDX-License-Identifier: Apache-2.0
"""Durations as the API and the admin configuration write them: ``1h``, ``30m``, ``90s``, ``1h30m``.

The grammar is the subset of Go's ``time.ParseDuration`` that the CRDs' CEL rules accept
(``^([0-9]{1,5}h)?([0-9]{1,5}m)?([0-9]{1,5}s)?$``, not empty): whole hours, minutes and
seconds, largest unit first, each part at most five digits. Keeping one grammar for CRDs and
configuration means a value that passes admission always parses here, and a value refused
here names the same rule the API server states.

Deliberately absent: fractions (``1.5h``), negatives, days (``1d`` reads as a day to some and
as nothing to Go), micro/milli/nanoseconds (stored times are whole seconds) and whitespace.

``format_duration`` gives the canonical spelling (``5400s`` -> ``1h30m``), which parses back
to the same value.
"""

from __future__ import annotations

import re
from datetime import timedelta

from wio.errors import ValidationError

_DURATION = re.compile(r"(?:([0-9]{1,5})h)?(?:([0-9]{1,5})m)?(?:([0-9]{1,5})s)?")
_MAX_SHOWN = 40  # characters of a refused value echoed in the message; enough to recognise it
_HOW = "write whole hours, minutes and seconds, largest unit first, such as 1h, 30m, 90s or 1h30m"


def _shown(value: str) -> str:
    return repr(value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "...")


def parse_duration(value: object, *, field: str, allow_zero: bool = False) -> timedelta:
    """Parse ``value`` (``"1h30m"``) into a ``timedelta``; refuse anything else naming ``field``.

    Zero (``"0s"``) is refused unless ``allow_zero``: almost every duration wio reads is a
    lifetime or a timeout, where zero is a mistake rather than a wish.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        # YAML turns `ttl: 30` into an int; seconds or minutes? Refuse rather than guess.
        raise ValidationError(
            field, f"must be a duration string such as '30m', got {type(value).__name__}"
        )
    match = _DURATION.fullmatch(value)
    if not value or match is None:
        if value.startswith("-"):
            raise ValidationError(field, f"{_shown(value)} is negative; durations must not be")
        if "." in value:
            raise ValidationError(
                field, f"{_shown(value)} has a fraction; {_HOW} (1h30m rather than 1.5h)"
            )
        raise ValidationError(field, f"{_shown(value)} is not a duration: {_HOW}")
    hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
    result = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if not result and not allow_zero:
        raise ValidationError(field, f"{_shown(value)} is zero; it must be positive")
    return result


def format_duration(value: timedelta) -> str:
    """The canonical spelling of ``value``: largest units first, no zero parts, ``0s`` for zero.

    ``5400s`` -> ``1h30m``; ``86400s`` -> ``24h`` (there is no day unit). Refuses negative and
    sub-second values, which no wio duration can hold.
    """
    if not isinstance(value, timedelta):
        raise ValidationError("duration", f"must be a timedelta, got {type(value).__name__}")
    if value < timedelta(0):
        raise ValidationError("duration", "must not be negative")
    if value.microseconds:
        raise ValidationError("duration", "must be a whole number of seconds")
    total = value.days * 86400 + value.seconds  # exact, unlike total_seconds() on large values
    if total == 0:
        return "0s"
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = ((hours, "h"), (minutes, "m"), (seconds, "s"))
    return "".join(f"{amount}{unit}" for amount, unit in parts if amount)
