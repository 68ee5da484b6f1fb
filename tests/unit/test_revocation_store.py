# SPDX-License-Identifier: Apache-2.0
"""The durable revocation list: spread over shards that stay far below the API server's
object limit, a refused write retried and never given up, expired entries leaving, and the
first release's single list migrated."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import cast

import pytest

from tests.support.recording import RecordingKube
from wio.clock import FakeClock
from wio.errors import ApiRejected, RetryableError, ValidationError
from wio.k8s.client import KubeClient, configmap_path
from wio.k8s.revocations import DATA_KEY, RevocationStore
from wio.models.revocation import Revocation, parse_shard
from wio.names import MANAGED_BY, MANAGER

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
NS = "wio-system"
LABELS = {MANAGED_BY: MANAGER}


def _entry(id_: str, lifetime: dt.timedelta, namespace: str = "a") -> Revocation:
    return Revocation(
        "x509",
        id_,
        namespace,
        f"spiffe://example.org/ns/{namespace}/sa/payments-api",
        T0,
        T0 + lifetime,
        "Deleted",
        key_fingerprint="sha256:" + "f" * 64,
    )


def _store(kube: RecordingKube, clock: FakeClock | None = None, shards: int = 1) -> RevocationStore:
    return RevocationStore(
        cast(KubeClient, kube),
        namespace=NS,
        name="wio-revocations",
        clock=clock or FakeClock(T0),
        shards=shards,
    )


def _path(index: int) -> str:
    return configmap_path(NS, f"wio-revocations-{index:02d}")


def _stored(kube: RecordingKube) -> set[str]:
    found = set()
    for path, body in kube.objects.items():
        if path.startswith(configmap_path(NS, "wio-revocations-")):
            found |= {e.id for e in parse_shard(body["data"][DATA_KEY].encode())}
    return found


async def test_a_refused_write_is_a_retryable_error_and_the_next_write_carries_everything() -> None:
    kube = RecordingKube()
    store = _store(kube)
    kube.fail_next(
        "create", _path(0), ApiRejected("Too long: must have at most 1048576 bytes", status=422)
    )
    with pytest.raises(RetryableError) as refused:
        await store.add([_entry("aa", dt.timedelta(hours=1))])
    assert refused.value.retry_after
    await store.add([_entry("bb", dt.timedelta(hours=1))])
    assert _stored(kube) == {"aa", "bb"}


async def test_expired_entries_leave_the_stored_list() -> None:
    kube = RecordingKube()
    clock = FakeClock(T0)
    store = _store(kube, clock)
    await store.add([_entry("short", dt.timedelta(minutes=5))])
    clock.advance(10 * 60)
    await store.add([_entry("long", dt.timedelta(hours=1))])
    assert _stored(kube) == {"long"}
    assert {e.id for e in store.current.entries} == {"long"}


async def test_twenty_thousand_revocations_fit_in_shards_far_below_the_object_limit() -> None:
    kube = RecordingKube()
    store = _store(kube, shards=64)
    ids = [f"{i:032x}" for i in range(20_000)]
    for start in range(0, len(ids), 1000):
        batch = ids[start : start + 1000]
        await store.add(
            _entry(i, dt.timedelta(hours=24), f"team-{j % 40}") for j, i in enumerate(batch)
        )
    sizes = {path: len(body["data"][DATA_KEY]) for path, body in kube.objects.items()}
    assert max(sizes.values()) <= 192 * 1024  # the API server refuses an object over 1 MiB
    assert _stored(kube) == set(ids)
    again = _store(kube, shards=64)
    await again.load()
    assert len(again.current) == 20_000


async def test_a_burst_of_revocations_rewrites_only_the_shard_being_filled() -> None:
    """Entries fill one shard at a time, so a write costs one shard, not the whole list."""
    kube = RecordingKube()
    store = _store(kube, shards=8)
    await store.add([_entry(f"{i:032x}", dt.timedelta(hours=1)) for i in range(2000)])
    mark = kube.mark()
    await store.add([_entry("ab" * 16, dt.timedelta(hours=1))])
    assert len(kube.writes(mark)) == 1
    await store.add([_entry(f"{i:032x}", dt.timedelta(hours=1), "b") for i in range(100)])
    assert len(kube.writes(mark)) == 2


async def test_a_full_shard_makes_the_next_one_fill_and_a_full_list_is_retried() -> None:
    kube = RecordingKube()
    clock = FakeClock(T0)
    budget = 40 * 200  # about 40 entries a shard
    store = RevocationStore(
        cast(KubeClient, kube),
        namespace=NS,
        name="wio-revocations",
        clock=clock,
        shards=2,
        budget=budget,
    )
    await store.add([_entry(f"{i:032x}", dt.timedelta(minutes=5)) for i in range(40)])
    await store.add([_entry(f"{i:032x}", dt.timedelta(hours=1)) for i in range(40, 80)])
    assert {len(parse_shard(b["data"][DATA_KEY].encode())) for b in kube.objects.values()} == {40}
    with pytest.raises(RetryableError) as full:
        await store.add([_entry(f"{i:032x}", dt.timedelta(hours=1)) for i in range(80, 150)])
    assert "revocationShards" in str(full.value)
    clock.advance(10 * 60)  # the first 40 expire and make room
    await store.add([])
    assert _stored(kube) == {f"{i:032x}" for i in range(40, 150)}


async def test_the_first_release_single_list_is_migrated_into_shards_and_deleted() -> None:
    kube = RecordingKube()
    legacy = {
        "revocations": [
            {
                "kind": "x509",
                "id": f"{i:032x}",
                "spiffeID": "spiffe://example.org/ns/shop/sa/web",
                "revokedAt": "2026-03-01T12:00:00Z",
                "expiresAt": "2026-03-01T13:00:00Z",
                "reason": "Deleted",
            }
            for i in range(40)
        ]
    }
    kube.put(
        configmap_path(NS, "wio-revocations"),
        {
            "metadata": {"name": "wio-revocations", "namespace": NS, "labels": LABELS},
            "data": {DATA_KEY: json.dumps(legacy)},
        },
    )
    store = _store(kube, shards=4)
    await store.load()
    assert configmap_path(NS, "wio-revocations") not in kube.objects
    assert _stored(kube) == {f"{i:032x}" for i in range(40)}
    assert {e.namespace for e in store.current.entries} == {"shop"}
    delete = next(c for c in kube.writes() if c.verb == "delete")
    assert delete.path == configmap_path(NS, "wio-revocations")


async def test_fewer_shards_move_every_entry_and_empty_the_shards_left_over() -> None:
    kube = RecordingKube()
    first = _store(kube, shards=8)
    first._filling = 7  # as if the first shards had filled up earlier
    await first.add([_entry(f"{i:032x}", dt.timedelta(hours=1)) for i in range(100)])
    second = _store(kube, shards=2)
    await second.load()
    assert len(second.current) == 100
    assert parse_shard(kube.objects[_path(7)]["data"][DATA_KEY].encode()) == []
    assert _stored(kube) == {f"{i:032x}" for i in range(100)}
    mark = kube.mark()
    third = _store(kube, shards=2)
    await third.load()
    assert len(third.current) == 100
    assert kube.writes(mark) == []  # nothing left to move: a start writes nothing
    await third.add([_entry("ab" * 16, dt.timedelta(hours=1))])
    assert len(kube.writes(mark)) == 1  # and the next revocation writes one shard


async def test_an_unreadable_shard_stops_the_start_and_names_the_configmap() -> None:
    kube = RecordingKube()
    kube.put(
        _path(3),
        {
            "metadata": {"name": "wio-revocations-03", "namespace": NS, "labels": LABELS},
            "data": {DATA_KEY: "{damaged"},
        },
    )
    with pytest.raises(ValidationError) as refused:
        await _store(kube, shards=16).load()
    assert "wio-system/wio-revocations-03" in str(refused.value)


async def test_an_expired_entry_stays_until_its_upstream_revocation_is_confirmed() -> None:
    kube = RecordingKube()
    clock = FakeClock(T0)
    store = _store(kube, clock)
    pending = replace(_entry("pending", dt.timedelta(minutes=5)), upstream_pending=True)
    await store.add([pending, _entry("done", dt.timedelta(minutes=5))])
    clock.advance(10 * 60)
    await store.add([])
    assert _stored(kube) == {"pending"}  # Vault has not confirmed: kept, and retried
    assert [e.id for e in store.current.pending_upstream()] == ["pending"]
    await store.mark_upstream_done(pending.key)
    assert _stored(kube) == set()
    assert len(store.current) == 0


async def test_marking_a_live_entry_done_keeps_it_listed_without_the_pending_flag() -> None:
    kube = RecordingKube()
    store = _store(kube)
    pending = replace(_entry("live", dt.timedelta(hours=1)), upstream_pending=True)
    await store.add([pending])
    await store.mark_upstream_done(pending.key)
    (entry,) = parse_shard(kube.objects[_path(0)]["data"][DATA_KEY].encode())
    assert (entry.id, entry.upstream_pending) == ("live", False)


async def test_a_credential_revoked_twice_keeps_its_first_record() -> None:
    kube = RecordingKube()
    store = _store(kube)
    first = _entry("aa", dt.timedelta(hours=1))
    await store.add([first])
    await store.add([replace(first, reason="RevokeRequested")])
    assert store.current.entries == (first,)
    (stored,) = parse_shard(kube.objects[_path(0)]["data"][DATA_KEY].encode())
    assert stored.reason == "Deleted"
