# SPDX-License-Identifier: Apache-2.0
"""The WorkloadIdentity controller, driven directly over a recording API client.

One table: each situation an identity can be in, and what one reconcile (or the finalizer)
then writes (verbs and paths, in order), what the last status patch says in its conditions,
and which Events are posted. Then the write budgets of issuance and rotation, and the race
of a deletion with an issuance in flight.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest

from tests.support.recording import (
    REVOCATIONS_PATH,
    Harness,
    Outcome,
    Situation,
    condition_message,
    conditions,
    leaf_certificate,
    object_body,
    play,
    revoked_ids,
    running,
    uri_sans,
)
from wio.clock import rfc3339
from wio.errors import SignerUnavailable
from wio.k8s.client import custom_path, secret_path
from wio.names import (
    REVOKE_ANNOTATION,
    ROTATIONS_ANNOTATION,
    WORKLOAD_IDENTITIES,
    WORKLOAD_IDENTITY,
)
from wio.service.views import ObjectKey

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

NS, NAME = "payments", "api"
KEY = ObjectKey(NS, NAME)
SPIFFE_ID = "spiffe://example.org/ns/payments/sa/api"
SECRET = secret_path(NS, "api-identity")
OBJECT = custom_path(WORKLOAD_IDENTITIES, NS, NAME)
STATUS = custom_path(WORKLOAD_IDENTITIES, NS, NAME, "status")
POLICY = {
    "namespaceSelector": {"matchLabels": {"team": "payments"}},
    "x509": {"maxTTL": "2h", "dnsNames": ["api.payments.example.org"]},
}
SPEC: Mapping[str, Any] = {"serviceAccountName": "api"}
WITH_JWT: Mapping[str, Any] = {
    "serviceAccountName": "api",
    "x509": {"dnsNames": ["api.payments.example.org"]},
    "jwt": {"audiences": ["ledger"]},
}
#: Past the latest renewal time of a 1h certificate (50% +- 10% jitter), before its expiry.
PAST_RENEWAL = 40 * 60

#: ``status`` conditions of each outcome, as ``{type: (status, reason)}``.
ISSUED = {
    "Ready": ("True", "Issued"),
    "Issuing": ("False", "Idle"),
    "SignerAvailable": ("True", "Available"),
    "PolicyDenied": ("False", "Allowed"),
}
ROTATED = {**ISSUED, "Ready": ("True", "Rotated")}
ADOPTED = {**ISSUED, "Ready": ("True", "Adopted")}


# -- arranging a situation -----------------------------------------------------------------------


def watched(h: Harness, spec: Mapping[str, Any] = SPEC, name: str = NAME) -> None:
    """The namespace and its policy are watched, and the identity has just been created."""
    h.observe_namespace(NS, {"team": "payments"})
    h.observe_policy("payments", POLICY)
    h.add_identity(object_body(WORKLOAD_IDENTITY, NS, name, spec))


async def issued(h: Harness) -> Harness:
    watched(h)
    await h.identities.reconcile(KEY)
    return h


async def renewal_due(h: Harness) -> Harness:
    await issued(h)
    h.clock.advance(PAST_RENEWAL)
    return h


def created(spec: Mapping[str, Any]) -> Callable[[Harness], Awaitable[Harness]]:
    async def arrange(h: Harness) -> Harness:
        watched(h, spec)
        return h

    return arrange


async def signer_down(h: Harness) -> Harness:
    watched(h)
    h.authority.fail_next(1, SignerUnavailable("the CA is sealed"), operation="issue")
    return h


async def secret_name_taken(h: Harness) -> Harness:
    """Another identity already writes to the Secret name this one asks for."""
    watched(h, {"serviceAccountName": "web", "secretName": "api-identity"}, name="web")
    await h.identities.reconcile(ObjectKey(NS, "web"))
    h.add_identity(object_body(WORKLOAD_IDENTITY, NS, NAME, SPEC))
    return h


async def crash_before_the_status_patch(h: Harness) -> Harness:
    """The process dies between the Secret write and the status patch; a new one starts and
    its watches deliver the identity (status as last recorded) and the Secret."""
    held = h.kube.hold("merge_patch", STATUS)
    reconciling = asyncio.create_task(h.identities.reconcile(KEY))
    await held.reached.wait()
    reconciling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reconciling
    h = await h.restart()
    h.observe_namespace(NS, {"team": "payments"})
    h.observe_policy("payments", POLICY)
    h.identities.observe(await h.kube.get(OBJECT))
    h.identities.observe_secret(await h.kube.get(SECRET))
    return h


async def crashed_during_first_issuance(h: Harness) -> Harness:
    watched(h)
    return await crash_before_the_status_patch(h)


async def crashed_during_rotation(h: Harness) -> Harness:
    await renewal_due(h)
    return await crash_before_the_status_patch(h)


async def policy_withdrawn(h: Harness) -> Harness:
    """Issued under a policy that granted its DNS name; then the policy is deleted."""
    watched(h, WITH_JWT)
    await h.identities.reconcile(KEY)
    h.observe_policy("payments", POLICY, deleted=True)
    return h


# -- acting --------------------------------------------------------------------------------------


async def reconcile(h: Harness) -> None:
    await h.identities.reconcile(KEY)


async def finalize(h: Harness) -> None:
    await h.identities.finalize(await h.deleting(WORKLOAD_IDENTITIES, NS, NAME))


# -- what else a user would check ----------------------------------------------------------------


def lists_the_serial_and_forgets_it(h: Harness, out: Outcome) -> None:
    """The revoked serial and JWT-SVID are listed; status no longer claims a credential."""
    assert out.status is not None
    revoked = revoked_ids(out.write("create", REVOCATIONS_PATH), "x509")
    assert len(revoked) == 1
    assert "serialNumber" in out.status
    assert out.status["serialNumber"] is None
    assert revoked_ids(out.write("create", REVOCATIONS_PATH), "jwt")
    assert SECRET not in h.kube.objects


def carries_the_workload_spiffe_id(h: Harness, out: Outcome) -> None:
    cert = leaf_certificate(out.secret_write(SECRET))
    assert uri_sans(cert) == [SPIFFE_ID]
    assert out.status is not None
    assert out.status["serialNumber"] == format(cert.serial_number, "x")
    assert out.status["rotations"] == 0


def stays_ready(h: Harness, out: Outcome) -> None:
    stored = h.kube.objects[OBJECT]["status"]
    assert conditions(stored)["Ready"] == ("True", "Issued")


def counts_one_rotation(h: Harness, out: Outcome) -> None:
    cert = leaf_certificate(out.secret_write(SECRET))
    first = h.kube.since()[0]  # the first issuance's Secret write
    assert format(cert.serial_number, "x") != format(leaf_certificate(first).serial_number, "x")
    assert out.status is not None
    assert out.status["rotations"] == 1
    assert "RenewalDue" in condition_message(out.status, "Ready")


def names_the_field(field: str) -> Callable[[Harness, Outcome], None]:
    def check(h: Harness, out: Outcome) -> None:
        assert condition_message(out.status, "Ready").startswith(f"{field}:")
        assert out.events[0]["message"].startswith(f"{field}:")

    return check


def names_the_other_owner(h: Harness, out: Outcome) -> None:
    assert "WorkloadIdentity web" in condition_message(out.status, "Ready")
    assert h.kube.objects[SECRET]["metadata"]["labels"]["identity.wio.dev/workloadidentity"] == (
        "web"
    )


def records_what_the_secret_holds(h: Harness, out: Outcome) -> None:
    secret = h.kube.objects[SECRET]
    notes = secret["metadata"]["annotations"]
    assert out.status is not None
    assert out.status["serialNumber"] == notes["identity.wio.dev/serial"]
    assert out.status["rotations"] == int(notes[ROTATIONS_ANNOTATION])


def lists_the_serial_as_revoked(h: Harness, out: Outcome) -> None:
    serial = h.kube.objects[OBJECT]["status"]["serialNumber"]
    assert revoked_ids(out.write("create", REVOCATIONS_PATH), "x509") == {serial}
    assert h.authority.revoked == [serial]  # the signer was told too
    assert SECRET not in h.kube.objects


# -- the table -----------------------------------------------------------------------------------


SITUATIONS = [
    pytest.param(
        Situation(
            created(SPEC),
            writes=[("create", SECRET), ("merge_patch", STATUS)],
            conditions=ISSUED,
            events=["Issued"],
            then=carries_the_workload_spiffe_id,
        ),
        id="first-issuance",
    ),
    pytest.param(
        Situation(issued, writes=[], conditions=None, events=[], then=stays_ready),
        id="already-valid-writes-nothing",
    ),
    pytest.param(
        Situation(
            renewal_due,
            writes=[("apply", SECRET), ("merge_patch", STATUS)],
            conditions=ROTATED,
            events=["Rotated"],
            then=counts_one_rotation,
        ),
        id="renewal-due-rotates",
    ),
    pytest.param(
        Situation(
            created({"serviceAccountName": "api", "x509": {"ttl": "soon"}}),
            writes=[("merge_patch", STATUS)],
            conditions={"Ready": ("False", "InvalidSpec"), "Issuing": ("False", "InvalidSpec")},
            events=["InvalidSpec"],
            then=names_the_field("spec.x509.ttl"),
        ),
        id="invalid-spec",
    ),
    pytest.param(
        Situation(
            created({"serviceAccountName": "api", "x509": {"ttl": "3h"}}),
            writes=[("merge_patch", STATUS)],
            conditions={
                "Ready": ("False", "PolicyDenied"),
                "Issuing": ("False", "PolicyDenied"),
                "PolicyDenied": ("True", "PolicyDenied"),
            },
            events=["PolicyDenied"],
            then=names_the_field("spec.x509.ttl"),
        ),
        id="policy-denied",
    ),
    pytest.param(
        Situation(
            policy_withdrawn,
            writes=[("delete", SECRET), ("create", REVOCATIONS_PATH), ("merge_patch", STATUS)],
            conditions={
                "Ready": ("False", "PolicyDenied"),
                "Issuing": ("False", "PolicyDenied"),
                "PolicyDenied": ("True", "PolicyDenied"),
                "SignerAvailable": ("True", "Available"),
            },
            events=["Revoked", "PolicyDenied"],
            then=lists_the_serial_and_forgets_it,
        ),
        id="policy-withdrawn-revokes",
    ),
    pytest.param(
        Situation(
            signer_down,
            writes=[("merge_patch", STATUS)],
            conditions={
                "Ready": ("False", "NotIssued"),
                "Issuing": ("False", "Failed"),
                "SignerAvailable": ("False", "SignerUnavailable"),
            },
            events=["SignerError"],
        ),
        id="signer-failure",
    ),
    pytest.param(
        Situation(
            secret_name_taken,
            writes=[("merge_patch", STATUS)],
            conditions={
                "Ready": ("False", "SecretConflict"),
                "Issuing": ("False", "SecretConflict"),
            },
            events=["SecretConflict"],
            then=names_the_other_owner,
        ),
        id="secret-held-by-another-identity",
    ),
    pytest.param(
        Situation(
            crashed_during_rotation,
            writes=[("merge_patch", STATUS)],
            conditions=ADOPTED,
            events=[],
            then=records_what_the_secret_holds,
        ),
        id="adopted-after-a-crash-during-rotation",
    ),
    pytest.param(
        Situation(
            crashed_during_first_issuance,
            writes=[("merge_patch", STATUS)],
            conditions=ADOPTED,
            events=[],
            then=records_what_the_secret_holds,
        ),
        id="adopted-after-a-crash-during-first-issuance",
    ),
    pytest.param(
        Situation(
            issued,
            act=finalize,
            writes=[("delete", SECRET), ("create", REVOCATIONS_PATH)],
            conditions=None,
            events=["Revoked"],
            then=lists_the_serial_as_revoked,
        ),
        id="finalize-revokes",
    ),
]


@pytest.mark.parametrize("situation", SITUATIONS)
async def test_each_situation_makes_its_writes_conditions_and_events(
    situation: Situation,
) -> None:
    await play(situation, reconcile)


# -- write budgets -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [SPEC, WITH_JWT], ids=["x509", "x509-dns-and-jwt"])
async def test_an_issuance_costs_at_most_three_writes_and_every_rotation_at_most_two(
    spec: Mapping[str, Any],
) -> None:
    async with running() as h:
        watched(h, spec)
        issuance = await h.step(reconcile(h))
        # The budget is three; the finalizer patch is Kopf's, so here: Secret, then status.
        assert len(issuance.writes) <= 3
        assert issuance.verbs_and_paths == [("create", SECRET), ("merge_patch", STATUS)]
        rotations, token_refreshes = 0, 0
        for _ in range(3 * 60):  # three hours, a minute at a time
            h.clock.advance(60)
            out = await h.step(reconcile(h))
            if out.writes:
                assert len(out.writes) <= 2, out.verbs_and_paths
                assert out.verbs_and_paths[-1] == ("merge_patch", STATUS)
                if out.verbs_and_paths[0] == ("merge_patch", SECRET):
                    token_refreshes += 1  # only the JWT-SVID was due
                else:
                    rotations += 1
        assert rotations >= 5  # a 1h certificate renews about every half hour
        assert h.kube.objects[OBJECT]["status"]["rotations"] == rotations
        assert (token_refreshes > 0) == ("jwt" in spec)


# -- deletion racing an issuance -----------------------------------------------------------------


async def test_a_deletion_during_an_issuance_revokes_the_certificate_that_issuance_wrote() -> None:
    async with running() as h:
        watched(h)  # queues the identity's key
        held = h.kube.hold("create", SECRET)
        h.identities.queue.start()  # a worker picks it up and holds the identity's lock
        await held.reached.wait()  # ...and is now writing the Secret
        # Kopf runs the finalizer with the body it holds: no credential in its status yet.
        body = await h.deleting(WORKLOAD_IDENTITIES, NS, NAME)
        assert "status" not in body
        finalizing = asyncio.create_task(h.identities.finalize(body))
        for _ in range(50):  # let the finalizer run as far as it can on its own
            await asyncio.sleep(0)
        held.release()
        await finalizing
        await h.identities.queue.wait_idle()

        done = Outcome(h.kube.writes(), [])
        steps = done.verbs_and_paths
        assert steps.index(("create", SECRET)) < steps.index(("delete", SECRET))
        written = leaf_certificate(done.write("create", SECRET))
        assert ("create", REVOCATIONS_PATH) in steps, f"no revocation list was written: {steps}"
        revoked = revoked_ids(done.write("create", REVOCATIONS_PATH), "x509")
        assert format(written.serial_number, "x") in revoked
        assert SECRET not in h.kube.objects  # nothing is left behind


async def test_a_deletion_after_rotations_revokes_every_generation_still_valid() -> None:
    """Pods may hold the previous certificate and JWT-SVID for up to half a lifetime after a
    rotation: deleting the identity lists them too, not only the newest."""
    async with running() as h:
        watched(h, WITH_JWT)
        await h.identities.reconcile(KEY)
        first = dict(h.identities.views[KEY].status)
        h.clock.advance(17 * 60)  # the 30-minute JWT-SVID is due, the 1-hour certificate not
        await h.identities.reconcile(KEY)
        refreshed = dict(h.identities.views[KEY].status)
        assert refreshed["jwtID"] != first["jwtID"]
        assert refreshed["retiredCredentials"] == [
            {"kind": "jwt", "id": first["jwtID"], "expiresAt": first["jwtExpiresAt"]}
        ]
        h.clock.advance(PAST_RENEWAL - 17 * 60)  # now the certificate is due too
        await h.identities.reconcile(KEY)
        second = dict(h.identities.views[KEY].status)
        assert second["serialNumber"] != first["serialNumber"]
        retired = {(r["kind"], r["id"]) for r in second["retiredCredentials"]}
        # The first JWT-SVID (30 minutes) has expired by now; the rest is still valid.
        assert retired == {("x509", first["serialNumber"]), ("jwt", refreshed["jwtID"])}
        out = await h.step(finalize(h))
        listed = out.write("create", REVOCATIONS_PATH)
        assert revoked_ids(listed, "x509") == {first["serialNumber"], second["serialNumber"]}
        assert revoked_ids(listed, "jwt") == {refreshed["jwtID"], second["jwtID"]}


async def test_earlier_generations_are_forgotten_once_they_expire() -> None:
    async with running() as h:
        watched(h)
        await h.identities.reconcile(KEY)
        first = dict(h.identities.views[KEY].status)
        h.clock.advance(PAST_RENEWAL)
        await h.identities.reconcile(KEY)  # the first certificate is retired
        h.clock.advance(35 * 60)  # the first one has expired; the second is due
        await h.identities.reconcile(KEY)
        retired = {r["id"] for r in h.identities.views[KEY].status["retiredCredentials"]}
        assert first["serialNumber"] not in retired
        assert len(retired) == 1


async def test_the_revoke_annotation_lists_everything_issued_and_issues_afresh() -> None:
    """Revoke without deleting: every credential issued so far goes on the list (the current
    one and the generation before it), one new credential replaces them, and status says
    which request was honoured."""
    async with running() as h:
        watched(h)
        await h.identities.reconcile(KEY)
        first = dict(h.identities.views[KEY].status)
        h.clock.advance(PAST_RENEWAL)
        await h.identities.reconcile(KEY)
        second = dict(h.identities.views[KEY].status)
        stored = await h.kube.get(OBJECT)
        stored["metadata"]["annotations"] = {REVOKE_ANNOTATION: "key-leak-2026-01"}
        h.identities.observe(h.kube.put(OBJECT, stored))
        out = await h.step(h.identities.reconcile(KEY))
        assert out.verbs_and_paths == [
            ("create", REVOCATIONS_PATH),
            ("apply", SECRET),
            ("merge_patch", STATUS),
        ]
        listed = revoked_ids(out.write("create", REVOCATIONS_PATH), "x509")
        assert listed == {first["serialNumber"], second["serialNumber"]}
        status = h.identities.views[KEY].status
        assert status["lastRevocation"] == "key-leak-2026-01"
        assert status["serialNumber"] not in listed
        assert "retiredCredentials" not in status
        assert out.event_reasons == ["Revoked", "Rotated"]
        # Honoured once: the next look changes nothing.
        again = await h.step(h.identities.reconcile(KEY))
        assert again.verbs_and_paths == []


async def test_an_upstream_revocation_the_signer_refused_is_retried_until_it_is_done() -> None:
    async with running() as h:
        watched(h)
        await h.identities.reconcile(KEY)
        serial = h.identities.views[KEY].status["serialNumber"]
        h.authority.fail_next(1, SignerUnavailable("Vault is sealed"), operation="revoke")
        await h.step(finalize(h))
        pending = h.parts.revocations.current.pending_upstream()
        assert [(e.kind, e.id, e.signer) for e in pending] == [("x509", serial, "default")]
        assert h.authority.revoked == []
        await h.parts.upstream.retry_pending()
        assert h.authority.revoked == [serial]
        assert h.parts.revocations.current.pending_upstream() == ()
        assert b"\nwio_upstream_revocations_pending 0.0\n" in h.parts.metrics.exposition()


async def test_a_status_patched_to_hide_the_credential_does_not_keep_it_alive() -> None:
    """Whoever may patch status clears the serial and points secretName elsewhere before
    deleting: the Secret wio wrote for this identity is still deleted, and what it holds is
    still listed."""
    async with running() as h:
        watched(h, WITH_JWT)
        await h.identities.reconcile(KEY)
        issued = dict(h.identities.views[KEY].status)
        foreign = secret_path(NS, "precious")
        h.kube.put(foreign, {"metadata": {"name": "precious", "namespace": NS}, "data": {}})
        stored = await h.kube.get(OBJECT)
        stored["status"] = {"secretName": "precious"}
        h.identities.observe(h.kube.put(OBJECT, stored))  # the watch delivers the patch
        assert "serialNumber" not in h.identities.views[KEY].status
        out = await h.step(finalize(h))
        assert ("delete", SECRET) in out.verbs_and_paths
        assert ("delete", foreign) not in out.verbs_and_paths
        assert foreign in h.kube.objects
        listed = out.write("create", REVOCATIONS_PATH)
        assert revoked_ids(listed, "x509") == {issued["serialNumber"]}
        assert revoked_ids(listed, "jwt") == {issued["jwtID"]}


async def test_a_serial_planted_in_status_counts_only_here_and_is_not_revoked_upstream() -> None:
    """Whoever may patch the status copies another workload's serial into it and deletes the
    identity: the entry names this namespace (so it counts against nothing elsewhere), and the
    signer is not asked to revoke a certificate that is not this namespace's."""
    async with running() as h:
        await issued(h)
        own = h.identities.views[KEY].status["serialNumber"]
        planted = "5eed0fca11ab1e"
        stored = h.kube.objects[OBJECT]
        stored["status"]["retiredCredentials"] = [
            {
                "kind": "x509",
                "id": planted,
                "expiresAt": rfc3339(h.clock.now() + dt.timedelta(hours=1)),
            }
        ]
        h.identities.observe(copy.deepcopy(stored))
        await finalize(h)
        entries = {e.id: e for e in h.parts.revocations.current.entries}
        assert set(entries) >= {own, planted}
        assert {entries[own].namespace, entries[planted].namespace} == {NS}
        assert entries[own].spiffe_id == SPIFFE_ID  # from spec, not from status
        assert h.authority.revoked == [own]
        assert not entries[planted].upstream_pending  # refused for good, not retried
