# SPDX-License-Identifier: Apache-2.0
"""The revocation list's published form: ordered by revocation time, each entry once, and the
JSON exactly what a verifier parses back."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from wio.models.revocation import Revocation, RevocationList

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _entry(id_: str, seconds: int, **extra: object) -> Revocation:
    at = T0 + dt.timedelta(seconds=seconds)
    return Revocation(
        "x509", id_, "spiffe://example.org/ns/a/sa/b", at, at + HOUR, "Deleted", **extra
    )  # type: ignore[arg-type]


def test_entries_are_kept_in_revocation_order_whatever_order_they_arrive_in() -> None:
    listed = RevocationList().add([_entry("c", 5)]).add([_entry("a", 1), _entry("b", 3)])
    listed = listed.add([_entry("d", 5)]).add([_entry("e", 0)])
    assert [e.id for e in listed.entries] == ["e", "a", "b", "c", "d"]


def test_an_entry_already_listed_is_not_added_twice_and_the_first_record_wins() -> None:
    first = _entry("a", 1)
    listed = RevocationList().add([first]).add([_entry("a", 9), first])
    assert listed.entries == (first,)


def test_the_published_json_is_compact_sorted_and_round_trips() -> None:
    listed = RevocationList().add(
        [_entry("b", 2, key_fingerprint="kf"), _entry("a", 1, upstream_pending=True)]
    )
    raw = listed.to_json_bytes()
    doc = {"revocations": [e.to_json() for e in listed.entries]}
    assert raw == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert RevocationList.from_json_bytes(raw) == listed
    marked = listed.mark_upstream_done("x509", "a")
    assert b"upstreamPending" not in marked.to_json_bytes()
