# SPDX-License-Identifier: Apache-2.0
"""RFC 7662 token introspection for wio's access tokens: who may ask, and what they are told.

The HTTP layer (``wio.web``) only parses the request and sends the ``Answer``; every decision
is made here, so it is tested without a server:

1. **Who asks.** The caller authenticates with ``Authorization: Bearer <JWT-SVID>``: a
   JWT-SVID wio itself issued (verified against wio's own published keys, in wio's trust
   domain, not expired, its ``jti`` not revoked) whose ``aud`` contains the introspection
   endpoint's URL, ``<jwtIssuer>/introspect``. Which workloads may hold such a JWT-SVID is
   an IdentityPolicy decision (``jwt.audiences``), so admins grant introspection like any
   other audience, and this one is never granted by default: a matching policy must list it.
   Anything else is 401 with a generic ``WWW-Authenticate`` challenge (why is logged only).
2. **How often.** Each caller (by SPIFFE ID) has a token bucket; failed authentications are
   also counted per remote address (the TCP peer: a forwarded-for header is not trusted, so
   behind an Ingress all callers share the Ingress's address). Only failures are held back
   by that count, so bad credentials from one address never lock out a caller that
   authenticates. Over a limit: 429 with ``Retry-After``.
3. **What they are told.** A wio access token (``typ`` at+jwt, our ``iss``, a key we publish)
   that verifies, has not expired and whose ``jti`` is not on the revocation list is
   ``active: true`` with its ``sub``, ``scope``, ``aud``, ``exp``, ``iat``, ``iss``,
   ``client_id``, ``jti`` and ``token_type``. Everything else (expired, revoked, signed by
   another key, malformed, a JWT-SVID, someone else's token) is exactly ``{"active": false}``:
   RFC 7662 §2.2 says nothing more, and telling why would help an attacker.

Revocation is read from the operator's in-memory revocation list, which a finalizer updates
before it even stores it, so a delete shows here as soon as the finalizer has run. Neither
the token nor the caller's credential is ever put in an answer, a log line or an exception.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt

from wio.clock import Clock
from wio.errors import JWTVerificationError
from wio.issuing.jwt import MAX_TOKEN_BYTES
from wio.issuing.verify_jwt import JwtVerifier, TokenProfile, VerifiedToken
from wio.models.audit import AuditEvent
from wio.models.revocation import RevocationList
from wio.models.spiffe import namespace_of
from wio.names import INTROSPECTION_PATH
from wio.service.audit import AuditTrail

log = logging.getLogger(__name__)

#: Revocation-list kinds whose IDs are JWT IDs: access tokens and JWT-SVIDs.
_JTI_KINDS = ("token", "jwt")
#: Verifiers kept, one per (key set, audience): resource servers are few, attackers many.
_VERIFIER_CACHE = 256
_INACTIVE: Mapping[str, Any] = {"active": False}
_CHALLENGE = 'Bearer realm="wio"'


@dataclass(frozen=True)
class Answer:
    """What to send back: HTTP status, JSON body and extra headers."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


class KeyedRateLimiter:
    """One token bucket per key: ``rate`` tokens a second, ``burst`` banked.

    Memory is bounded by ``max_keys``: the least recently seen key is forgotten first (its
    bucket would have refilled in ``burst / rate`` seconds anyway).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("KeyedRateLimiter needs rate > 0, burst >= 1 and max_keys >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._monotonic = monotonic
        self._max_keys = max_keys
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def _tokens(self, key: str) -> float:
        now = self._monotonic()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return tokens

    def check(self, key: str) -> float | None:
        """None when ``key`` has a token left, else the seconds until it has one."""
        tokens = self._tokens(key)
        return None if tokens >= 1 else (1 - tokens) / self._rate

    def take(self, key: str) -> float | None:
        """Spend one token of ``key``: None when allowed, else the seconds to wait."""
        wait = self.check(key)
        if wait is None:
            tokens, now = self._buckets[key]
            self._buckets[key] = (tokens - 1, now)
        return wait


class Introspector:
    """Answers introspection requests; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        issuer: str,
        trust_domain: str,
        jwks: Callable[[], Awaitable[Sequence[Mapping[str, Any]]]],
        revocations: Callable[[], RevocationList],
        clock: Clock,
        rate: float,
        burst: int,
        monotonic: Callable[[], float] = time.monotonic,
        on_result: Callable[[str], None] = lambda _: None,
        on_refused: Callable[[str], None] = lambda _: None,
        audit: AuditTrail | None = None,
    ) -> None:
        self.issuer = issuer
        self.endpoint = issuer + INTROSPECTION_PATH
        self._trust_domain = trust_domain
        self._jwks = jwks
        self._revocations = revocations
        self._clock = clock
        self._on_result = on_result
        self._on_refused = on_refused
        self._audit = audit
        self.callers = KeyedRateLimiter(rate, burst, monotonic=monotonic)
        # Failed authentications per remote address: the same budget as one caller.
        self.strangers = KeyedRateLimiter(rate, burst, monotonic=monotonic)
        self._verifiers: dict[tuple[Any, ...], JwtVerifier] = {}
        self._revoked_from: RevocationList | None = None
        self._revoked: frozenset[tuple[str, str]] = frozenset()

    async def answer(self, authorization: str | None, remote: str, token: str | None) -> Answer:
        """The whole decision for one request (``token`` is the form's ``token`` field)."""
        now = self._clock.now()
        caller = await self._authenticate(authorization, now)
        if isinstance(caller, Answer):
            self._on_refused(remote)
            stranger = f"unauthenticated {remote}"
            # Only failed logins count against an address, and only they are held back by
            # it: behind one Ingress every caller shares an address, and a flood of bad
            # credentials must not lock out the resource servers that authenticate.
            wait = self.strangers.take(remote)
            if wait is not None:
                return self._done(self._limited(wait), "rate_limited", stranger)
            return self._done(caller, "unauthenticated", stranger)
        wait = self.callers.take(caller)
        if wait is not None:
            return self._done(self._limited(wait), "rate_limited", caller)
        if not isinstance(token, str) or not token:
            missing = Answer(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "the token parameter is required",
                },
            )
            return self._done(missing, "bad_request", caller)
        body, outcome = await self.introspect(token, now)
        return self._done(Answer(200, body), outcome, caller)

    def _done(self, answer: Answer, outcome: str, actor: str) -> Answer:
        """Count and audit ``answer``: who asked, and (only for an active token, whose
        claims were verified) whose token it was and its ``jti``."""
        self._on_result(outcome)
        if self._audit is not None:
            body = answer.body if outcome == "active" else {}
            jti = body.get("jti")
            self._audit.record(
                AuditEvent(
                    "introspect",
                    outcome,
                    actor=actor,
                    subject=body.get("sub"),
                    credentials=[jti] if isinstance(jti, str) else [],
                )
            )
        return answer

    async def introspect(self, token: str, now: dt.datetime) -> tuple[Mapping[str, Any], str]:
        """RFC 7662 §2.2 for ``token``: its claims when active, else only ``active: false``;
        and the outcome for the metrics (``active``, ``inactive_expired``,
        ``inactive_revoked`` or ``inactive_invalid``), which the answer never tells."""
        if len(token) > MAX_TOKEN_BYTES:
            return _INACTIVE, "inactive_invalid"
        audience = _unverified_audience(token)
        if audience is None:
            return _INACTIVE, "inactive_invalid"
        try:
            verifier = await self._verifier(audience, TokenProfile.ACCESS_TOKEN)
            verified = verifier.verify(token, now)
        except JWTVerificationError as err:
            log.debug("introspection: inactive token (%s)", err.reason)
            expired = err.reason == "expired"
            return _INACTIVE, "inactive_expired" if expired else "inactive_invalid"
        if self._is_revoked(verified):
            log.debug("introspection: inactive token (revoked)")
            return _INACTIVE, "inactive_revoked"
        return _active(verified), "active"

    async def _authenticate(self, authorization: str | None, now: dt.datetime) -> str | Answer:
        """The caller's SPIFFE ID, or the 401 to send."""
        if not authorization:
            return Answer(401, {"error": "invalid_client"}, {"WWW-Authenticate": _CHALLENGE})
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        reason = "malformed"
        if scheme.lower() == "bearer" and credential:
            try:
                verifier = await self._verifier(self.endpoint, TokenProfile.JWT_SVID)
                verified = verifier.verify(credential, now)
            except JWTVerificationError as err:
                reason = err.reason
            else:
                if self._is_revoked(verified):
                    reason = "revoked"
                elif verified.subject is not None:
                    return verified.subject
        # Why goes to the log only: telling a caller which check its credential failed helps
        # whoever is forging one.
        log.info("introspection: caller refused (%s)", reason)
        challenge = f'{_CHALLENGE}, error="invalid_token"'
        return Answer(401, {"error": "invalid_client"}, {"WWW-Authenticate": challenge})

    def _limited(self, wait: float) -> Answer:
        seconds = max(1, math.ceil(wait))
        return Answer(
            429,
            {"error": "rate_limited", "error_description": f"retry after {seconds}s"},
            {"Retry-After": str(seconds)},
        )

    async def _verifier(self, audience: str, profile: TokenProfile) -> JwtVerifier:
        jwks = await self._jwks()
        key = (
            tuple(sorted((str(k.get("kid")), str(k.get("alg"))) for k in jwks)),
            audience,
            profile,
        )
        verifier = self._verifiers.get(key)
        if verifier is None:
            if len(self._verifiers) >= _VERIFIER_CACHE:
                self._verifiers.clear()
            verifier = JwtVerifier(
                list(jwks),
                audience=audience,
                issuer=self.issuer if profile is TokenProfile.ACCESS_TOKEN else None,
                profile=profile,
                trust_domain=self._trust_domain,
            )
            self._verifiers[key] = verifier
        return verifier

    def _is_revoked(self, verified: VerifiedToken) -> bool:
        """Listed for the namespace its subject names (an entry of another namespace never
        counts); a token without a ``jti`` or a workload subject is treated as revoked."""
        namespace = namespace_of(verified.subject)
        if verified.jti is None or namespace is None:
            return True
        current = self._revocations()
        if current is not self._revoked_from:
            self._revoked = current.revoked(_JTI_KINDS)
            self._revoked_from = current
        return (verified.jti, namespace) in self._revoked


def _unverified_audience(token: str) -> str | None:
    """The first ``aud`` of ``token``, read before verification only to pick the verifier:
    the signature check that follows covers it, so nothing unverified is ever reported."""
    try:
        claims = pyjwt.decode(token, options={"verify_signature": False})
    except (pyjwt.PyJWTError, ValueError, TypeError):
        return None
    aud = claims.get("aud")
    if isinstance(aud, list) and aud:
        aud = aud[0]
    return aud if isinstance(aud, str) and aud else None


def _active(verified: VerifiedToken) -> dict[str, Any]:
    claims = verified.claims
    body: dict[str, Any] = {"active": True, "token_type": "Bearer"}
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti"):
        if name in claims:
            body[name] = claims[name]
    return body
