# SPDX-License-Identifier: Apache-2.0
"""The ScopedCredential controller (access tokens), driven directly over a recording API client.

One table: each situation a ScopedCredential can be in, and what one reconcile (the
finalizer, or its identity's deletion) then writes (verbs and paths, in order), what the last
status patch says in its conditions, and which Events are posted. Then the write budgets of
issuance and rotation.
"""

from __future__ import annotations

import asyncio
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
    object_body,
    play,
    revoked_ids,
    running,
    secret_data,
)
from wio.issuing.verify_jwt import JwtVerifier, TokenProfile
from wio.k8s.client import custom_path, secret_path
from wio.names import (
    SCOPED_CREDENTIAL,
    SCOPED_CREDENTIALS,
    WORKLOAD_IDENTITIES,
    WORKLOAD_IDENTITY,
)
from wio.service.views import ObjectKey

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

NS, NAME, IDENTITY = "payments", "ledger", "api"
KEY = ObjectKey(NS, NAME)
SPIFFE_ID = "spiffe://example.org/ns/payments/sa/api"
ISSUER = "https://wio.example.org"
SECRET = secret_path(NS, "ledger-credential")
OBJECT = custom_path(SCOPED_CREDENTIALS, NS, NAME)
STATUS = custom_path(SCOPED_CREDENTIALS, NS, NAME, "status")
POLICY = {
    "namespaceSelector": {"matchLabels": {"team": "payments"}},
    "tokens": {"scopes": ["payments:read"]},
}
SPEC = {"identityRef": IDENTITY, "token": {"audience": "ledger", "scopes": ["payments:read"]}}
#: Past the latest renewal time of a 15m token (50% +- 10% jitter), before its expiry.
PAST_RENEWAL = 9 * 60

ISSUED = {
    "Ready": ("True", "Issued"),
    "Issuing": ("False", "Idle"),
    "SignerAvailable": ("True", "Available"),
    "PolicyDenied": ("False", "Allowed"),
}
ROTATED = {**ISSUED, "Ready": ("True", "Rotated")}


def identity_status(ready: bool) -> dict[str, Any]:
    """An identity's status as the identity controller writes it (issued, or not yet)."""
    cond = {"type": "Ready", "status": "True", "reason": "Issued", "observedGeneration": 1}
    if not ready:
        cond = {**cond, "status": "False", "reason": "NotIssued"}
    return {"spiffeID": SPIFFE_ID, "conditions": [cond]}


# -- arranging a situation -----------------------------------------------------------------------


def watched(h: Harness, *, identity: bool = True, ready: bool = True, policy: bool = True) -> None:
    """The namespace, its policy and the identity are watched; the credential was created."""
    h.observe_namespace(NS, {"team": "payments"})
    if policy:
        h.observe_policy("payments", POLICY)
    if identity:
        spec = {"serviceAccountName": "api"}
        h.add_identity(
            object_body(WORKLOAD_IDENTITY, NS, IDENTITY, spec, status=identity_status(ready))
        )
    h.add_credential(object_body(SCOPED_CREDENTIAL, NS, NAME, SPEC))


async def created(h: Harness) -> Harness:
    watched(h)
    return h


async def identity_missing(h: Harness) -> Harness:
    watched(h, identity=False)
    return h


async def identity_not_ready(h: Harness) -> Harness:
    watched(h, ready=False)
    return h


async def no_policy(h: Harness) -> Harness:
    watched(h, policy=False)
    return h


async def issued(h: Harness) -> Harness:
    watched(h)
    await h.scoped.reconcile(KEY)
    return h


async def renewal_due(h: Harness) -> Harness:
    await issued(h)
    h.clock.advance(PAST_RENEWAL)
    return h


async def crashed_before_the_status_patch(h: Harness) -> Harness:
    """The process died between the Secret write and the status patch of the first issuance;
    a new one starts and its watches deliver what is stored."""
    watched(h)
    held = h.kube.hold("merge_patch", STATUS)
    reconciling = asyncio.create_task(h.scoped.reconcile(KEY))
    await held.reached.wait()
    reconciling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reconciling
    h = await h.restart()
    h.observe_namespace(NS, {"team": "payments"})
    h.observe_policy("payments", POLICY)
    h.identities.observe(await h.kube.get(custom_path(WORKLOAD_IDENTITIES, NS, IDENTITY)))
    h.scoped.observe(await h.kube.get(OBJECT))
    h.scoped.observe_secret(await h.kube.get(SECRET))
    return h


# -- acting --------------------------------------------------------------------------------------


async def reconcile(h: Harness) -> None:
    await h.scoped.reconcile(KEY)


async def finalize(h: Harness) -> None:
    await h.scoped.finalize(await h.deleting(SCOPED_CREDENTIALS, NS, NAME))


async def identity_deleted(h: Harness) -> None:
    """What the WorkloadIdentity's finalizer calls before it lets go."""
    await h.scoped.revoke_for_identity(ObjectKey(NS, IDENTITY), "Deleted")


# -- what else a user would check ----------------------------------------------------------------


async def _token(h: Harness, out: Outcome) -> Mapping[str, Any]:
    token = secret_data(out.secret_write(SECRET), "token").decode()
    verifier = JwtVerifier(
        await h.jwt.public_jwks(),
        audience="ledger",
        issuer=ISSUER,
        profile=TokenProfile.ACCESS_TOKEN,
    )
    return verifier.verify(token, h.clock.now()).claims


async def holds_a_verifiable_access_token(h: Harness, out: Outcome) -> None:
    claims = await _token(h, out)
    assert claims["sub"] == claims["client_id"] == SPIFFE_ID
    assert claims["scope"] == "payments:read"
    assert out.status is not None
    assert out.status["jti"] == claims["jti"]
    assert out.status["rotations"] == 0


async def stays_ready(h: Harness, out: Outcome) -> None:
    assert conditions(h.kube.objects[OBJECT]["status"])["Ready"] == ("True", "Issued")


async def counts_one_rotation(h: Harness, out: Outcome) -> None:
    claims = await _token(h, out)
    first = h.kube.since()[0]  # the first issuance's Secret write
    assert first.path == SECRET
    assert secret_data(first, "token") != secret_data(out.secret_write(SECRET), "token")
    assert out.status is not None
    assert out.status["jti"] == claims["jti"]
    assert out.status["rotations"] == 1


def names_the_field(field: str) -> Callable[[Harness, Outcome], Awaitable[None]]:
    async def check(h: Harness, out: Outcome) -> None:
        assert condition_message(out.status, "Ready").startswith(f"{field}:")
        assert out.events[0]["message"].startswith(f"{field}:")
        assert SECRET not in h.kube.objects

    return check


async def lists_the_jti_as_revoked(h: Harness, out: Outcome) -> None:
    jti = h.kube.objects[OBJECT]["status"]["jti"]
    assert revoked_ids(out.write("create", REVOCATIONS_PATH), "token") == {jti}
    assert SECRET not in h.kube.objects


async def clears_the_credential_from_status(h: Harness, out: Outcome) -> None:
    first_status = (h.kube.since()[1].body or {})["status"]
    assert revoked_ids(out.write("create", REVOCATIONS_PATH), "token") == {first_status["jti"]}
    stored = h.kube.objects[OBJECT]["status"]
    for gone in ("jti", "expiresAt", "renewalTime", "specHash", "spiffeID"):
        assert gone not in stored, gone
    assert condition_message(stored, "Ready").startswith("spec.identityRef:")
    assert SECRET not in h.kube.objects


# -- the table -----------------------------------------------------------------------------------


BLOCKED_WRITES = [("merge_patch", STATUS)]

SITUATIONS = [
    pytest.param(
        Situation(
            created,
            writes=[("create", SECRET), ("merge_patch", STATUS)],
            conditions=ISSUED,
            events=["Issued"],
            then=holds_a_verifiable_access_token,
        ),
        id="token-first-issuance",
    ),
    pytest.param(
        Situation(issued, writes=[], conditions=None, events=[], then=stays_ready),
        id="already-valid-writes-nothing",
    ),
    pytest.param(
        Situation(
            identity_missing,
            writes=BLOCKED_WRITES,
            conditions={
                "Ready": ("False", "IdentityNotFound"),
                "Issuing": ("False", "IdentityNotFound"),
            },
            events=["IdentityNotFound"],
            then=names_the_field("spec.identityRef"),
        ),
        id="identity-missing",
    ),
    pytest.param(
        Situation(
            identity_not_ready,
            writes=BLOCKED_WRITES,
            conditions={
                "Ready": ("False", "IdentityNotReady"),
                "Issuing": ("False", "IdentityNotReady"),
            },
            events=["IdentityNotReady"],
            then=names_the_field("spec.identityRef"),
        ),
        id="identity-not-ready",
    ),
    pytest.param(
        Situation(
            no_policy,
            writes=BLOCKED_WRITES,
            conditions={
                "Ready": ("False", "PolicyDenied"),
                "Issuing": ("False", "PolicyDenied"),
                "PolicyDenied": ("True", "PolicyDenied"),
            },
            events=["PolicyDenied"],
            then=names_the_field("spec.token"),
        ),
        id="no-policy-denies",
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
            issued,
            act=finalize,
            writes=[("delete", SECRET), ("create", REVOCATIONS_PATH)],
            conditions=None,
            events=["Revoked"],
            then=lists_the_jti_as_revoked,
        ),
        id="finalize-revokes",
    ),
    pytest.param(
        Situation(
            issued,
            act=identity_deleted,
            writes=[("delete", SECRET), ("create", REVOCATIONS_PATH), ("merge_patch", STATUS)],
            conditions={
                "Ready": ("False", "IdentityNotFound"),
                "Issuing": ("False", "IdentityNotFound"),
                "SignerAvailable": ("True", "Available"),
                "PolicyDenied": ("False", "Allowed"),
            },
            events=["Revoked"],
            then=clears_the_credential_from_status,
        ),
        id="identity-deleted-revokes-and-clears-status",
    ),
    pytest.param(
        Situation(
            crashed_before_the_status_patch,
            act=identity_deleted,
            writes=[("delete", SECRET), ("create", REVOCATIONS_PATH), ("merge_patch", STATUS)],
            conditions={
                "Ready": ("False", "IdentityNotFound"),
                "Issuing": ("False", "IdentityNotFound"),
            },
            events=["Revoked"],
        ),
        id="identity-deleted-revokes-a-token-status-never-recorded",
    ),
]


@pytest.mark.parametrize("situation", SITUATIONS)
async def test_each_situation_makes_its_writes_conditions_and_events(
    situation: Situation,
) -> None:
    await play(situation, reconcile)


# -- write budgets -------------------------------------------------------------------------------


async def test_an_issuance_costs_at_most_three_writes_and_every_rotation_at_most_two() -> None:
    async with running() as h:
        watched(h)
        issuance = await h.step(reconcile(h))
        # The budget is three; the finalizer patch is Kopf's, so here: Secret, then status.
        assert len(issuance.writes) <= 3
        assert issuance.verbs_and_paths == [("create", SECRET), ("merge_patch", STATUS)]
        rotations = 0
        for _ in range(2 * 60):  # two hours, a minute at a time
            h.clock.advance(60)
            out = await h.step(reconcile(h))
            if out.writes:
                rotations += 1
                assert len(out.writes) <= 2, out.verbs_and_paths
                assert out.event_reasons == ["Rotated"]
        assert rotations >= 12  # a 15m token renews about every seven and a half minutes
        assert h.kube.objects[OBJECT]["status"]["rotations"] == rotations


async def test_a_deletion_after_a_rotation_revokes_the_previous_token_too() -> None:
    async with running() as h:
        await renewal_due(h)
        first = dict(h.scoped.views[KEY].status)
        await h.scoped.reconcile(KEY)
        second = dict(h.scoped.views[KEY].status)
        assert second["jti"] != first["jti"]
        assert [r["id"] for r in second["retiredCredentials"]] == [first["jti"]]
        out = await h.step(finalize(h))
        assert revoked_ids(out.write("create", REVOCATIONS_PATH), "token") == {
            first["jti"],
            second["jti"],
        }


async def test_withdrawing_the_policy_that_allowed_the_identity_revokes_its_tokens_too() -> None:
    """A token names the identity as its subject: once policy no longer allows the identity,
    the tokens naming it are revoked with its certificate, not left valid until they expire."""
    with_dns = {"serviceAccountName": "api", "x509": {"dnsNames": ["api.payments.example.org"]}}
    granting = {**POLICY, "x509": {"dnsNames": ["api.payments.example.org"]}}
    async with running() as h:
        h.observe_namespace(NS, {"team": "payments"})
        h.observe_policy("payments", granting)
        h.add_identity(object_body(WORKLOAD_IDENTITY, NS, IDENTITY, with_dns))
        await h.identities.reconcile(ObjectKey(NS, IDENTITY))
        h.add_credential(object_body(SCOPED_CREDENTIAL, NS, NAME, SPEC))
        await h.scoped.reconcile(KEY)
        jti = h.scoped.views[KEY].status["jti"]
        h.observe_policy("payments", POLICY)  # narrowed: tokens still, the DNS name no more
        await h.identities.reconcile(ObjectKey(NS, IDENTITY))
        revoked = {(e.kind, e.id): e for e in h.parts.revocations.current.entries}
        assert revoked[("token", jti)].reason == "IdentityPolicyWithdrawn"
        assert revoked[("token", jti)].namespace == NS
        assert SECRET not in h.kube.objects
        stored = h.kube.objects[OBJECT]["status"]
        assert conditions(stored)["Ready"] == ("False", "IdentityNotReady")
        assert "no longer allowed by policy" in condition_message(stored, "Ready")
        assert stored.get("jti") is None
