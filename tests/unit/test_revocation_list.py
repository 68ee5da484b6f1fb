# SPDX-License-Identifier: Apache-2.0
"""The revocation list: ordered by revocation time, each entry once per namespace, scoped to
the namespace that revoked it, and each stored and published shape exactly what is read back."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from wio.errors import ValidationError
from wio.models.revocation import (
    Revocation,
    RevocationList,
    parse_legacy,
    parse_shard,
    shard_json,
)
from wio.models.spiffe import namespace_of

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _entry(id_: str, seconds: int = 0, namespace: str = "a", **extra: object) -> Revocation:
    at = T0 + dt.timedelta(seconds=seconds)
    return Revocation(
        "x509",
        id_,
        namespace,
        f"spiffe://example.org/ns/{namespace}/sa/b",
        at,
        at + HOUR,
        "Deleted",
        **extra,
    )  # type: ignore[arg-type]


def test_entries_are_kept_in_revocation_order_whatever_order_they_arrive_in() -> None:
    listed = RevocationList.of(
        [_entry("c", 5), _entry("a", 1), _entry("b", 3), _entry("d", 5), _entry("e", 0)]
    )
    assert [e.id for e in listed.entries] == ["e", "a", "b", "c", "d"]


def test_an_entry_already_listed_is_not_added_twice_and_the_first_record_wins() -> None:
    first = _entry("a", 1)
    listed = RevocationList.of([first, _entry("a", 9), first])
    assert listed.entries == (first,)


def test_one_id_listed_by_two_namespaces_is_two_entries_and_counts_only_where_listed() -> None:
    """A serial copied into another namespace's object must not stop the real owner's
    revocation from being listed, nor count against the owner's credential."""
    planted = _entry("ab", 1, namespace="mallory")
    listed = RevocationList.of([planted, _entry("ab", 2, namespace="victim")])
    assert len(listed) == 2
    assert listed.revoked(["x509"]) == {("ab", "mallory"), ("ab", "victim")}
    only_planted = RevocationList.of([planted])
    assert ("ab", "victim") not in only_planted.revoked(["x509"])


def test_a_shard_round_trips_every_field() -> None:
    entries = [
        _entry("b", 2, key_fingerprint="sha256:kf"),
        _entry("a", 1, upstream_pending=True, signer="vault"),
        Revocation("lease", "database/creds/x/1", "a", "", T0, T0 + HOUR, "IdentityDeleted"),
    ]
    assert parse_shard(shard_json(entries)) == entries
    assert parse_shard(shard_json([])) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"format": 1, "entries": []}',
        b'{"format": 2, "entries": [["x509", "a"]]}',
        b'{"format": 2, "entries": [["x509", "a", "", "", 0, 0, "", "", "", 0]]}',
        b'{"format": 2, "entries": [["x509", "a", "ns", "", "then", 0, "", "", "", 0]]}',
    ],
    ids=["not JSON", "another format", "short row", "no namespace", "time not a number"],
)
def test_a_damaged_shard_is_refused_loudly(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_shard(raw)


def test_a_namespace_publishes_only_its_own_ids_with_their_expiry_and_no_leases() -> None:
    listed = RevocationList.of(
        [
            _entry("aa", 1, namespace="shop"),
            Revocation("jwt", "j1", "shop", "", T0, T0 + HOUR, "Deleted"),
            Revocation("lease", "db/creds/1", "shop", "", T0, T0 + HOUR, "Deleted"),
            _entry("bb", 2, namespace="bank"),
        ]
    )
    doc = json.loads(listed.published_json("shop"))
    expiry = int((T0 + dt.timedelta(seconds=1) + HOUR).timestamp())
    assert doc == {
        "version": 2,
        "namespace": "shop",
        "expires": {
            "x509": {"aa": expiry},
            "jwt": {"j1": int((T0 + HOUR).timestamp())},
            "token": {},
        },
    }
    assert b"bb" not in listed.published_json("shop")
    assert json.loads(listed.published_json("empty"))["expires"] == {
        "x509": {},
        "jwt": {},
        "token": {},
    }


def test_the_first_release_list_is_read_with_namespaces_taken_from_spiffe_ids() -> None:
    legacy = {
        "revocations": [
            {
                "kind": "x509",
                "id": "aa",
                "spiffeID": "spiffe://example.org/ns/shop/sa/web",
                "revokedAt": "2026-03-01T12:00:00Z",
                "expiresAt": "2026-03-01T13:00:00Z",
                "reason": "Deleted",
                "upstreamPending": True,
                "signer": "vault",
            },
            {
                "kind": "jwt",
                "id": "bb",
                "spiffeID": "",
                "revokedAt": "2026-03-01T12:00:00Z",
                "expiresAt": "2026-03-01T13:00:00Z",
                "reason": "Deleted",
            },
        ]
    }
    (entry,) = parse_legacy(json.dumps(legacy).encode())
    assert (entry.kind, entry.id, entry.namespace, entry.signer) == ("x509", "aa", "shop", "vault")
    assert entry.upstream_pending


@pytest.mark.parametrize(
    ("spiffe_id", "namespace"),
    [
        ("spiffe://example.org/ns/shop/sa/web", "shop"),
        ("spiffe://example.org/ns/shop", None),
        ("spiffe://example.org/ns//sa/web", None),
        ("spiffe://example.org/ns/shop/sa/web/extra", None),
        ("https://example.org/ns/shop/sa/web", None),
        (None, None),
    ],
)
def test_the_namespace_of_a_workload_spiffe_id(spiffe_id: object, namespace: str | None) -> None:
    assert namespace_of(spiffe_id) == namespace


def test_a_namespace_list_too_large_for_its_configmap_keeps_the_latest_and_says_so() -> None:
    listed = RevocationList.of(_entry(f"{i:032x}", i, namespace="big") for i in range(100))
    whole = json.loads(listed.published_json("big"))
    assert len(whole["expires"]["x509"]) == 100
    assert "truncated" not in whole
    cut = json.loads(listed.published_json("big", max_bytes=48 * 10))
    assert set(cut["expires"]["x509"]) == {f"{i:032x}" for i in range(90, 100)}
    assert cut["truncated"] is True
    assert len(listed.published_json("big", max_bytes=48 * 10)) < 48 * 10 + 200
