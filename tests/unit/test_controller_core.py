# SPDX-License-Identifier: Apache-2.0
"""The controller core's watch rules and repairs, seen through what a WorkloadIdentity gets.

Our own writes come back as watch events and must not cause work; events older than our
writes must not roll status back; nothing is issued before our finalizer guards the object;
a Secret someone deletes is re-issued, a Secret someone keeps changing is repaired at most
ten times an hour and then the other writer is named. And the recording client these tests
stand on answers as the API server does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tests.support.recording import (
    Harness,
    RecordingKube,
    condition_message,
    conditions,
    object_body,
    running,
)
from wio.errors import ApiNotFound, ApiUnavailable
from wio.k8s.client import custom_path, secret_path
from wio.names import WORKLOAD_IDENTITIES, WORKLOAD_IDENTITY
from wio.service.views import ObjectKey

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

NS, NAME = "payments", "api"
KEY = ObjectKey(NS, NAME)
SECRET = secret_path(NS, "api-identity")
OBJECT = custom_path(WORKLOAD_IDENTITIES, NS, NAME)
STATUS = custom_path(WORKLOAD_IDENTITIES, NS, NAME, "status")
SPEC: Mapping[str, Any] = {"serviceAccountName": "api"}


async def issued(h: Harness) -> dict[str, Any]:
    """The identity created and issued; returns its body as first created."""
    h.observe_namespace(NS)
    created = h.add_identity(object_body(WORKLOAD_IDENTITY, NS, NAME, SPEC))
    await h.identities.reconcile(KEY)
    return created


async def test_nothing_is_issued_until_our_finalizer_guards_the_identity() -> None:
    async with running() as h:
        h.observe_namespace(NS)
        body = object_body(WORKLOAD_IDENTITY, NS, NAME, SPEC)
        body["metadata"]["finalizers"] = []
        h.add_identity(body)
        unguarded = await h.step(h.identities.reconcile(KEY))
        assert unguarded.writes == []
        h.add_identity(object_body(WORKLOAD_IDENTITY, NS, NAME, SPEC))  # Kopf added it
        guarded = await h.step(h.identities.reconcile(KEY))
        assert guarded.verbs_and_paths == [("create", SECRET), ("merge_patch", STATUS)]


async def test_the_echoes_of_our_own_writes_cause_no_work() -> None:
    async with running() as h:
        await issued(h)
        h.identities.queue.start()
        await h.identities.queue.wait_idle()  # the creation's queued look: nothing to do
        mark = h.kube.mark()
        h.identities.observe_secret(await h.kube.get(SECRET))
        h.identities.observe(await h.kube.get(OBJECT))
        assert len(h.identities.queue) == 0
        await h.identities.queue.wait_idle()
        assert h.kube.writes(mark) == []


async def test_an_event_older_than_our_status_write_does_not_roll_status_back() -> None:
    async with running() as h:
        created = await issued(h)
        h.identities.observe(created)  # a late event from before the status patch
        out = await h.step(h.identities.reconcile(KEY))
        assert out.writes == []  # not mistaken for "never issued"
        assert h.identities.views[KEY].status["serialNumber"]


async def test_a_deleted_secret_is_issued_again_and_says_why() -> None:
    async with running() as h:
        await issued(h)
        h.identities.observe_secret(h.kube.objects.pop(SECRET), deleted=True)  # by someone else
        out = await h.step(h.identities.reconcile(KEY))
        assert out.verbs_and_paths == [("create", SECRET), ("merge_patch", STATUS)]
        assert conditions(out.status)["Ready"] == ("True", "Rotated")
        assert "SecretMissing" in condition_message(out.status, "Ready")
        assert out.event_reasons == ["Rotated"]


async def test_a_failed_secret_write_changes_nothing_says_why_and_the_retry_issues() -> None:
    async with running() as h:
        h.observe_namespace(NS)
        h.add_identity(object_body(WORKLOAD_IDENTITY, NS, NAME, SPEC))
        h.kube.fail_next("create", SECRET, ApiUnavailable("the API server is overloaded"))
        failed = await h.step(h.identities.reconcile(KEY))
        assert failed.verbs_and_paths == [("merge_patch", STATUS)]
        assert conditions(failed.status) == {
            "Ready": ("False", "NotIssued"),
            "Issuing": ("False", "Failed"),
        }
        assert failed.event_reasons == ["IssueFailed"]
        assert SECRET not in h.kube.objects
        retried = await h.step(h.identities.reconcile(KEY))
        assert retried.verbs_and_paths == [("create", SECRET), ("merge_patch", STATUS)]
        assert conditions(retried.status)["Ready"] == ("True", "Issued")


async def test_a_writer_that_keeps_stripping_the_secret_is_repaired_ten_times_then_named() -> None:
    async with running() as h:
        await issued(h)
        repairs = 0
        for _ in range(11):
            h.clock.advance(60)
            tampered = await h.kube.get(SECRET)
            del tampered["data"]["tls.crt"]
            tampered["metadata"]["managedFields"] = [
                {"manager": "argocd", "time": "2026-01-01T00:00:00Z"}
            ]
            h.identities.observe_secret(h.kube.put(SECRET, tampered))
            out = await h.step(h.identities.reconcile(KEY))
            if ("apply", SECRET) in out.verbs_and_paths:
                repairs += 1
        assert repairs == 10
        assert out.verbs_and_paths == [("merge_patch", STATUS)]
        assert conditions(out.status)["Issuing"] == ("False", "ConflictingWriter")
        assert "'argocd'" in condition_message(out.status, "Issuing")
        assert out.event_reasons == ["ConflictingWriter"]


# -- the recording client itself -----------------------------------------------------------------


async def test_the_recording_client_answers_as_the_api_server_does() -> None:
    kube = RecordingKube()
    path = secret_path(NS, "s")
    first = await kube.apply(path, {"metadata": {"name": "s", "labels": {"a": "1"}}, "data": {}})
    second = await kube.merge_patch(path, {"metadata": {"labels": {"a": None, "b": "2"}}})
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert (await kube.get(path))["metadata"]["labels"] == {"b": "2"}
    assert [b["metadata"]["name"] for b in await kube.list(secret_path(None), label_selector="b")]
    assert await kube.list(secret_path(NS), label_selector="a=1") == []
    kube.fail_next("delete", path, ApiUnavailable("scripted"))
    with pytest.raises(ApiUnavailable):
        await kube.delete(path)
    await kube.delete(path)
    with pytest.raises(ApiNotFound):
        await kube.get(path)
    with pytest.raises(ApiNotFound):
        await kube.merge_patch(path, {"metadata": {}})
    assert [(c.verb, c.path) for c in kube.writes()] == [
        ("apply", path),
        ("merge_patch", path),
        ("delete", path),
    ]
