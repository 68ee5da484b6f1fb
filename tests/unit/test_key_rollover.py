# SPDX-License-Identifier: Apache-2.0
"""On-demand rollover and emergency distrust of the local CA and JWT key ring (pure parts),
and how a credential signed by a key that left the bundle is noticed for re-issue."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from wio.errors import ValidationError
from wio.issuing.ca import CAActionKind, CAConfig, LocalCA, cert_fingerprint
from wio.issuing.jwt import JwtKeyRing, SigningKey, parse_unverified, sign_jws
from wio.issuing.keyring_state import dump_keyring, load_keyring
from wio.issuing.keys import KeyType, generate_private_key
from wio.models.spiffe import SpiffeID, TrustDomain
from wio.names import (
    DISTRUST_CA_ANNOTATION,
    EXPIRES_AT_ANNOTATION,
    JTI_ANNOTATION,
    ROLLOVER_CA_ANNOTATION,
    ROLLOVER_JWT_ANNOTATION,
)
from wio.policy.reconcile import (
    TOKEN_ONLY,
    IdentityState,
    SecretFacts,
    issued_anchor,
    reissue_reason,
    secret_facts,
)
from wio.policy.scoped import (
    CredentialState,
    Source,
    credential_facts,
)
from wio.policy.scoped import reissue_reason as scoped_reissue_reason
from wio.service.rollover import ack_annotation, pending_requests

pytestmark = pytest.mark.unit

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TD = TrustDomain("example.org")
ID = SpiffeID.for_workload(TD, "payments", "api")
CONFIG = CAConfig(TD, lifetime=dt.timedelta(days=60), max_leaf_ttl=dt.timedelta(days=10))
DELAY = dt.timedelta(minutes=10)
HOUR = dt.timedelta(hours=1)


def _issue_cert(ca: LocalCA, now: dt.datetime) -> object:
    public = generate_private_key(KeyType.ECDSAP256).public_key
    return ca.issue(public, ID, ttl=HOUR, now=now).cert


def _signed_by(cert: object, root: object) -> bool:
    try:
        cert.verify_directly_issued_by(root)  # type: ignore[attr-defined]
    except Exception:
        return False
    return True


def test_a_scheduled_ca_rollover_publishes_first_and_signs_after_the_delay() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    old = ca.active
    now = START + dt.timedelta(days=2)
    rolled = ca.schedule_rollover(now, DELAY)
    new = rolled.state.prepared
    assert new is not None
    # Published at once, next to the old root...
    assert [c for c in rolled.trust_bundle()] == [old.cert, new.cert]
    # ...but the old one still signs until the delay has passed.
    assert rolled.rotation_action(now + DELAY - dt.timedelta(seconds=1)).kind is CAActionKind.NONE
    assert _signed_by(_issue_cert(rolled, now + DELAY / 2), old.cert)
    activated, steps = rolled.rotate(now + DELAY)
    assert [s.kind for s in steps] == [CAActionKind.ACTIVATE]
    assert "publication period" in steps[0].reason
    assert activated.active.fingerprint == new.fingerprint
    assert _signed_by(_issue_cert(activated, now + DELAY), new.cert)
    # The old root stays published exactly as long as a leaf it signed can live.
    (retired,) = activated.state.retired
    assert retired.fingerprint == old.fingerprint
    assert retired.publish_until == now + DELAY + CONFIG.max_leaf_ttl + CONFIG.skew
    assert activated.state.activate_prepared_at is None


def test_a_scheduled_rollover_survives_a_restart() -> None:
    rolled = LocalCA.bootstrap(CONFIG, START).schedule_rollover(START, DELAY)
    loaded = LocalCA.load(rolled.dump(), CONFIG)
    assert loaded.state.activate_prepared_at == START + DELAY
    assert loaded.rotation_action(START + DELAY).kind is CAActionKind.ACTIVATE


def test_rolling_over_again_keeps_the_root_already_published() -> None:
    first = LocalCA.bootstrap(CONFIG, START).schedule_rollover(START, DELAY)
    again = first.schedule_rollover(START + HOUR, DELAY)
    assert first.state.prepared is not None
    assert again.state.prepared is not None
    assert again.state.prepared.fingerprint == first.state.prepared.fingerprint
    assert again.state.activate_prepared_at == START + HOUR + DELAY


def test_distrust_replaces_the_signer_and_drops_it_and_the_prepared_root_at_once() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    # One earlier natural rotation leaves a retired root, whose key was never kept.
    ca, _ = ca.rotate(START + dt.timedelta(days=30))
    ca, _ = ca.rotate(START + dt.timedelta(days=50))
    ca = ca.schedule_rollover(START + dt.timedelta(days=51), DELAY)
    assert ca.state.prepared is not None
    compromised = {ca.active.fingerprint, ca.state.prepared.fingerprint}
    retired = {r.fingerprint for r in ca.state.retired}
    assert retired
    now = START + dt.timedelta(days=51, hours=1)
    fresh = ca.distrust(now)
    bundle = {cert_fingerprint(c) for c in fresh.trust_bundle()}
    assert not bundle & compromised
    assert bundle == {fresh.active.fingerprint} | retired
    assert fresh.state.prepared is None
    assert _signed_by(_issue_cert(fresh, now), fresh.active.cert)
    assert LocalCA.load(fresh.dump(), CONFIG).active.fingerprint == fresh.active.fingerprint


def test_activate_at_without_a_prepared_root_is_refused() -> None:
    ca = LocalCA.bootstrap(CONFIG, START)
    with pytest.raises(ValidationError, match="activateAt"):
        type(ca.state)(TD, ca.active, None, (), START)


def test_a_scheduled_jwt_rollover_publishes_the_key_before_it_signs() -> None:
    ring = JwtKeyRing(SigningKey.generate())
    upcoming = SigningKey.generate()
    scheduled = ring.schedule_rollover(upcoming, START + DELAY)
    assert [k["kid"] for k in scheduled.public_jwks()["keys"]] == [ring.active.kid, upcoming.kid]
    assert scheduled.active is ring.active
    assert not scheduled.activation_due(START + DELAY - dt.timedelta(seconds=1))
    assert scheduled.activation_due(START + DELAY)
    restored = load_keyring(dump_keyring(scheduled))
    assert restored.activate_staged_at == START + DELAY
    rotated = restored.rotate(upcoming, START + DELAY, HOUR)
    assert rotated.active.kid == upcoming.kid
    assert rotated.activate_staged_at is None
    assert [r.key.kid for r in rotated.retired] == [ring.active.kid]


def test_distrusting_the_jwt_key_drops_active_and_staged_keys_from_the_jwks() -> None:
    retired_key = SigningKey.generate()
    ring = JwtKeyRing(retired_key).rotate(SigningKey.generate(), START, HOUR)
    ring = ring.schedule_rollover(SigningKey.generate(), START + DELAY)
    fresh = SigningKey.generate()
    distrusted = ring.distrust(fresh)
    kids = [k["kid"] for k in distrusted.public_jwks()["keys"]]
    assert kids == [fresh.kid, retired_key.kid]
    assert distrusted.staged is None


def test_a_token_header_is_read_unverified_for_its_kid_and_nothing_else() -> None:
    key = SigningKey.generate()
    token = sign_jws(key, {"alg": "ES256", "kid": key.kid, "typ": "JWT"}, {"jti": "abc"})
    parsed = parse_unverified(token.encode())
    assert parsed is not None
    assert (parsed.kid, parsed.jti) == (key.kid, "abc")
    assert parse_unverified(b"not.a-token") is None
    assert parse_unverified(b"a.b.c") is None


def test_pending_requests_are_those_not_yet_acknowledged() -> None:
    annotations = {
        ROLLOVER_CA_ANNOTATION: "r1",
        ack_annotation(ROLLOVER_CA_ANNOTATION): "r1",
        DISTRUST_CA_ANNOTATION: "d2",
        ack_annotation(DISTRUST_CA_ANNOTATION): "d1",
        ROLLOVER_JWT_ANNOTATION: "",
    }
    assert pending_requests(annotations) == {DISTRUST_CA_ANNOTATION: "d2"}


# -- noticing credentials signed by a key that left the bundle ---------------------------------


def _identity_secret(ca: LocalCA, key: SigningKey, now: dt.datetime) -> dict[str, bytes]:
    leaf_key = generate_private_key(KeyType.ECDSAP256)
    cert = ca.issue(leaf_key.public_key, ID, ttl=HOUR, now=now).cert
    token = sign_jws(key, {"alg": "ES256", "kid": key.kid, "typ": "JWT"}, {"jti": "t1"})
    return {
        "tls.crt": cert.public_bytes(Encoding.PEM),
        "tls.key": leaf_key.to_pkcs8_pem(),
        "ca.crt": b"".join(c.public_bytes(Encoding.PEM) for c in ca.trust_bundle()),
        "token": token.encode(),
    }


def _identity_state(facts: SecretFacts, **changes: object) -> IdentityState:
    state = IdentityState(
        now=START,
        expected_spiffe_id=str(ID),
        spec_hash="h",
        secret_name="s",
        wants_token=True,
        stored_serial=facts.serial,
        stored_spec_hash="h",
        stored_secret_name="s",
        not_after=START + HOUR,
        renewal_time=START + HOUR / 2,
        token_renewal_time=START + HOUR / 2,
        forced_request=None,
        forced_ack=None,
        secrets_synced=True,
        secret=facts,
    )
    return dataclasses.replace(state, **changes)  # type: ignore[arg-type]


def test_secret_facts_record_which_root_and_which_jwt_key_signed_the_credential() -> None:
    ca, key = LocalCA.bootstrap(CONFIG, START), SigningKey.generate()
    facts = secret_facts(_identity_secret(ca, key, START), ca.trust_bundle())
    assert facts.problem is None
    assert facts.anchor == ca.active.fingerprint
    assert facts.token_kid == key.kid


def test_a_certificate_whose_root_left_the_bundle_is_reissued_and_a_trusted_one_is_not() -> None:
    ca, key = LocalCA.bootstrap(CONFIG, START), SigningKey.generate()
    facts = secret_facts(_identity_secret(ca, key, START), ca.trust_bundle())
    trusted = frozenset({ca.active.fingerprint})
    kids = frozenset({key.kid})
    fine = _identity_state(facts, trusted_anchors=trusted, published_kids=kids)
    assert reissue_reason(fine) is None
    fresh = ca.distrust(START)
    moved = _identity_state(
        facts, trusted_anchors=frozenset({fresh.active.fingerprint}), published_kids=kids
    )
    reason = reissue_reason(moved)
    assert reason is not None
    assert reason.reason == "IssuerNotTrusted"
    assert reason.reason not in TOKEN_ONLY
    # Before the signers have been read nothing is judged by them.
    assert reissue_reason(_identity_state(facts)) is None


def test_a_jwt_svid_signed_by_an_unpublished_key_is_reminted_alone() -> None:
    ca, key = LocalCA.bootstrap(CONFIG, START), SigningKey.generate()
    facts = secret_facts(_identity_secret(ca, key, START), ca.trust_bundle())
    state = _identity_state(
        facts,
        trusted_anchors=frozenset({ca.active.fingerprint}),
        published_kids=frozenset({SigningKey.generate().kid}),
    )
    reason = reissue_reason(state)
    assert reason is not None
    assert reason.reason == "SigningKeyNotPublished"
    assert reason.reason in TOKEN_ONLY


def test_the_anchor_recorded_at_issuance_matches_the_one_the_watch_computes() -> None:
    ca = LocalCA.bootstrap(CONFIG, START).schedule_rollover(START, DELAY)
    ca, _ = ca.rotate(START + DELAY)
    cert = _issue_cert(ca, START + DELAY)
    assert issued_anchor([cert], ca.trust_bundle()) == ca.active.fingerprint  # type: ignore[list-item]
    other = LocalCA.bootstrap(CONFIG, START)
    assert issued_anchor([cert], other.trust_bundle()) is None  # type: ignore[list-item]


def test_an_access_token_signed_by_an_unpublished_key_is_reissued() -> None:
    key = SigningKey.generate()
    token = sign_jws(key, {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}, {"jti": "j1"})
    notes = {JTI_ANNOTATION: "j1", EXPIRES_AT_ANNOTATION: "2026-01-01T01:00:00Z"}
    facts = credential_facts(Source.TOKEN, "c", {"token": token.encode()}, notes)
    assert facts.kid == key.kid
    state = CredentialState(
        now=START,
        subject=str(ID),
        spec_hash="h",
        secret_name="s",
        stored_id="j1",
        stored_subject=str(ID),
        stored_spec_hash="h",
        stored_secret_name="s",
        expires_at=START + HOUR,
        renewal_time=START + HOUR / 2,
        forced_request=None,
        forced_ack=None,
        secrets_synced=True,
        secret=facts,
    )
    assert scoped_reissue_reason(state) is None
    assert (
        scoped_reissue_reason(dataclasses.replace(state, published_kids=frozenset({key.kid})))
        is None
    )
    gone = scoped_reissue_reason(dataclasses.replace(state, published_kids=frozenset({"other"})))
    assert gone is not None
    assert gone.reason == "SigningKeyNotPublished"
