# SPDX-License-Identifier: Apache-2.0
"""When a credential is due for renewal, and whether what is in its Secret must be reissued.

Both are pure functions of their inputs and ``now`` (STYLE.md #1):

- ``renewal_time`` places the renewal at ``fraction`` of the lifetime with uniform jitter, so
  a fleet issued together does not rotate together; the result is stored, never re-rolled.
- ``first_reissue_reason`` runs an ordered chain of small named checks over an ``Observed``
  snapshot and returns the first that fires (STYLE.md #2, after cert-manager's
  ``policies.go``). Each reason is a CamelCase token usable as a Kubernetes condition reason
  and a Prometheus label; messages name what is wrong and never contain key material.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from wio.errors import ValidationError
from wio.issuing.keys import PrivateKey

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_SECOND_US = 1_000_000
_REASON = re.compile(r"[A-Z][A-Za-z0-9]*")

#: The keys a WorkloadIdentity Secret must hold for its holder to use it (DESIGN.md §3).
REQUIRED_KEYS: tuple[str, ...] = ("tls.crt", "tls.key", "ca.crt")


# --- renewal time ----------------------------------------------------------------------------


def renewal_time(
    not_before: dt.datetime,
    not_after: dt.datetime,
    fraction: float = 0.5,
    jitter: float = 0.1,
    *,
    rng: random.Random,
) -> dt.datetime:
    """When to renew a credential valid from ``not_before`` to ``not_after``.

    ``due = not_before + lifetime * fraction * (1 + u)``, ``u`` uniform in
    ``[-jitter, +jitter]``, truncated to whole seconds. When truncation would fall before the
    earliest allowed instant it is moved up to the first whole second inside the window, so
    the result always lies within ``[nb + L*f*(1-j), nb + L*f*(1+j)]`` whenever that window
    holds a whole second (it holds none only for lifetimes of a few seconds).

    Arithmetic is exact (integer microseconds and ``Fraction``) so the bounds are the bounds.
    Pass ``random.SystemRandom()`` in production and a seeded ``random.Random`` in tests.
    """
    _require_aware(not_before, "notBefore")
    _require_aware(not_after, "notAfter")
    if not_after <= not_before:
        raise ValidationError("notAfter", "must be after notBefore")
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise ValidationError("fraction", "must be a number")
    if not (math.isfinite(fraction) and 0 < fraction < 1):
        raise ValidationError("fraction", "must be strictly between 0 and 1")
    if isinstance(jitter, bool) or not isinstance(jitter, int | float):
        raise ValidationError("jitter", "must be a number")
    if not (math.isfinite(jitter) and 0 <= jitter < 1):
        raise ValidationError("jitter", "must be at least 0 and less than 1")
    if Fraction(fraction) * (1 + Fraction(jitter)) >= 1:
        # The latest renewal would fall at or after expiry: the credential could lapse.
        raise ValidationError("jitter", "fraction * (1 + jitter) must be below 1")

    start_us = (not_before - _EPOCH) // _MICROSECOND
    lifetime_us = (not_after - not_before) // _MICROSECOND
    f, j = Fraction(fraction), Fraction(jitter)
    u = Fraction(rng.uniform(-jitter, jitter)) if jitter else Fraction(0)
    u = min(max(u, -j), j)  # uniform() may round a hair past its bounds
    due_us = start_us + lifetime_us * f * (1 + u)
    earliest_us = start_us + lifetime_us * f * (1 - j)
    latest_us = start_us + lifetime_us * f * (1 + j)

    due_s = math.floor(due_us / _SECOND_US)
    first_s, last_s = math.ceil(earliest_us / _SECOND_US), math.floor(latest_us / _SECOND_US)
    if first_s <= last_s:
        due_s = min(max(due_s, first_s), last_s)
    return _EPOCH + dt.timedelta(seconds=due_s)


# --- reissue checks --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReissueReason:
    """Why a credential must be reissued: a CamelCase ``reason`` token and a human message."""

    reason: str
    message: str

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str) or not _REASON.fullmatch(self.reason):
            raise ValidationError("reason", "must be a CamelCase token")
        if not isinstance(self.message, str) or not self.message:
            raise ValidationError("message", "must be a non-empty string")


@dataclass(frozen=True)
class _Material:
    """What the Secret holds, parsed once for every check that needs it."""

    chain: tuple[x509.Certificate, ...]
    key: PrivateKey

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


@dataclass(frozen=True)
class Observed:
    """A snapshot of one credential's Secret and what it should be, at ``now``.

    ``secret_data`` is the Secret's decoded ``data`` (``None`` when the Secret does not
    exist). ``stored_spec_hash`` and ``stored_renewal_time`` come from the Secret's
    annotations or the owner's status; ``None`` means not recorded.
    """

    secret_data: Mapping[str, bytes] | None
    expected_spiffe_id: str
    expected_spec_hash: str
    stored_spec_hash: str | None
    stored_renewal_time: dt.datetime | None
    trusted_cas: Sequence[x509.Certificate]
    now: dt.datetime

    def __post_init__(self) -> None:
        _require_aware(self.now, "now")
        if self.stored_renewal_time is not None:
            _require_aware(self.stored_renewal_time, "storedRenewalTime")
        if not isinstance(self.expected_spiffe_id, str) or not self.expected_spiffe_id:
            raise ValidationError("expectedSpiffeID", "must be a non-empty string")
        if not isinstance(self.expected_spec_hash, str) or not self.expected_spec_hash:
            raise ValidationError("expectedSpecHash", "must be a non-empty string")
        if self.secret_data is not None:
            object.__setattr__(self, "secret_data", MappingProxyType(dict(self.secret_data)))
        object.__setattr__(self, "trusted_cas", tuple(self.trusted_cas))

    @cached_property
    def _material(self) -> _Material | None:
        # cached_property writes the instance __dict__ directly, so it works on a frozen
        # dataclass; the parse happens once however many checks look at it.
        data = self.secret_data
        if data is None:
            return None
        try:
            chain = tuple(x509.load_pem_x509_certificates(data.get("tls.crt", b"")))
            key = PrivateKey.from_pem(data.get("tls.key", b""))
        except (ValueError, ValidationError):
            return None
        return _Material(chain, key) if chain else None

    @property
    def material(self) -> _Material | None:
        """The parsed leaf chain and key, or ``None`` if missing or unparsable."""
        return self._material

    @cached_property
    def anchor(self) -> x509.Certificate | None:
        """The trusted CA the Secret's chain leads to, or None (computed once)."""
        material = self.material
        return None if material is None else trust_anchor(material.chain, self.trusted_cas)


Check = Callable[[Observed], ReissueReason | None]


def secret_missing(observed: Observed) -> ReissueReason | None:
    if observed.secret_data is None:
        return ReissueReason("SecretMissing", "the Secret does not exist")
    return None


def data_missing(observed: Observed) -> ReissueReason | None:
    data = observed.secret_data or {}
    missing = [name for name in REQUIRED_KEYS if not data.get(name)]
    if missing:
        return ReissueReason("DataMissing", f"the Secret lacks {', '.join(missing)}")
    return None


def unparsable(observed: Observed) -> ReissueReason | None:
    if observed.material is not None:
        return None
    data = observed.secret_data or {}
    try:
        if not x509.load_pem_x509_certificates(data.get("tls.crt", b"")):
            raise ValueError("no certificate")
    except ValueError:
        return ReissueReason("Unparsable", "tls.crt is not a PEM certificate chain")
    return ReissueReason("Unparsable", "tls.key is not a readable PEM private key")


def key_mismatch(observed: Observed) -> ReissueReason | None:
    material = observed.material
    if material is None:
        return None
    public_key = material.leaf.public_key()
    usable_types = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
    if not isinstance(public_key, usable_types) or not material.key.matches(public_key):
        return ReissueReason("KeyMismatch", "tls.key is not the key of the tls.crt certificate")
    return None


def spiffe_id_changed(observed: Observed) -> ReissueReason | None:
    material = observed.material
    if material is None:
        return None
    try:
        san = material.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if uris != [observed.expected_spiffe_id]:
        shown = ", ".join(_truncate(u) for u in uris) or "no URI SAN"
        return ReissueReason(
            "SpiffeIDChanged",
            f"the certificate names {shown}, expected {observed.expected_spiffe_id}",
        )
    return None


def spec_changed(observed: Observed) -> ReissueReason | None:
    if observed.stored_spec_hash != observed.expected_spec_hash:
        if observed.stored_spec_hash is None:
            return ReissueReason("SpecChanged", "the Secret records no spec hash")
        return ReissueReason("SpecChanged", "the spec changed since the credential was issued")
    return None


#: Reason when a certificate's CA has left the trust bundle (an emergency rollover distrusted
#: it) or never was in it: the certificate is re-issued by a trusted one.
ISSUER_NOT_TRUSTED = "IssuerNotTrusted"


def issuer_not_trusted(observed: Observed) -> ReissueReason | None:
    if observed.material is None:
        return None
    if observed.anchor is None:
        return ReissueReason(
            ISSUER_NOT_TRUSTED, "the certificate is not signed by a currently trusted CA"
        )
    return None


def expired(observed: Observed) -> ReissueReason | None:
    material = observed.material
    if material is not None and observed.now >= material.leaf.not_valid_after_utc:
        return ReissueReason(
            "Expired",
            f"the certificate expired at {material.leaf.not_valid_after_utc.isoformat()}",
        )
    return None


def renewal_due(observed: Observed) -> ReissueReason | None:
    due = observed.stored_renewal_time
    if due is None:
        material = observed.material
        if material is None:
            return None
        # No stored time (annotation lost): fall back to the un-jittered half-life rather
        # than re-rolling jitter on every look.
        leaf = material.leaf
        due = leaf.not_valid_before_utc + (leaf.not_valid_after_utc - leaf.not_valid_before_utc) / 2
    if observed.now >= due:
        return ReissueReason("RenewalDue", f"renewal was due at {due.isoformat()}")
    return None


#: The checks in the order they run; the first that fires is the reason.
REISSUE_CHECKS: tuple[Check, ...] = (
    secret_missing,
    data_missing,
    unparsable,
    key_mismatch,
    spiffe_id_changed,
    spec_changed,
    issuer_not_trusted,
    expired,
    renewal_due,
)


def first_reissue_reason(
    observed: Observed, checks: Sequence[Check] = REISSUE_CHECKS
) -> ReissueReason | None:
    """The first reason ``checks`` find to reissue, or ``None`` when the Secret is good."""
    for check in checks:
        reason = check(observed)
        if reason is not None:
            return reason
    return None


# --- helpers ---------------------------------------------------------------------------------


def trust_anchor(
    chain: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    """The trusted CA that signed ``chain[0]`` directly or through ``chain[1:]``, or None.

    Only signatures and issuer names are checked, walking up the chain the Secret carries;
    full path validation is the verifier's job, this only decides whether to reissue.
    """
    for index, cert in enumerate(chain):
        for ca in trusted:
            if _issued_by(cert, ca):
                return ca
        if index + 1 >= len(chain) or not _issued_by(cert, chain[index + 1]):
            return None
    return None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _require_aware(when: dt.datetime, name: str) -> None:
    if not isinstance(when, dt.datetime) or when.utcoffset() is None:
        raise ValidationError(name, "must be a timezone-aware datetime")


def _truncate(text: str, limit: int = 128) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
