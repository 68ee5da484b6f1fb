# SPDX-License-Identifier: Apache-2.0
"""The local CA: a self-signed SPIFFE root that signs X.509-SVIDs, and its two-phase rotation.

Everything here is a value. ``LocalCA`` holds a parsed ``CAState`` (the active
CA with its key, an optional prepared next CA, and retired CAs still published)
and returns new values from every method; the state goes in and out as bytes
(a small JSON document of PEM blocks) so the adapter layer can keep it in a
Secret without knowing its shape.

Rotation (ARCHITECTURE.md §6: publish before signing, keep until everything
signed has expired) is a pure function of the state and ``now``:

- **prepare** once half the active CA's life has passed: a new root is made and
  published in the trust bundle, but signs nothing yet;
- **activate** when a sixth of the active CA's life remains: the prepared root
  starts signing and the old one is retired, still published;
- **retire** a retired CA once every leaf it signed has expired: leaves are capped at
  their issuer's notAfter and at ``max_leaf_ttl``, so that is the earlier of the two,
  counted from the activation of its successor.

Admins can also ask for a rollover at any time (``schedule_rollover``): a new root is
published now and activated ``publish_for`` later, once verifiers have had time to fetch it.
When a CA key must no longer be trusted (``distrust``), a fresh root signs from now on and the
active and prepared roots leave the trust bundle at once; the service then re-issues every
leaf that chained to them.

The CA lifetime must be at least six times the longest leaf TTL, so the last
sixth of a CA's life (after activation of its successor) always covers a
full-length leaf issued just before the switch, and no leaf is ever cut short
by the cap in normal operation.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from wio.clock import rfc3339, whole_seconds
from wio.errors import ConfigError, SignerRejected, SignerUnavailable, ValidationError
from wio.issuing.keys import (
    KeyType,
    PrivateKey,
    PublicKeyTypes,
    certificate_hash_for,
    generate_private_key,
    key_type_of,
)
from wio.issuing.x509svid import (
    DEFAULT_SKEW,
    Issued,
    authority_key_identifier_for,
    build_svid_template,
    random_serial,
    sign_svid,
)
from wio.models.limits import LIFETIME_TO_MAX_LEAF_TTL
from wio.models.spiffe import SpiffeID, TrustDomain

STATE_KIND = "wio.dev/local-ca-state"
STATE_VERSION = 1

DEFAULT_CA_LIFETIME = dt.timedelta(days=365)
"""A year: long enough that rotation is rare, short enough that it is exercised."""

DEFAULT_MAX_LEAF_TTL = dt.timedelta(days=7)
"""Workload SVIDs are short-lived (default 1h); a week is a generous ceiling for policy."""

PREPARE_AT_FRACTION = 0.5
ACTIVATE_WHEN_REMAINING_FRACTION = 1 / 6


@dataclass(frozen=True)
class CAConfig:
    """Admin settings of the local CA; validated so that rotation can never cut leaves short."""

    trust_domain: TrustDomain
    lifetime: dt.timedelta = DEFAULT_CA_LIFETIME
    max_leaf_ttl: dt.timedelta = DEFAULT_MAX_LEAF_TTL
    skew: dt.timedelta = DEFAULT_SKEW
    organization: str = "wio"

    def __post_init__(self) -> None:
        if not isinstance(self.trust_domain, TrustDomain):
            raise ConfigError("localCA.trustDomain", "must be a TrustDomain")
        if self.max_leaf_ttl <= dt.timedelta(0):
            raise ConfigError("localCA.maxLeafTTL", "must be positive")
        if self.lifetime < LIFETIME_TO_MAX_LEAF_TTL * self.max_leaf_ttl:
            raise ConfigError(
                "localCA.lifetime",
                f"must be at least {LIFETIME_TO_MAX_LEAF_TTL} x maxLeafTTL "
                f"({LIFETIME_TO_MAX_LEAF_TTL * self.max_leaf_ttl}), got {self.lifetime}",
            )
        if self.skew < dt.timedelta(0) or self.skew >= self.max_leaf_ttl:
            raise ConfigError("localCA.skew", "must be non-negative and below maxLeafTTL")
        if not self.organization or len(self.organization) > 64:
            raise ConfigError("localCA.organization", "must be 1 to 64 characters")


def cert_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lowercase hex: names a CA in actions and logs."""
    return cert.fingerprint(hashes.SHA256()).hex()


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return bc.ca and ku.key_cert_sign


@dataclass(frozen=True, eq=False)
class CAKeyPair:
    """A CA certificate and its private key, checked to belong together, parsed once."""

    cert: x509.Certificate
    key: PrivateKey = field(repr=False)
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        if not _is_ca(self.cert):
            raise ValidationError("ca.certificate", "not a CA certificate (cA and keyCertSign)")
        if not self.key.matches(self.cert.public_key()):  # type: ignore[arg-type]
            raise ValidationError("ca.privateKey", "private key does not match the CA certificate")
        object.__setattr__(self, "fingerprint", cert_fingerprint(self.cert))

    @property
    def not_before(self) -> dt.datetime:
        return self.cert.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.cert.not_valid_after_utc

    @property
    def lifetime(self) -> dt.timedelta:
        return self.not_after - self.not_before

    @cached_property
    def leaf_authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        """The AKI every leaf of this CA carries, read off the certificate once."""
        return authority_key_identifier_for(self.cert)


@dataclass(frozen=True, eq=False)
class RetiredCA:
    """A CA that signs no more but stays in the trust bundle until ``publish_until``."""

    cert: x509.Certificate
    publish_until: dt.datetime
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        if self.publish_until.tzinfo is None:
            raise ValidationError("retired.publishUntil", "time must be timezone-aware")
        object.__setattr__(self, "fingerprint", cert_fingerprint(self.cert))


def make_root_ca(
    trust_domain: TrustDomain,
    *,
    now: dt.datetime,
    lifetime: dt.timedelta,
    key: PrivateKey,
    skew: dt.timedelta = DEFAULT_SKEW,
    organization: str = "wio",
    randbits: Callable[[int], int] = secrets.randbits,
) -> CAKeyPair:
    """Self-sign a SPIFFE root for ``trust_domain`` valid from ``now - skew`` for ``lifetime``.

    Profile: basicConstraints cA=true pathlen=0 (critical), keyUsage keyCertSign and
    cRLSign (critical), SKI/AKI, and the trust domain ID as the single URI SAN
    (X509-SVID 3.2: a signing certificate's SPIFFE ID has no path).
    """
    if now.tzinfo is None:
        raise ValidationError("now", "time must be timezone-aware")
    now = whole_seconds(now)
    public_key = key.public_key
    # The key fingerprint makes each root's subject unique, so no path builder
    # can confuse a retired root with its successor by name.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, f"wio CA {key.fingerprint[:16]}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(random_serial(randbits))
        .not_valid_before(now - skew)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(trust_domain.id()))]),
            critical=False,
        )
        .sign(key.key, certificate_hash_for(key.key))
    )
    return CAKeyPair(cert, key)


def _new_ca_key() -> PrivateKey:
    return generate_private_key(KeyType.ECDSAP256)


def _new_root(
    config: CAConfig,
    now: dt.datetime,
    key_factory: Callable[[], PrivateKey],
    randbits: Callable[[int], int],
) -> CAKeyPair:
    """A fresh root for ``config``'s trust domain, valid from ``now``."""
    return make_root_ca(
        config.trust_domain,
        now=now,
        lifetime=config.lifetime,
        key=key_factory(),
        skew=config.skew,
        organization=config.organization,
        randbits=randbits,
    )


# ---------------------------------------------------------------- state


def _ca_trust_domain_ok(cert: x509.Certificate, trust_domain: TrustDomain) -> bool:
    """A CA with a URI SAN must name exactly our trust domain ID; one without is accepted."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return not uris or uris == [str(trust_domain.id())]


@dataclass(frozen=True)
class CAState:
    """The local CA's persistent state: active signer, prepared successor, retired roots."""

    trust_domain: TrustDomain
    active: CAKeyPair
    prepared: CAKeyPair | None = None
    retired: tuple[RetiredCA, ...] = ()
    # An on-demand rollover activates the prepared root at this time instead of at
    # ``activate_at(active)`` (whichever comes first).
    activate_prepared_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.activate_prepared_at is not None and self.prepared is None:
            raise ValidationError("caState.activateAt", "set only while a next CA is prepared")
        signers = {"active": self.active, "prepared": self.prepared}
        for where, pair in signers.items():
            if pair is not None and not _ca_trust_domain_ok(pair.cert, self.trust_domain):
                raise ValidationError(
                    f"caState.{where}", f"CA does not belong to trust domain {self.trust_domain}"
                )

    def trust_bundle(self) -> tuple[x509.Certificate, ...]:
        """Active, then prepared, then retired-but-published roots: everything verifiers need."""
        certs = [self.active.cert]
        if self.prepared is not None:
            certs.append(self.prepared.cert)
        certs.extend(r.cert for r in self.retired)
        return tuple(certs)

    def to_bytes(self) -> bytes:
        """Serialise to a JSON document of PEM blocks (contains private keys: store as a Secret)."""

        def pair(p: CAKeyPair) -> dict[str, str]:
            return {
                "certificate": p.cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                "privateKey": p.key.to_pkcs8_pem().decode("ascii"),
            }

        doc: dict[str, Any] = {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "trustDomain": self.trust_domain.name,
            "active": pair(self.active),
            "prepared": pair(self.prepared) if self.prepared is not None else None,
            "activateAt": (
                rfc3339(self.activate_prepared_at) if self.activate_prepared_at else None
            ),
            "retired": [
                {
                    "certificate": r.cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                    "publishUntil": rfc3339(r.publish_until),
                }
                for r in self.retired
            ],
        }
        return json.dumps(doc, indent=2, sort_keys=True).encode("utf-8") + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> CAState:
        """Parse ``to_bytes`` output; every defect is a ``ValidationError`` naming the field."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as err:
            raise ValidationError("caState", "not a JSON document") from err
        if not isinstance(doc, dict):
            raise ValidationError("caState", "must be a JSON object")
        if doc.get("kind") != STATE_KIND:
            raise ValidationError("caState.kind", f"must be {STATE_KIND!r}")
        if doc.get("version") != STATE_VERSION:
            raise ValidationError("caState.version", f"unsupported version {doc.get('version')!r}")
        trust_domain = TrustDomain.parse(_string(doc, "trustDomain"), field="caState.trustDomain")
        active = _load_pair(doc.get("active"), "caState.active")
        prepared_doc = doc.get("prepared")
        prepared = None if prepared_doc is None else _load_pair(prepared_doc, "caState.prepared")
        retired_doc = doc.get("retired", [])
        if not isinstance(retired_doc, list):
            raise ValidationError("caState.retired", "must be a list")
        retired = tuple(
            _load_retired(item, f"caState.retired[{i}]") for i, item in enumerate(retired_doc)
        )
        activate = doc.get("activateAt")
        return cls(
            trust_domain,
            active,
            prepared,
            retired,
            None if activate is None else _load_time(activate, "caState.activateAt"),
        )


def _string(doc: Mapping[str, Any], key: str, where: str = "caState") -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{where}.{key}", "must be a non-empty string")
    return value


def _load_cert(pem: str, where: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm) as err:
        raise ValidationError(where, "not a readable PEM certificate") from err


def _load_pair(doc: object, where: str) -> CAKeyPair:
    if not isinstance(doc, dict):
        raise ValidationError(where, "must be an object with certificate and privateKey")
    cert = _load_cert(_string(doc, "certificate", where), f"{where}.certificate")
    try:
        key = PrivateKey.from_pem(_string(doc, "privateKey", where).encode("ascii"))
    except (ValidationError, UnicodeEncodeError) as err:
        raise ValidationError(f"{where}.privateKey", "not a readable PEM private key") from err
    return CAKeyPair(cert, key)


def _load_retired(doc: object, where: str) -> RetiredCA:
    if not isinstance(doc, dict):
        raise ValidationError(where, "must be an object with certificate and publishUntil")
    cert = _load_cert(_string(doc, "certificate", where), f"{where}.certificate")
    return RetiredCA(cert, _load_time(_string(doc, "publishUntil", where), f"{where}.publishUntil"))


def _load_time(value: object, where: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError as err:
        raise ValidationError(where, "must be YYYY-MM-DDTHH:MM:SSZ") from err


# ---------------------------------------------------------------- rotation policy


class CAActionKind(enum.StrEnum):
    NONE = "none"
    PREPARE = "prepare"
    ACTIVATE = "activate"
    RETIRE = "retire"


@dataclass(frozen=True)
class CARotationAction:
    """What the rotation policy says to do now; ``retire`` lists CA cert fingerprints."""

    kind: CAActionKind
    reason: str = ""
    retire: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.kind is CAActionKind.RETIRE) != bool(self.retire):
            raise ValidationError("action.retire", "only a retire action lists CAs, and it must")


NO_ACTION = CARotationAction(CAActionKind.NONE)


def prepare_at(active: CAKeyPair) -> dt.datetime:
    """When the successor is made and published: half the active CA's life."""
    return active.not_before + active.lifetime * PREPARE_AT_FRACTION


def activate_at(active: CAKeyPair) -> dt.datetime:
    """When the successor starts signing: a sixth of the active CA's life before its end."""
    return active.not_after - active.lifetime * ACTIVATE_WHEN_REMAINING_FRACTION


def prepared_activation(state: CAState) -> dt.datetime:
    """When the prepared root of ``state`` starts signing: the natural time or, after an
    on-demand rollover, the requested one, whichever comes first."""
    natural = activate_at(state.active)
    requested = state.activate_prepared_at
    return natural if requested is None else min(natural, requested)


def ca_rotation_action(state: CAState, now: dt.datetime) -> CARotationAction:
    """The next rotation step for ``state`` at ``now``; pure. Apply it and ask again until NONE.

    Order: activation first (signing continuity matters most), then preparation,
    then retirement (only tidies the bundle).
    """
    if now.tzinfo is None:
        raise ValidationError("now", "time must be timezone-aware")
    active = state.active
    if state.prepared is not None and now >= prepared_activation(state):
        if state.activate_prepared_at is not None and now >= state.activate_prepared_at:
            why = "the rollover's publication period"
            since = state.activate_prepared_at
        else:
            why, since = "a sixth of the active CA's life", activate_at(active)
        return CARotationAction(CAActionKind.ACTIVATE, f"{why} has passed (since {rfc3339(since)})")
    if state.prepared is None and now >= prepare_at(active):
        return CARotationAction(
            CAActionKind.PREPARE,
            f"half the active CA's life has passed (since {rfc3339(prepare_at(active))})",
        )
    expired = tuple(r.fingerprint for r in state.retired if now >= r.publish_until)
    if expired:
        return CARotationAction(
            CAActionKind.RETIRE,
            "every leaf signed by these retired CAs has expired",
            retire=expired,
        )
    return NO_ACTION


def apply_rotation(
    state: CAState,
    action: CARotationAction,
    now: dt.datetime,
    config: CAConfig,
    *,
    key_factory: Callable[[], PrivateKey] = _new_ca_key,
    randbits: Callable[[int], int] = secrets.randbits,
) -> CAState:
    """Return the state after ``action``; refuse an action whose precondition does not hold."""
    match action.kind:
        case CAActionKind.NONE:
            return state
        case CAActionKind.PREPARE:
            if state.prepared is not None:
                raise ValidationError("action", "a next CA is already prepared")
            successor = _new_root(config, now, key_factory, randbits)
            return replace(state, prepared=successor)
        case CAActionKind.ACTIVATE:
            if state.prepared is None:
                raise ValidationError("action", "no prepared CA to activate")
            old = state.active
            # Leaves are capped at their issuer's notAfter and at max_leaf_ttl, so the old
            # root is needed until the earlier of the two; an expired one is dropped now.
            retired = state.retired
            until = min(old.not_after, whole_seconds(now) + config.max_leaf_ttl + config.skew)
            if until > now:
                retired = (*retired, RetiredCA(old.cert, until))
            return replace(
                state,
                active=state.prepared,
                prepared=None,
                retired=retired,
                activate_prepared_at=None,
            )
        case CAActionKind.RETIRE:
            known = {r.fingerprint for r in state.retired}
            unknown = [f for f in action.retire if f not in known]
            if unknown:
                raise ValidationError("action.retire", f"no retired CA {unknown[0][:16]}...")
            drop = set(action.retire)
            return replace(
                state, retired=tuple(r for r in state.retired if r.fingerprint not in drop)
            )


def schedule_rollover(
    state: CAState,
    now: dt.datetime,
    publish_for: dt.timedelta,
    config: CAConfig,
    *,
    key_factory: Callable[[], PrivateKey] = _new_ca_key,
    randbits: Callable[[int], int] = secrets.randbits,
) -> CAState:
    """An on-demand rollover: a successor published from ``now`` (an already prepared one is
    kept: it has been published longer) that activates ``publish_for`` later."""
    if publish_for < dt.timedelta(0):
        raise ValidationError("publishFor", "must not be negative")
    if state.prepared is None:
        state = apply_rotation(
            state,
            CARotationAction(CAActionKind.PREPARE),
            now,
            config,
            key_factory=key_factory,
            randbits=randbits,
        )
    return replace(state, activate_prepared_at=whole_seconds(now) + publish_for)


def distrust(
    state: CAState,
    now: dt.datetime,
    config: CAConfig,
    *,
    key_factory: Callable[[], PrivateKey] = _new_ca_key,
    randbits: Callable[[int], int] = secrets.randbits,
) -> CAState:
    """Emergency: a fresh root signs from ``now``; the active and prepared roots (their keys
    were stored together, so neither can be trusted) leave the trust bundle at once. Retired
    roots, whose keys were never kept, stay published until their leaves expire."""
    fresh = _new_root(config, now, key_factory, randbits)
    return CAState(state.trust_domain, fresh, None, state.retired)


# ---------------------------------------------------------------- the CA


@dataclass(frozen=True)
class LocalCA:
    """An in-process CA for one trust domain. Immutable: ``apply`` returns a new ``LocalCA``.

    It never sees a leaf's private key: issuance takes a public key or a CSR.
    """

    config: CAConfig
    state: CAState
    randbits: Callable[[int], int] = field(default=secrets.randbits, repr=False, compare=False)
    key_factory: Callable[[], PrivateKey] = field(default=_new_ca_key, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.state.trust_domain != self.config.trust_domain:
            raise ConfigError(
                "localCA.trustDomain",
                f"configured {self.config.trust_domain} but the stored CA is for "
                f"{self.state.trust_domain}; refusing to mix trust domains",
            )

    @classmethod
    def bootstrap(
        cls,
        config: CAConfig,
        now: dt.datetime,
        *,
        randbits: Callable[[int], int] = secrets.randbits,
        key_factory: Callable[[], PrivateKey] = _new_ca_key,
    ) -> LocalCA:
        """Make a fresh root from nothing."""
        root = _new_root(config, now, key_factory, randbits)
        return cls(config, CAState(config.trust_domain, root), randbits, key_factory)

    @classmethod
    def load(
        cls,
        data: bytes,
        config: CAConfig,
        *,
        randbits: Callable[[int], int] = secrets.randbits,
        key_factory: Callable[[], PrivateKey] = _new_ca_key,
    ) -> LocalCA:
        """Load state written by ``dump``."""
        return cls(config, CAState.from_bytes(data), randbits, key_factory)

    def dump(self) -> bytes:
        """The state as bytes, for ``load`` (holds private keys: store it as a Secret)."""
        return self.state.to_bytes()

    @property
    def trust_domain(self) -> TrustDomain:
        return self.config.trust_domain

    @property
    def active(self) -> CAKeyPair:
        return self.state.active

    def trust_bundle(self) -> list[x509.Certificate]:
        """Active + prepared + retired-but-published roots."""
        return list(self.state.trust_bundle())

    def rotation_action(self, now: dt.datetime) -> CARotationAction:
        return ca_rotation_action(self.state, now)

    def apply(self, action: CARotationAction, now: dt.datetime) -> LocalCA:
        new_state = apply_rotation(
            self.state,
            action,
            now,
            self.config,
            key_factory=self.key_factory,
            randbits=self.randbits,
        )
        return self if new_state is self.state else replace(self, state=new_state)

    def schedule_rollover(self, now: dt.datetime, publish_for: dt.timedelta) -> LocalCA:
        """Publish a successor now and activate it ``publish_for`` later."""
        state = schedule_rollover(
            self.state,
            now,
            publish_for,
            self.config,
            key_factory=self.key_factory,
            randbits=self.randbits,
        )
        return replace(self, state=state)

    def distrust(self, now: dt.datetime) -> LocalCA:
        """Sign with a fresh root from now on; stop publishing the active and prepared ones."""
        state = distrust(
            self.state, now, self.config, key_factory=self.key_factory, randbits=self.randbits
        )
        return replace(self, state=state)

    def rotate(self, now: dt.datetime) -> tuple[LocalCA, tuple[CARotationAction, ...]]:
        """Apply rotation steps until none is due; returns the new CA and the steps taken."""
        ca, taken = self, []
        # At most prepare, activate, retire: the bound only guards against a bug looping.
        for _ in range(8):
            action = ca.rotation_action(now)
            if action.kind is CAActionKind.NONE:
                break
            ca = ca.apply(action, now)
            taken.append(action)
        return ca, tuple(taken)

    def _check_request(self, spiffe_id: SpiffeID, ttl: dt.timedelta) -> None:
        if not isinstance(spiffe_id, SpiffeID):
            raise SignerRejected("spiffe_id must be a SpiffeID")
        if spiffe_id.trust_domain != self.config.trust_domain:
            raise SignerRejected(
                f"SPIFFE ID is in trust domain {spiffe_id.trust_domain}, this CA signs for "
                f"{self.config.trust_domain}"
            )
        if ttl > self.config.max_leaf_ttl:
            raise SignerRejected(
                f"requested TTL {ttl} exceeds the local CA's maximum {self.config.max_leaf_ttl}"
            )

    def issue(
        self,
        public_key: PublicKeyTypes,
        spiffe_id: SpiffeID,
        *,
        ttl: dt.timedelta,
        now: dt.datetime,
        dns_names: Sequence[str] = (),
    ) -> Issued:
        """Sign an X.509-SVID for ``public_key`` with the active CA."""
        self._check_request(spiffe_id, ttl)
        active = self.state.active
        if active.not_after <= now:
            raise SignerUnavailable("the local CA certificate has expired; CA rotation is overdue")
        template = build_svid_template(
            spiffe_id,
            public_key,
            issuer_cert=active.cert,
            ttl=ttl,
            now=now,
            dns_names=dns_names,
            skew=self.config.skew,
            randbits=self.randbits,
            authority_key_identifier=active.leaf_authority_key_identifier,
        )
        return Issued(sign_svid(template, active.key, active.cert))

    def issue_from_csr(
        self,
        csr_pem: bytes,
        spiffe_id: SpiffeID,
        dns_names: Sequence[str],
        ttl: dt.timedelta,
        now: dt.datetime,
    ) -> Issued:
        """Sign for the public key in a PKCS#10 CSR after checking its self-signature.

        Only the key is taken from the CSR: its subject and any SANs it asks for
        are ignored, because identity comes from the caller's checked request.
        """
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except (ValueError, UnsupportedAlgorithm) as err:
            raise SignerRejected("CSR is not a readable PEM certificate request") from err
        try:
            signature_ok = csr.is_signature_valid
        except UnsupportedAlgorithm as err:
            raise SignerRejected("CSR uses an unsupported signature algorithm") from err
        if not signature_ok:
            raise SignerRejected("CSR signature does not verify: proof of key possession failed")
        public_key = csr.public_key()
        try:
            key_type_of(public_key)  # type: ignore[arg-type]
        except ValidationError as err:
            raise SignerRejected(f"CSR key refused: {err.detail}") from err
        return self.issue(
            public_key,  # type: ignore[arg-type]
            spiffe_id,
            ttl=ttl,
            now=now,
            dns_names=dns_names,
        )
