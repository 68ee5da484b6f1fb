# SPDX-License-Identifier: Apache-2.0
"""The in-process signers: ``LocalAuthority`` over ``LocalCA`` and ``LocalJwtSigner`` over a
``JwtKeyRing``.

Signing here is pure CPU (about 0.2 ms for a P-256 SVID, 0.08 ms for an ES256 JWT), so it
runs inline on the event loop: handing it to a thread would cost more than it saves, and
Python threads add no crypto throughput anyway (measured by bench/issuing.py).

State lives in memory. Persisting it is the adapter layer's job: both classes take an
``on_change`` callback that receives the new state whenever rotation changes it, and is
awaited *before* the new state is used, so a new CA never signs anything that a restart
could forget.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cryptography import x509

from wio.backends.protocols import (
    Capability,
    JwtType,
    SignedJwt,
    SvidRequest,
    Unsupported,
    jws_header,
)
from wio.issuing.ca import CARotationAction, LocalCA, prepare_at, prepared_activation
from wio.issuing.jwt import JwtKeyRing, SigningKey, sign_jws
from wio.issuing.x509svid import Issued

CAStateListener = Callable[[bytes], Awaitable[None]]
KeyRingListener = Callable[[JwtKeyRing], Awaitable[None]]


class LocalAuthority:
    """An ``X509Authority`` backed by the in-process ``LocalCA``.

    With ``auto_rotate`` (the default) each ``issue`` first applies any CA rotation step
    that is due (prepare, activate, retire), persists it through ``on_change`` and only
    then signs, so the CA cannot expire under a running operator even if nothing else
    drives rotation. The check costs a few microseconds. No upstream revocation: a
    revoked local SVID is published in wio's own revocation list instead.
    """

    def __init__(
        self,
        ca: LocalCA,
        *,
        name: str = "local",
        on_change: CAStateListener | None = None,
        auto_rotate: bool = True,
    ) -> None:
        self._ca = ca
        self._name = name
        self._on_change = on_change
        self._auto_rotate = auto_rotate
        self._rotation_lock = asyncio.Lock()
        self._next_rotation_check = _next_rotation_check(ca)

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset()

    @property
    def ca(self) -> LocalCA:
        """The current CA value (immutable; replaced on rotation)."""
        return self._ca

    def state_bytes(self) -> bytes:
        """The CA state for persistence (holds private keys: store it as a Secret)."""
        return self._ca.dump()

    async def issue(self, request: SvidRequest) -> Issued:
        if self._auto_rotate and request.now >= self._next_rotation_check:
            await self.rotate(request.now)
        ca = self._ca
        # Only the public key is used: a CSR, when present, was already checked to carry
        # the same key, and the identity comes from the request, never from the CSR.
        return ca.issue(
            request.public_key,
            request.spiffe_id,
            ttl=request.ttl,
            now=request.now,
            dns_names=request.dns_names,
        )

    async def rotate(self, now: dt.datetime) -> tuple[CARotationAction, ...]:
        """Apply every CA rotation step due at ``now``; persist before adopting the result."""
        async with self._rotation_lock:
            rotated, taken = self._ca.rotate(now)
            if taken:
                if self._on_change is not None:
                    # If persisting fails the old state stays in use and the step is retried
                    # on the next call: prepare and activate each have months of slack.
                    await self._on_change(rotated.dump())
                self._ca = rotated
            self._next_rotation_check = _next_rotation_check(self._ca)
            return taken

    @property
    def next_rotation_check(self) -> dt.datetime:
        """When the next rotation step can become due (see ``_next_rotation_check``)."""
        return self._next_rotation_check

    async def update(
        self, change: Callable[[LocalCA], LocalCA], persist: CAStateListener
    ) -> LocalCA:
        """Apply an admin-requested ``change`` (rollover, distrust): persisted through
        ``persist`` before the new CA signs anything. Returns the CA now in use."""
        async with self._rotation_lock:
            changed = change(self._ca)
            if changed is not self._ca:
                await persist(changed.dump())
                self._ca = changed
                self._next_rotation_check = _next_rotation_check(changed)
            return self._ca

    async def revoke(self, serial_hex: str, *, namespace: str) -> None:
        raise Unsupported(
            f"signer {self._name!r} (local CA) has no upstream revocation; "
            "the revocation list published with the trust bundle covers it"
        )

    async def trust_bundle(self) -> list[x509.Certificate]:
        return self._ca.trust_bundle()


def _next_rotation_check(ca: LocalCA) -> dt.datetime:
    """The earliest time a rotation step can become due for ``ca``'s state.

    ``ca_rotation_action`` is a pure function of the state and the time, and each of its
    triggers is a fixed instant of the state (prepare at half life, activate at five
    sixths, retire at ``publish_until``), so between rotations ``issue`` compares one
    datetime instead of re-deriving the policy on every signature.
    """
    state = ca.state
    due = [prepared_activation(state) if state.prepared is not None else prepare_at(state.active)]
    due.extend(r.publish_until for r in state.retired)
    return min(due)


class LocalJwtSigner:
    """A ``JwtSigner`` backed by an in-process ``JwtKeyRing``: signs with its active key and
    publishes active, staged and retired-but-unexpired keys."""

    def __init__(
        self,
        ring: JwtKeyRing,
        *,
        name: str = "local",
        on_change: KeyRingListener | None = None,
    ) -> None:
        self._ring = ring
        self._name = name
        self._on_change = on_change
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def ring(self) -> JwtKeyRing:
        return self._ring

    async def sign(
        self, claims: Mapping[str, Any], *, typ: JwtType = JwtType.JWT_SVID
    ) -> SignedJwt:
        key = self._ring.active
        token = sign_jws(key, jws_header(key.alg, key.kid, typ), claims)
        return SignedJwt(token, key.kid, key.alg)

    async def public_jwks(self) -> list[dict[str, Any]]:
        return [dict(k) for k in self._ring.public_jwks()["keys"]]

    async def stage(self, next_key: SigningKey) -> None:
        """Publish ``next_key`` without signing with it yet."""
        await self.update(lambda ring: ring.stage(next_key), self._on_change)

    async def rotate(
        self, new_key: SigningKey, now: dt.datetime, max_token_ttl: dt.timedelta
    ) -> None:
        """Sign with ``new_key`` from now on; the old key stays published for ``max_token_ttl``."""
        await self.update(lambda ring: ring.rotate(new_key, now, max_token_ttl), self._on_change)

    async def prune(self, now: dt.datetime) -> None:
        """Stop publishing retired keys whose tokens have all expired."""
        await self.update(lambda ring: ring.prune(now), self._on_change)

    async def update(
        self, change: Callable[[JwtKeyRing], JwtKeyRing], persist: KeyRingListener | None
    ) -> JwtKeyRing:
        """Apply ``change``; persisted through ``persist`` before the new ring signs anything.
        Returns the ring now in use."""
        async with self._lock:
            new_ring = change(self._ring)
            if new_ring is not self._ring:
                if persist is not None:
                    await persist(new_ring)
                self._ring = new_ring
            return self._ring
