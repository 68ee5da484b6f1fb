# SPDX-License-Identifier: Apache-2.0
"""Token introspection decisions (RFC 7662), without a server: who may ask, how often, and
what they are told. Tokens are minted with wio's issuing functions and real keys; time is a
fake clock and a fake monotonic source, so nothing sleeps."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support import tokens
from wio.clock import FakeClock
from wio.issuing.jwt import SigningKey, mint_access_token, mint_jwt_svid
from wio.models.revocation import Revocation, RevocationList
from wio.service.introspection import Answer, Introspector, KeyedRateLimiter

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
ISSUER = "https://wio.example.org"
ENDPOINT = f"{ISSUER}/introspect"
CLIENT = "spiffe://example.org/ns/shop/sa/payments"
SERVER = "spiffe://example.org/ns/shop/sa/orders-api"
INACTIVE = {"active": False}


class Tick:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


class World:
    def __init__(self, key: SigningKey, *, rate: float = 5.0, burst: int = 3) -> None:
        self.key = key
        self.clock = FakeClock(NOW)
        self.tick = Tick()
        self.revoked = RevocationList()
        self.results: list[str] = []
        self.refused: list[str] = []

        async def jwks() -> Sequence[dict[str, Any]]:
            return [key.public_jwk()]

        self.introspector = Introspector(
            issuer=ISSUER,
            trust_domain="example.org",
            jwks=jwks,
            revocations=lambda: self.revoked,
            clock=self.clock,
            rate=rate,
            burst=burst,
            monotonic=self.tick,
            on_result=self.results.append,
            on_refused=self.refused.append,
        )

    def access_token(self, **changes: Any) -> str:
        settings: dict[str, Any] = {
            "issuer": ISSUER,
            "subject": CLIENT,
            "audience": "orders-api",
            "scopes": ["orders:read"],
            "client_id": CLIENT,
            "ttl": dt.timedelta(minutes=15),
            "now": NOW,
            "jti": "token-1",
        }
        settings.update(changes)
        return mint_access_token(self.key, **settings).token

    def caller(self, audience: str = ENDPOINT, subject: str = SERVER, jti: str = "svid-1") -> str:
        return mint_jwt_svid(
            self.key, subject, [audience], dt.timedelta(minutes=30), NOW, jti
        ).token

    def ask(self, token: str | None, authorization: str | None, remote: str = "10.0.0.1") -> Answer:
        return asyncio.run(self.introspector.answer(authorization, remote, token))

    def revoke(self, kind: str, jti: str, namespace: str = "shop") -> None:
        self.revoked = RevocationList.of(
            [
                *self.revoked.entries,
                Revocation(
                    kind=kind,
                    id=jti,
                    namespace=namespace,
                    spiffe_id=CLIENT,
                    revoked_at=NOW,
                    expires_at=NOW + dt.timedelta(hours=1),
                    reason="Deleted",
                ),
            ]
        )


def bearer(token: str) -> str:
    return f"Bearer {token}"


def shown(answer: Answer) -> str:
    return json.dumps(dict(answer.body)) + json.dumps(dict(answer.headers))


def test_an_active_access_token_is_described_with_its_claims(key: SigningKey) -> None:
    world = World(key)
    token = world.access_token(extra_claims={"tenant": "acme"})
    answer = world.ask(token, bearer(world.caller()))
    assert answer.status == 200
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert answer.body == {
        "active": True,
        "token_type": "Bearer",
        "scope": "orders:read",
        "client_id": CLIENT,
        "sub": CLIENT,
        "aud": "orders-api",
        "iss": ISSUER,
        "exp": claims["exp"],
        "iat": claims["iat"],
        "jti": "token-1",
    }
    assert token not in shown(answer)
    assert world.results == ["active"]


def test_an_expired_token_is_inactive_from_its_exp_on(key: SigningKey) -> None:
    world = World(key, burst=10)
    token = world.access_token(ttl=dt.timedelta(seconds=60))
    caller = bearer(world.caller())
    world.clock.advance(59)
    assert world.ask(token, caller).body["active"] is True
    world.clock.advance(1)
    assert world.ask(token, caller).body == INACTIVE
    # The answer says only "inactive"; the metric says why (an expired token in use).
    assert world.results == ["active", "inactive_expired"]


def test_a_revoked_token_is_inactive_as_soon_as_the_list_changes(key: SigningKey) -> None:
    world = World(key)
    token = world.access_token()
    caller = bearer(world.caller())
    assert world.ask(token, caller).body["active"] is True
    world.revoke("token", "token-1")
    assert world.ask(token, caller).body == INACTIVE
    assert world.results == ["active", "inactive_revoked"]


def test_an_id_listed_by_another_namespace_revokes_nothing_here(key: SigningKey) -> None:
    """Whoever copies a token's jti into an object of their own namespace and deletes it
    lists that jti for their namespace only: the token's holder is not locked out."""
    world = World(key)
    token = world.access_token()
    caller = bearer(world.caller())
    world.revoke("token", "token-1", namespace="elsewhere")
    world.revoke("jwt", "svid-1", namespace="elsewhere")
    assert world.ask(token, caller).body["active"] is True


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda w: w.access_token(issuer="https://someone.else"), id="another issuer's token"
        ),
        pytest.param(lambda w: w.caller(audience="orders-api"), id="a JWT-SVID"),
        pytest.param(lambda w: "not.a.jwt", id="malformed"),
        pytest.param(lambda w: "x", id="too short to be a JWT"),
        pytest.param(lambda w: "a" * 20_000, id="oversized"),
        pytest.param(
            lambda w: tokens.replace_claims(
                w.access_token(), {**_claims(w.access_token()), "scope": "orders:admin"}
            ),
            id="claims edited after signing",
        ),
        pytest.param(
            lambda w: tokens.sign(
                ec.generate_private_key(ec.SECP256R1()),
                "ES256",
                pyjwt.get_unverified_header(w.access_token()),
                _claims(w.access_token()),
            ),
            id="signed by another key under our kid",
        ),
        pytest.param(
            lambda w: tokens.forge({"alg": "none", "typ": "at+jwt"}, _claims(w.access_token())),
            id="unsigned",
        ),
    ],
)
def test_anything_but_a_good_access_token_is_just_inactive(key: SigningKey, make: Any) -> None:
    world = World(key)
    token = make(world)
    answer = world.ask(token, bearer(world.caller()))
    assert answer.status == 200
    assert answer.body == INACTIVE
    if len(token) > 16:
        assert token not in shown(answer)


def _claims(token: str) -> dict[str, Any]:
    return dict(pyjwt.decode(token, options={"verify_signature": False}))


@pytest.mark.parametrize(
    ("authorization", "why"),
    [
        (None, "no header"),
        ("Basic b3JkZXJzOnNlY3JldA==", "another scheme"),
        ("Bearer", "no credential"),
        ("Bearer garbage", "not a JWT"),
    ],
)
def test_requests_without_a_credential_get_401_with_a_challenge(
    key: SigningKey, authorization: str | None, why: str
) -> None:
    world = World(key)
    answer = world.ask(world.access_token(), authorization)
    assert answer.status == 401, why
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="wio"')
    assert "active" not in answer.body


def test_only_a_jwt_svid_for_the_endpoint_authenticates_a_caller(key: SigningKey) -> None:
    world = World(key, burst=20)
    token = world.access_token()
    other_key = SigningKey.generate()
    refused = {
        "another audience": world.caller(audience="orders-api"),
        "an access token": token,
        "another trust domain": world.caller(subject="spiffe://evil.org/ns/a/sa/b"),
        "signed by a key wio does not publish": mint_jwt_svid(
            other_key, SERVER, [ENDPOINT], dt.timedelta(minutes=5), NOW, "x"
        ).token,
    }
    for what, credential in refused.items():
        answer = world.ask(token, bearer(credential))
        assert answer.status == 401, what
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"], what
        assert credential not in shown(answer), what
    world.revoke("jwt", "svid-9")
    revoked = world.ask(token, bearer(world.caller(jti="svid-9")))
    assert revoked.status == 401
    # The same generic challenge whatever failed: why is for the log, not for the caller.
    assert revoked.headers["WWW-Authenticate"] == 'Bearer realm="wio", error="invalid_token"'
    assert "revoked" not in shown(revoked)
    assert world.ask(token, bearer(world.caller())).status == 200


def test_each_caller_is_rate_limited_and_told_when_to_retry(key: SigningKey) -> None:
    world = World(key, rate=2.0, burst=3)
    token = world.access_token()
    first = bearer(world.caller(subject=SERVER))
    second = bearer(world.caller(subject="spiffe://example.org/ns/shop/sa/billing"))
    assert [world.ask(token, first).status for _ in range(3)] == [200, 200, 200]
    limited = world.ask(token, first)
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "1"
    assert "active" not in limited.body
    assert world.ask(token, second).status == 200  # a budget of its own
    world.tick.now += 0.5  # 2 a second: one token back
    assert world.ask(token, first).status == 200
    assert world.ask(token, first).status == 429
    assert "rate_limited" in world.results


def test_failed_logins_are_limited_per_address_and_never_lock_out_callers_that_authenticate(
    key: SigningKey,
) -> None:
    world = World(key, rate=1.0, burst=2)
    token = world.access_token()
    assert world.ask(token, "Bearer bad", remote="10.0.0.9").status == 401
    assert world.ask(token, "Bearer bad", remote="10.0.0.9").status == 401
    assert world.ask(token, "Bearer bad", remote="10.0.0.9").status == 429
    # Behind one Ingress everyone shares that address: a caller that authenticates is served.
    assert world.ask(token, bearer(world.caller()), remote="10.0.0.9").status == 200
    assert world.ask(token, "Bearer bad", remote="10.0.0.8").status == 401
    # Every refusal is counted against the address it came from (an alert watches that).
    assert world.refused == ["10.0.0.9"] * 3 + ["10.0.0.8"]


def test_a_missing_token_parameter_is_a_bad_request(key: SigningKey) -> None:
    world = World(key)
    answer = world.ask(None, bearer(world.caller()))
    assert answer.status == 400
    assert answer.body["error"] == "invalid_request"


def test_keyed_rate_limiter_refills_and_forgets_the_least_recent_key() -> None:
    tick = Tick()
    limiter = KeyedRateLimiter(1.0, 2, monotonic=tick, max_keys=2)
    assert limiter.take("a") is None
    assert limiter.take("a") is None
    assert limiter.take("a") == pytest.approx(1.0)
    tick.now += 0.25
    assert limiter.check("a") == pytest.approx(0.75)
    tick.now += 0.75
    assert limiter.take("a") is None
    limiter.take("b")
    limiter.take("c")  # three keys, room for two: "a" (least recent) is forgotten
    assert limiter.take("a") is None
    assert limiter.take("a") is None  # a fresh, full bucket
    with pytest.raises(ValueError, match="rate > 0"):
        KeyedRateLimiter(0, 1)
