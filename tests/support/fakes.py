# SPDX-License-Identifier: Apache-2.0
"""First-class fakes of the signer Protocols, for unit tests of everything above the backends.

``FakeAuthority`` is a real ``LocalCA`` behind the ``X509Authority`` Protocol, with a
script of failures in front of it: ``fail_next(3)`` makes the next three calls raise
``SignerUnavailable`` (or any error given), and every call is counted. ``FakeJwtSigner``
does the same for ``JwtSigner`` over a ``JwtKeyRing``. Both pass the backend
conformance suite, so a unit test that uses them tests against the real contract.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, deque
from collections.abc import Iterable, Mapping
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
from wio.clock import Clock, SystemClock
from wio.errors import ForeignCredential, SignerRejected, SignerUnavailable, WioError
from wio.issuing.ca import CAConfig, LocalCA
from wio.issuing.jwt import JwtAlgorithm, JwtKeyRing, SigningKey, sign_jws
from wio.issuing.x509svid import Issued
from wio.models.revocation import namespace_of
from wio.models.spiffe import TrustDomain

DEFAULT_TRUST_DOMAIN = TrustDomain("example.org")


class _Script:
    """Errors to raise on the next calls, per operation or for any operation."""

    def __init__(self) -> None:
        self._queue: deque[tuple[str | None, WioError]] = deque()
        self.calls: Counter[str] = Counter()

    def add(self, count: int, error: WioError | None, operation: str | None) -> None:
        for _ in range(count):
            self._queue.append(
                (operation, error or SignerUnavailable("scripted failure", retry_after=1.0))
            )

    def step(self, operation: str) -> None:
        self.calls[operation] += 1
        if self._queue and self._queue[0][0] in (None, operation):
            _, error = self._queue.popleft()
            raise error

    @property
    def pending(self) -> int:
        return len(self._queue)


class FakeAuthority:
    """An ``X509Authority`` backed by ``LocalCA``, with scriptable failures and call counts.

    ``revoked`` records revoked serials (hex, as given) when ``Capability.REVOKE`` is
    declared, which it is by default so revocation paths can be tested. Declaring
    ``Capability.REQUIRES_CSR`` makes it refuse requests without a CSR, as Vault PKI does.
    """

    def __init__(
        self,
        ca: LocalCA | None = None,
        *,
        name: str = "fake",
        capabilities: Iterable[Capability] = (Capability.REVOKE,),
        clock: Clock | None = None,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self.ca = ca or LocalCA.bootstrap(CAConfig(DEFAULT_TRUST_DOMAIN), self._clock.now())
        self._name = name
        self._capabilities = frozenset(capabilities)
        self._script = _Script()
        self.revoked: list[str] = []
        self.issued: list[Issued] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self._capabilities

    @property
    def calls(self) -> Counter[str]:
        """Calls per operation (``issue``, ``revoke``, ``trust_bundle``), failed ones included."""
        return self._script.calls

    @property
    def pending_failures(self) -> int:
        return self._script.pending

    def fail_next(
        self, count: int = 1, error: WioError | None = None, *, operation: str | None = None
    ) -> None:
        """Make the next ``count`` calls (of ``operation``, or of any) raise ``error``
        (default: ``SignerUnavailable`` with ``retry_after=1``)."""
        self._script.add(count, error, operation)

    async def issue(self, request: SvidRequest) -> Issued:
        self._script.step("issue")
        if Capability.REQUIRES_CSR in self._capabilities and request.csr_pem is None:
            raise SignerRejected(f"signer {self._name!r} signs CSRs only")
        issued = self.ca.issue(
            request.public_key,
            request.spiffe_id,
            ttl=request.ttl,
            now=request.now,
            dns_names=request.dns_names,
        )
        self.issued.append(issued)
        return issued

    async def revoke(self, serial_hex: str, *, namespace: str) -> None:
        self._script.step("revoke")
        if Capability.REVOKE not in self._capabilities:
            raise Unsupported(f"signer {self._name!r} does not revoke")
        # As Vault PKI: only a certificate it signed for a workload of that namespace.
        owners = {i.serial_hex: namespace_of(str(i.spiffe_id)) for i in self.issued}
        if owners.get(serial_hex) != namespace:
            raise ForeignCredential(f"serial {serial_hex} is not of namespace {namespace}")
        self.revoked.append(serial_hex)

    async def trust_bundle(self) -> list[x509.Certificate]:
        self._script.step("trust_bundle")
        return self.ca.trust_bundle()


class FakeJwtSigner:
    """A ``JwtSigner`` backed by a ``JwtKeyRing``, with scriptable failures and call counts."""

    def __init__(
        self,
        ring: JwtKeyRing | None = None,
        *,
        name: str = "fake",
        alg: JwtAlgorithm = JwtAlgorithm.ES256,
    ) -> None:
        self.ring = ring or JwtKeyRing(SigningKey.generate(alg))
        self._name = name
        self._script = _Script()
        self.signed: list[SignedJwt] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def calls(self) -> Counter[str]:
        """Calls per operation (``sign``, ``public_jwks``), failed ones included."""
        return self._script.calls

    def fail_next(
        self, count: int = 1, error: WioError | None = None, *, operation: str | None = None
    ) -> None:
        """Make the next ``count`` calls (of ``operation``, or of any) raise ``error``."""
        self._script.add(count, error, operation)

    def rotate(
        self,
        now: dt.datetime,
        max_token_ttl: dt.timedelta = dt.timedelta(hours=1),
        new_key: SigningKey | None = None,
    ) -> SigningKey:
        """Sign with a new key from now on; the old one stays published for ``max_token_ttl``."""
        key = new_key or SigningKey.generate(self.ring.active.alg)
        self.ring = self.ring.rotate(key, now, max_token_ttl)
        return key

    async def sign(
        self, claims: Mapping[str, Any], *, typ: JwtType = JwtType.JWT_SVID
    ) -> SignedJwt:
        self._script.step("sign")
        key = self.ring.active
        signed = SignedJwt(
            sign_jws(key, jws_header(key.alg, key.kid, typ), claims), key.kid, key.alg
        )
        self.signed.append(signed)
        return signed

    async def public_jwks(self) -> list[dict[str, Any]]:
        self._script.step("public_jwks")
        return [dict(k) for k in self.ring.public_jwks()["keys"]]
