# SPDX-License-Identifier: Apache-2.0
"""The audit stream: one hash-chained record per event, and the check that finds a gap or an
edit. The records come from the controllers themselves (over the recording API client)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.recording import object_body, running
from wio.cli import main
from wio.clock import FakeClock
from wio.k8s.client import custom_path
from wio.models.audit import AuditEvent, chained, digest, verify_chain
from wio.names import ROTATE_ANNOTATION, WORKLOAD_IDENTITIES, WORKLOAD_IDENTITY
from wio.service.audit import AuditTrail
from wio.service.views import ObjectKey, last_requester

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def stream(replica: str = "wio-a_1", events: int = 4) -> list[str]:
    sink = Lines()
    logger = logging.getLogger(f"test.audit.{replica}")
    logger.handlers[:] = [sink]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    trail = AuditTrail(replica, FakeClock(NOW), logger)
    for index in range(events):
        trail.record(AuditEvent("issue", "success", credentials=[f"serial-{index}"]))
    return sink.lines


def test_an_untouched_stream_verifies_and_other_log_lines_are_skipped() -> None:
    lines = stream()
    report = verify_chain(["2026-06-01 INFO wio: started", *lines, "not json {"])
    assert report.intact
    assert report.records == 5  # the start record and four events
    assert report.segments == 1


def _edit(line: str, **changes: Any) -> str:
    record = json.loads(line)
    record.update(changes)
    return json.dumps(record)


@pytest.mark.parametrize(
    ("tamper", "found"),
    [
        (lambda ls: [*ls[:2], _edit(ls[2], credentials=["forged"]), *ls[3:]], "altered"),
        (lambda ls: [*ls[:2], *ls[3:]], "missing or reordered"),
        (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], "missing or reordered"),
        (lambda ls: ls[1:], "records before it are missing"),
    ],
    ids=["edited", "deleted", "swapped", "head cut off"],
)
def test_an_edit_a_gap_or_a_reordering_is_found_where_it_is(tamper: Any, found: str) -> None:
    report = verify_chain(tamper(stream()))
    assert not report.intact
    assert report.problem is not None
    assert found in report.problem
    assert report.line in (1, 2, 3)


def test_a_forged_record_with_a_correct_hash_still_breaks_the_chain() -> None:
    lines = stream()
    forged = json.loads(lines[2])
    forged["credentials"] = ["forged"]
    forged["hash"] = digest(forged)  # whoever edits can recompute this record's hash...
    report = verify_chain([*lines[:2], json.dumps(forged), *lines[3:]])
    # ...but not the next record's link to it.
    assert report.problem == "record wio-a_1#3 does not follow the record before it"
    assert report.line == 4


def test_interleaved_replicas_and_restarts_each_keep_their_own_chain() -> None:
    a, b, a_again = stream("wio-a_1"), stream("wio-b_2"), stream("wio-a_3")
    merged = [line for pair in zip(a, b, strict=True) for line in pair] + a_again
    report = verify_chain(merged)
    assert report.intact, report.problem
    assert report.replicas == {"wio-a_1", "wio-b_2", "wio-a_3"}
    assert report.segments == 3


def test_a_slice_of_a_longer_stream_verifies_when_told_so() -> None:
    lines = stream(events=6)
    assert not verify_chain(lines[3:]).intact
    assert verify_chain(lines[3:], partial=True).intact


def test_a_record_has_the_documented_fields() -> None:
    record = chained(
        AuditEvent("revoke", "success", actor="kubectl", credentials=["ab12"], reason="Deleted"),
        seq=7,
        prev="00" * 32,
        replica="wio-a_1",
        now=NOW,
    )
    assert list(record) == [
        "schema", "seq", "prev", "replica", "time", "action", "outcome", "actor", "subject",
        "kind", "namespace", "name", "credentials", "reason", "hash",
    ]  # fmt: skip
    assert record["time"] == "2026-06-01T00:00:00.000000Z"
    with pytest.raises(ValueError, match="unknown audit action"):
        AuditEvent("delete-everything", "success")


def test_the_actor_is_whoever_last_changed_the_spec_or_annotations() -> None:
    fields = [
        {"manager": "kubectl-client-side-apply", "operation": "Update",
         "time": "2026-06-01T10:00:00Z", "fieldsV1": {"f:spec": {}}},
        {"manager": "wio", "operation": "Update", "time": "2026-06-01T10:01:00Z",
         "fieldsV1": {"f:metadata": {"f:finalizers": {}}}},
        {"manager": "wio", "operation": "Update", "subresource": "status",
         "time": "2026-06-01T10:02:00Z", "fieldsV1": {"f:status": {}}},
        {"manager": "sre-console", "operation": "Update", "time": "2026-06-01T10:03:00Z",
         "fieldsV1": {"f:metadata": {"f:annotations": {}}}},
    ]  # fmt: skip
    assert last_requester(fields) == "sre-console"
    assert last_requester(fields[:3]) == "kubectl-client-side-apply"
    assert last_requester(fields[1:3]) is None
    assert last_requester("garbage") is None


def _records(caplog: pytest.LogCaptureFixture) -> list[Mapping[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "wio.audit"]


@pytest.mark.asyncio
async def test_issuance_forced_rotation_and_revocation_are_audited_with_ids_and_nothing_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wio.audit")
    key = ObjectKey("payments", "api")
    async with running() as h:
        h.observe_namespace("payments", {})
        body = object_body(WORKLOAD_IDENTITY, "payments", "api", {"serviceAccountName": "api"})
        body["metadata"]["managedFields"] = [
            {"manager": "kubectl", "operation": "Apply", "time": "2026-01-01T00:00:00Z",
             "fieldsV1": {"f:spec": {}}},
        ]  # fmt: skip
        h.add_identity(body)
        await h.identities.reconcile(key)
        first = h.identities.views[key].status["serialNumber"]
        path = custom_path(WORKLOAD_IDENTITIES, "payments", "api")
        stored = await h.kube.get(path)
        stored["metadata"]["annotations"] = {ROTATE_ANNOTATION: "now"}
        h.identities.observe(h.kube.put(path, stored))
        await h.identities.reconcile(key)
        second = h.identities.views[key].status["serialNumber"]
        await h.identities.finalize(await h.deleting("workloadidentities", "payments", "api"))
    records = _records(caplog)
    made = [(r["action"], r["outcome"], r["credentials"]) for r in records]
    assert ("issue", "success", [first]) in made
    assert ("forced-rotation", "success", [second]) in made
    revoked = next(r for r in records if r["action"] == "revoke")
    assert set(revoked["credentials"]) == {first, second}
    assert revoked["reason"] == "Deleted"
    for record in records[1:]:
        assert record["actor"] == "kubectl"
        assert record["subject"] == "spiffe://example.org/ns/payments/sa/api"
        assert (record["namespace"], record["name"]) == ("payments", "api")
    assert verify_chain(json.dumps(r) for r in records).intact
    text = "\n".join(json.dumps(r) for r in records)
    assert "BEGIN" not in text
    assert "PRIVATE" not in text


def test_wio_audit_verify_says_intact_or_where_it_broke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = stream()
    log = tmp_path / "audit.log"
    log.write_text("\n".join(["2026-06-01 INFO wio: starting", *lines]) + "\n")
    assert main(["audit", "verify", str(log)]) == 0
    assert "intact: 5 records from 1 replica(s), 1 process start(s)" in capsys.readouterr().out
    log.write_text("\n".join([*lines[:3], *lines[4:]]) + "\n")
    assert main(["audit", "verify", str(log)]) == 1
    assert "broken at line 4" in capsys.readouterr().out
    assert main(["audit", "verify", str(tmp_path / "absent.log")]) == 2
