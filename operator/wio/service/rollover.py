# SPDX-License-Identifier: Apache-2.0
"""Rollover of the local CA and JWT signing key on demand, and the emergency distrust.

Admins ask by annotating the local signer's Secret (``wio rollover`` does it for them); the
value is any request ID, and a new ID asks again:

- ``identity.wio.dev/rollover-ca`` / ``rollover-jwt``: publish a new CA (or JWT key) now and
  sign with it ``rolloverPublishDelay`` later, once verifiers have fetched it. The old one
  stays published until everything it signed has expired (ARCHITECTURE.md §6).
- ``identity.wio.dev/distrust-ca`` / ``distrust-jwt``: emergency. A fresh CA (key) signs at
  once and the distrusted ones leave the trust bundle (JWKS) at once; every certificate
  (token) they signed is then re-issued through the usual issuance rate limit, and an Event
  says when none is left.

Each request is acknowledged with ``<annotation>-ack: <ID>`` in the same patch that stores the
new state, so a crash can neither lose a rollover nor repeat one. One task follows the
Secret's metadata (never its keys); another sleeps until the next step is due (a scheduled
activation, the end of a retired key's publication) or a request arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wio.backends.local import LocalAuthority, LocalJwtSigner
from wio.clock import Clock, rfc3339
from wio.errors import WioError
from wio.issuing.ca import CAActionKind, LocalCA
from wio.issuing.jwt import JwtKeyRing, SigningKey
from wio.issuing.keyring_state import dump_keyring
from wio.k8s.events import EventRecorder
from wio.k8s.signer_state import SignerStateStore
from wio.metrics import Metrics
from wio.models.audit import AuditEvent
from wio.names import (
    ACK_SUFFIX,
    DISTRUST_CA_ANNOTATION,
    DISTRUST_JWT_ANNOTATION,
    ROLLOVER_CA_ANNOTATION,
    ROLLOVER_JWT_ANNOTATION,
)
from wio.service.audit import AuditTrail
from wio.service.signers import SignerSet
from wio.service.trust import TrustPublisher

log = logging.getLogger(__name__)

REQUESTS = (
    DISTRUST_CA_ANNOTATION,
    ROLLOVER_CA_ANNOTATION,
    DISTRUST_JWT_ANNOTATION,
    ROLLOVER_JWT_ANNOTATION,
)

# Sleep at most this long: a clock step or a missed wake-up costs an hour at worst.
MAX_SLEEP_SECONDS = 3600.0
# While a distrust's re-issue runs, how often its progress is counted (a dict scan).
PROGRESS_SECONDS = 1.0
RETRY_SECONDS = 5.0


def ack_annotation(request: str) -> str:
    return request + ACK_SUFFIX


def pending_requests(annotations: Mapping[str, str]) -> dict[str, str]:
    """Request annotations whose ID differs from their acknowledgement: still to do."""
    pending = {}
    for name in REQUESTS:
        wanted = annotations.get(name)
        if wanted and annotations.get(ack_annotation(name)) != wanted:
            pending[name] = wanted
    return pending


@dataclass
class _Distrust:
    key: str  # "ca" or "jwt"
    since: float  # monotonic


class KeyRollover:
    """Carries out rollover and distrust requests for the local signer; see the module doc."""

    def __init__(
        self,
        *,
        authority: LocalAuthority,
        jwt: LocalJwtSigner,
        store: SignerStateStore,
        signers: SignerSet,
        trust: TrustPublisher,
        events: EventRecorder,
        metrics: Metrics,
        audit: AuditTrail,
        clock: Clock,
        publish_delay: dt.timedelta,
        jwt_retire_after: dt.timedelta,
        on_distrust: Sequence[Callable[[], None]],
        untrusted: Callable[[], int],
    ) -> None:
        self._authority = authority
        self._jwt = jwt
        self._store = store
        self._signers = signers
        self._trust = trust
        self._events = events
        self._metrics = metrics
        self._audit = audit
        self._clock = clock
        self._publish_delay = publish_delay
        self._jwt_retire_after = jwt_retire_after
        self._on_distrust = tuple(on_distrust)
        self._untrusted = untrusted
        self._pending: dict[str, str] = {}
        self._handled: dict[str, str] = {}  # acknowledged by us, maybe not yet seen back
        self._involved: dict[str, str] = {}
        self._distrust: _Distrust | None = None
        self._seen: tuple[LocalCA, JwtKeyRing] = (authority.ca, jwt.ring)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        # A rollover scheduled before a restart is still pending: show when it activates.
        scheduled = (
            ("ca", self._authority.ca.state.activate_prepared_at),
            ("jwt", self._jwt.ring.activate_staged_at),
        )
        for key, at in scheduled:
            if at is not None:
                self._metrics.key_activation.labels(key).set(at.timestamp())
        self._tasks = [
            asyncio.create_task(self._watch(), name="wio-rollover-watch"),
            asyncio.create_task(self._run(), name="wio-rollover"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def observe(self, meta: Mapping[str, Any] | None) -> None:
        """The signer Secret's metadata, as the watch delivered it."""
        if meta is None:
            return
        annotations: Mapping[str, str] = meta.get("annotations") or {}
        self._involved = {
            "apiVersion": "v1",
            "kind": "Secret",
            "namespace": str(meta.get("namespace", "")),
            "name": str(meta.get("name", "")),
            "uid": str(meta.get("uid", "")),
        }
        self._pending = {
            name: wanted
            for name, wanted in pending_requests(annotations).items()
            if self._handled.get(name) != wanted
        }
        if self._pending:
            self._wake.set()

    async def _watch(self) -> None:
        async for meta in self._store.watch_metadata():
            self.observe(meta)

    async def _run(self) -> None:
        while True:
            delay = RETRY_SECONDS
            try:
                await self.step()
                delay = self._sleep_seconds()
            except WioError as err:
                log.warning("key rollover step failed, will retry: %s", err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()

    def _sleep_seconds(self) -> float:
        if self._distrust is not None:
            return PROGRESS_SECONDS
        ring = self._jwt.ring
        due = [self._authority.next_rotation_check]
        if ring.activate_staged_at is not None:
            due.append(ring.activate_staged_at)
        due.extend(r.publish_until for r in ring.retired)
        seconds = (min(due) - self._clock.now()).total_seconds()
        return min(max(seconds, 0.0), MAX_SLEEP_SECONDS)

    # -- one pass ------------------------------------------------------------------------------

    async def step(self) -> None:
        """Carry out pending requests, then every step that is due; publish what changed."""
        before = (self._signers.trusted_anchors(), self._signers.published_kids())
        pending = dict(self._pending)
        await self._ca_request(pending)
        await self._jwt_request(pending)
        await self._due_steps()
        if self._seen != (self._authority.ca, self._jwt.ring):
            self._seen = (self._authority.ca, self._jwt.ring)
            await self._signers.refresh()
            self._trust.invalidate()
            after = (self._signers.trusted_anchors(), self._signers.published_kids())
            lost = (old - new for old, new in zip(before, after, strict=True) if old and new)
            if any(lost):
                # Something left the bundle: every credential it signed must be re-issued.
                for requeue in self._on_distrust:
                    requeue()
        self._track_distrust()

    async def _ca_request(self, pending: Mapping[str, str]) -> None:
        requests = {
            name: pending[name]
            for name in (DISTRUST_CA_ANNOTATION, ROLLOVER_CA_ANNOTATION)
            if name in pending
        }
        if not requests:
            return
        now = self._clock.now()
        acks = {ack_annotation(name): wanted for name, wanted in requests.items()}
        old = self._authority.ca.state

        async def persist(data: bytes) -> None:
            await self._store.save(ca=data, annotations=acks)

        if DISTRUST_CA_ANNOTATION in requests:
            ca = await self._authority.update(lambda ca: ca.distrust(now), persist)
            gone = ", ".join(p.fingerprint[:16] for p in (old.active, old.prepared) if p)
            self._distrusted("ca", "CADistrusted", f"CA {gone}", f"CA {ca.active.fingerprint[:16]}")
        else:
            ca = await self._authority.update(
                lambda ca: ca.schedule_rollover(now, self._publish_delay), persist
            )
            at = ca.state.activate_prepared_at or now
            new = ca.state.prepared or ca.active
            self._metrics.key_activation.labels("ca").set(at.timestamp())
            self._scheduled(
                "ca",
                "CARolloverScheduled",
                f"new CA {new.fingerprint[:16]} is published and signs from {rfc3339(at)}; "
                f"CA {old.active.fingerprint[:16]} stays published until everything it signed "
                "has expired",
            )
        self._done(requests)

    async def _jwt_request(self, pending: Mapping[str, str]) -> None:
        requests = {
            name: pending[name]
            for name in (DISTRUST_JWT_ANNOTATION, ROLLOVER_JWT_ANNOTATION)
            if name in pending
        }
        if not requests:
            return
        now = self._clock.now()
        acks = {ack_annotation(name): wanted for name, wanted in requests.items()}

        async def persist(ring: JwtKeyRing) -> None:
            await self._store.save(jwt=dump_keyring(ring), annotations=acks)

        old = self._jwt.ring
        fresh = SigningKey.generate(old.active.alg)
        if DISTRUST_JWT_ANNOTATION in requests:
            ring = await self._jwt.update(lambda ring: ring.distrust(fresh), persist)
            gone = ", ".join(k.kid for k in (old.active, old.staged) if k)
            self._distrusted("jwt", "JwtKeyDistrusted", f"JWT key {gone}", f"key {ring.active.kid}")
        else:
            at = now + self._publish_delay
            ring = await self._jwt.update(lambda ring: ring.schedule_rollover(fresh, at), persist)
            self._metrics.key_activation.labels("jwt").set(at.timestamp())
            self._scheduled(
                "jwt",
                "JwtKeyRolloverScheduled",
                f"new JWT key {(ring.staged or ring.active).kid} is published and signs from "
                f"{rfc3339(at)}; key {old.active.kid} stays published until every token it "
                "signed has expired",
            )
        self._done(requests)

    async def _due_steps(self) -> None:
        now = self._clock.now()
        for action in await self._authority.rotate(now):
            self._metrics.key_rollovers.labels("ca", _STEP[action.kind]).inc()
            self._record("Normal", f"CA{_STEP[action.kind].capitalize()}", f"CA: {action.reason}")
            if action.kind is CAActionKind.ACTIVATE:
                self._clear_activation("ca")
        staged = self._jwt.ring.staged
        if staged is not None and self._jwt.ring.activation_due(now):
            await self._jwt.rotate(staged, now, self._jwt_retire_after)
            self._metrics.key_rollovers.labels("jwt", "activated").inc()
            self._clear_activation("jwt")
            self._record("Normal", "JwtKeyActivated", f"JWT key {staged.kid} signs from now on")
        before = len(self._jwt.ring.retired)
        await self._jwt.prune(now)
        if len(self._jwt.ring.retired) < before:
            self._metrics.key_rollovers.labels("jwt", "retired").inc()

    # -- bookkeeping ---------------------------------------------------------------------------

    def _done(self, requests: Mapping[str, str]) -> None:
        for name, wanted in requests.items():
            self._handled[name] = wanted
            self._pending.pop(name, None)

    def _scheduled(self, key: str, reason: str, message: str) -> None:
        self._metrics.key_rollovers.labels(key, "scheduled").inc()
        self._record("Normal", reason, message)

    def _distrusted(self, key: str, reason: str, old: str, new: str) -> None:
        self._metrics.key_rollovers.labels(key, "distrusted").inc()
        self._distrust = _Distrust(key, time.monotonic())
        self._record(
            "Warning",
            reason,
            f"{old} is no longer trusted and left the published bundle; {new} signs from now "
            "on; every credential the old one signed is being re-issued",
            action="distrust",
        )

    def _track_distrust(self) -> None:
        left = self._untrusted()
        self._metrics.untrusted_credentials.set(left)
        if self._distrust is None or left:
            return
        took = time.monotonic() - self._distrust.since
        self._record(
            "Normal",
            "ReissueComplete",
            f"no credential signed by the distrusted {self._distrust.key.upper()} key is left "
            f"in any Secret ({took:.1f}s after the distrust)",
        )
        self._distrust = None

    def _clear_activation(self, key: str) -> None:
        with contextlib.suppress(KeyError):
            self._metrics.key_activation.remove(key)

    def _record(self, type_: str, reason: str, message: str, action: str = "rollover") -> None:
        log.log(logging.INFO if type_ == "Normal" else logging.WARNING, "%s: %s", reason, message)
        self._audit.record(AuditEvent(action, "success", reason=f"{reason}: {message}"))
        if self._involved:
            self._events.record(self._involved, type_, reason, message)


# The metric label and Event reason suffix of each CA rotation step.
_STEP = {
    CAActionKind.PREPARE: "prepared",
    CAActionKind.ACTIVATE: "activated",
    CAActionKind.RETIRE: "retired",
    CAActionKind.NONE: "none",
}
