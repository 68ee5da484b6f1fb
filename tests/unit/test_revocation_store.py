# SPDX-License-Identifier: Apache-2.0
"""The durable revocation list: a refused write is retried, never given up, and expired
entries leave the stored list."""

from __future__ import annotations

import datetime as dt
import json
from typing import cast

import pytest

from tests.support.recording import RecordingKube
from wio.clock import FakeClock
from wio.errors import ApiRejected, RetryableError
from wio.k8s.client import KubeClient, configmap_path
from wio.k8s.revocations import DATA_KEY, RevocationStore
from wio.models.revocation import Revocation

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
PATH = configmap_path("wio-system", "wio-revocations")


def _entry(id_: str, lifetime: dt.timedelta) -> Revocation:
    return Revocation("x509", id_, "spiffe://example.org/ns/a/sa/b", T0, T0 + lifetime, "Deleted")


def _stored(kube: RecordingKube) -> set[str]:
    return {e["id"] for e in json.loads(kube.objects[PATH]["data"][DATA_KEY])["revocations"]}


async def test_a_refused_write_is_a_retryable_error_and_the_next_write_carries_everything() -> None:
    kube = RecordingKube()
    store = RevocationStore(
        cast(KubeClient, kube), namespace="wio-system", name="wio-revocations", clock=FakeClock(T0)
    )
    kube.fail_next(
        "apply", PATH, ApiRejected("Too long: must have at most 1048576 bytes", status=422)
    )
    with pytest.raises(RetryableError) as refused:
        await store.add([_entry("aa", dt.timedelta(hours=1))])
    assert refused.value.retry_after
    await store.add([_entry("bb", dt.timedelta(hours=1))])
    assert _stored(kube) == {"aa", "bb"}


async def test_expired_entries_leave_the_stored_list() -> None:
    kube = RecordingKube()
    clock = FakeClock(T0)
    store = RevocationStore(
        cast(KubeClient, kube), namespace="wio-system", name="wio-revocations", clock=clock
    )
    await store.add([_entry("short", dt.timedelta(minutes=5))])
    clock.advance(10 * 60)
    await store.add([_entry("long", dt.timedelta(hours=1))])
    assert _stored(kube) == {"long"}
    assert store.current.ids("x509") == frozenset({"long"})
