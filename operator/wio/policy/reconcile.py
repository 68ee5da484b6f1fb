# SPDX-License-Identifier: Apache-2.0
"""Should this WorkloadIdentity be issued again now? An ordered chain of small named checks.

The operator decides from what the watches delivered: the object's stored status and a
verdict on its Secret computed when the Secret event arrived (``SecretFacts``: ``secret_facts``
runs the content checks once and keeps only their verdict). No API read is needed, so a
rotation costs exactly the writes it makes. Each check returns a ``ReissueReason`` (CamelCase
reason, human message) or None; the first reason wins and becomes the condition reason, the
Event text and a metric label (ARCHITECTURE.md §8).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from wio.errors import ValidationError
from wio.issuing.ca import cert_fingerprint
from wio.issuing.jwt import parse_unverified
from wio.issuing.keys import PrivateKey, public_key_fingerprint
from wio.names import (
    GROUP,
    RENEW_AT_ANNOTATION,
    SERIAL_ANNOTATION,
    SPEC_HASH_ANNOTATION,
)
from wio.policy.checks import (
    KEY_UNPUBLISHED,
    forced,
    key_unpublished,
    revoke_requested,
    secret_damaged,
    secret_missing,
    secret_moved,
    spec_changed,
)
from wio.policy.rotation import ReissueReason

#: The keys a WorkloadIdentity Secret must hold for its holder to use it.
REQUIRED_KEYS: tuple[str, ...] = ("tls.crt", "tls.key", "ca.crt")
#: Reason when a certificate's CA has left the trust bundle (an emergency rollover distrusted
#: it) or never was in it: the certificate is re-issued by a trusted one.
ISSUER_NOT_TRUSTED = "IssuerNotTrusted"


@dataclass(frozen=True)
class SecretFacts:
    """What the Secret watch learned about one identity Secret (never its content)."""

    serial: str | None  # the certificate's serial in hex, None when unreadable
    spiffe_id: str | None
    problem: ReissueReason | None  # DataMissing, Unparsable, KeyMismatch...
    has_token: bool = False
    # From the certificate and wio's own annotations: enough to adopt a credential that was
    # written just before a crash, instead of minting yet another one.
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    key_fingerprint: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    # Which signer made it, so a distrusted one is noticed without reading the Secret again:
    # the SHA-256 fingerprint of the trusted CA its chain leads to, and the JWT-SVID's kid.
    anchor: str | None = None
    token_kid: str | None = None


@dataclass(frozen=True)
class IdentityState:
    """Everything the checks need about one identity at ``now``."""

    now: dt.datetime
    expected_spiffe_id: str
    spec_hash: str
    secret_name: str
    wants_token: bool
    stored_serial: str | None
    stored_spec_hash: str | None
    stored_secret_name: str | None
    not_after: dt.datetime | None
    renewal_time: dt.datetime | None
    token_renewal_time: dt.datetime | None
    forced_request: str | None
    forced_ack: str | None
    secrets_synced: bool
    secret: SecretFacts | None
    # Fingerprints of the trust bundle's CAs and kids of the published JWT keys; None until
    # the signers have been read (then nothing is judged by them).
    trusted_anchors: frozenset[str] | None = None
    published_kids: frozenset[str] | None = None
    # The revoke annotation's value, and the one status acknowledges (handled already).
    revoke_request: str | None = None
    revoke_ack: str | None = None


Check = Callable[[IdentityState], ReissueReason | None]


# --- the Secret's content, judged once when its event arrives -------------------------------------


@dataclass(frozen=True)
class SecretContent:
    """One identity Secret's data, parsed once for every content check (and then dropped).

    ``chain`` and ``key`` are empty when ``tls.crt`` or ``tls.key`` is missing or unreadable,
    and the checks that need them leave the verdict to ``data_missing`` and ``unparsable``;
    ``anchor`` is also None when no trusted CA signed the chain.
    """

    data: Mapping[str, bytes]
    chain: tuple[x509.Certificate, ...] = ()
    key: PrivateKey | None = None
    anchor: x509.Certificate | None = None  # the trusted CA the chain leads to

    @classmethod
    def read(
        cls, data: Mapping[str, bytes], trusted_cas: Sequence[x509.Certificate]
    ) -> SecretContent:
        try:
            chain = tuple(x509.load_pem_x509_certificates(data.get("tls.crt", b"")))
            key = PrivateKey.from_pem(data.get("tls.key", b""))
        except (ValueError, ValidationError):
            return cls(data)
        if not chain:
            return cls(data)
        return cls(data, chain, key, trust_anchor(chain, trusted_cas))


ContentCheck = Callable[[SecretContent], ReissueReason | None]


def data_missing(c: SecretContent) -> ReissueReason | None:
    missing = [name for name in REQUIRED_KEYS if not c.data.get(name)]
    if missing:
        return ReissueReason("DataMissing", f"the Secret lacks {', '.join(missing)}")
    return None


def unparsable(c: SecretContent) -> ReissueReason | None:
    if c.key is not None:
        return None
    try:
        if not x509.load_pem_x509_certificates(c.data.get("tls.crt", b"")):
            raise ValueError("no certificate")
    except ValueError:
        return ReissueReason("Unparsable", "tls.crt is not a PEM certificate chain")
    return ReissueReason("Unparsable", "tls.key is not a readable PEM private key")


def key_mismatch(c: SecretContent) -> ReissueReason | None:
    if c.key is None:
        return None
    public_key = c.chain[0].public_key()
    usable_types = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
    if not isinstance(public_key, usable_types) or not c.key.matches(public_key):
        return ReissueReason("KeyMismatch", "tls.key is not the key of the tls.crt certificate")
    return None


def issuer_not_trusted(c: SecretContent) -> ReissueReason | None:
    if c.key is not None and c.anchor is None:
        return ReissueReason(
            ISSUER_NOT_TRUSTED, "the certificate is not signed by a currently trusted CA"
        )
    return None


#: The content checks in the order they run; the first that fires is the Secret's problem.
CONTENT_CHECKS: tuple[ContentCheck, ...] = (
    data_missing,
    unparsable,
    key_mismatch,
    issuer_not_trusted,
)


def secret_facts(
    data: Mapping[str, bytes],
    trusted_cas: Sequence[x509.Certificate],
    annotations: Mapping[str, str] | None = None,
) -> SecretFacts:
    """Judge one identity Secret's content once, keeping only the verdict and the serial.

    Whether it is the right credential (SPIFFE ID, serial, spec) and whether it is due are
    judged later against the owner's status, by the chain.
    """
    content = SecretContent.read(data, trusted_cas)
    problem = next((r for r in (c(content) for c in CONTENT_CHECKS) if r is not None), None)
    cert = _leaf(data)
    token = parse_unverified(data["token"]) if data.get("token") else None
    return SecretFacts(
        serial=format(cert.serial_number, "x") if cert else None,
        spiffe_id=_single_uri_san(cert) if cert else None,
        problem=problem,
        has_token=bool(data.get("token")),
        not_before=cert.not_valid_before_utc if cert else None,
        not_after=cert.not_valid_after_utc if cert else None,
        key_fingerprint=public_key_fingerprint(cert.public_key()) if cert else None,  # type: ignore[arg-type]
        annotations=wio_annotations(annotations or {}),
        # Interned: ten thousand Secrets share a handful of anchors and kids.
        anchor=sys.intern(cert_fingerprint(content.anchor)) if content.anchor else None,
        token_kid=sys.intern(token.kid) if token is not None and token.kid else None,
    )


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


def wio_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    """wio's own annotations: the only ones adoption reads, and all a view keeps."""
    return {k: v for k, v in annotations.items() if k.startswith(GROUP)}


def issued_anchor(
    chain: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate]
) -> str | None:
    """The fingerprint of the trusted CA a chain wio has just verified leads to, matched by
    name and key identifier (the signatures were checked by that verification already)."""
    top = chain[-1]
    for ca in trusted:
        if ca == top or (ca.subject == top.issuer and _key_id(ca) == _authority_key_id(top)):
            return sys.intern(cert_fingerprint(ca))
    return None


def _key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _authority_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return aki.key_identifier


def _leaf(data: Mapping[str, bytes]) -> x509.Certificate | None:
    """The first certificate of ``tls.crt``; None when absent or unreadable (the content
    checks have already named that problem)."""
    try:
        return x509.load_pem_x509_certificate(data["tls.crt"])
    except (KeyError, ValueError):
        return None


def _single_uri_san(cert: x509.Certificate) -> str | None:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if len(uris) == 1 else None


# --- the chain over the stored status and the Secret's verdict ------------------------------------


def not_issued(s: IdentityState) -> ReissueReason | None:
    if s.stored_serial is None:
        return ReissueReason("NotIssued", "no credential has been issued yet")
    return None


ADOPT = "AdoptSecret"


def secret_adoptable(s: IdentityState) -> ReissueReason | None:
    """The Secret holds a sound credential wio wrote but never recorded (a crash between the
    Secret write and the status patch): record it rather than mint another."""
    f = s.secret
    if f is None or f.serial is None or f.problem is not None or f.serial == s.stored_serial:
        return None
    if f.spiffe_id != s.expected_spiffe_id or f.not_after is None or f.not_after <= s.now:
        return None
    if f.annotations.get(SERIAL_ANNOTATION) != f.serial:
        return None
    if f.annotations.get(SPEC_HASH_ANNOTATION) != s.spec_hash:
        return None
    if not f.annotations.get(RENEW_AT_ANNOTATION):
        return None
    if s.wants_token and not f.has_token:
        return None
    return ReissueReason(ADOPT, f"recorded the credential already in Secret {s.secret_name}")


def secret_replaced(s: IdentityState) -> ReissueReason | None:
    """The Secret holds a certificate other than the one we issued last (edited by hand)."""
    if s.secret is None or s.secret.serial is None:
        return None
    if s.secret.spiffe_id != s.expected_spiffe_id:
        return ReissueReason(
            "SpiffeIDMismatch",
            f"Secret {s.secret_name} holds a certificate for another SPIFFE ID",
        )
    if s.secret.serial != s.stored_serial:
        return ReissueReason(
            "SecretAltered", f"Secret {s.secret_name} holds a certificate wio did not record"
        )
    if s.wants_token and not s.secret.has_token:
        return ReissueReason("DataMissing", f"Secret {s.secret_name} has no token")
    return None


def issuer_distrusted(s: IdentityState) -> ReissueReason | None:
    """The certificate chains to a CA that has left the trust bundle (distrusted)."""
    anchor = s.secret.anchor if s.secret is not None else None
    if anchor is not None and s.trusted_anchors and anchor not in s.trusted_anchors:
        return ReissueReason(
            ISSUER_NOT_TRUSTED,
            "the CA that signed the certificate is no longer in the trust bundle (key rollover)",
        )
    return None


def token_key_unpublished(s: IdentityState) -> ReissueReason | None:
    """The JWT-SVID was signed by a key that is no longer published (distrusted)."""
    if not s.wants_token or s.secret is None:
        return None
    return key_unpublished(s.secret.token_kid, s.published_kids)


def expired(s: IdentityState) -> ReissueReason | None:
    if s.not_after is not None and s.now >= s.not_after:
        return ReissueReason("Expired", "the certificate has expired")
    return None


def renewal_due(s: IdentityState) -> ReissueReason | None:
    if s.renewal_time is None or s.now >= s.renewal_time:
        return ReissueReason("RenewalDue", "the certificate reached its renewal time")
    return None


def token_renewal_due(s: IdentityState) -> ReissueReason | None:
    if s.wants_token and (s.token_renewal_time is None or s.now >= s.token_renewal_time):
        return ReissueReason("TokenRenewalDue", "the JWT-SVID reached its renewal time")
    return None


CHECKS: tuple[Check, ...] = (
    # An SRE's revocation comes before everything, even adoption.
    revoke_requested,
    # Then a credential written just before a crash is recorded, not replaced, whether the
    # crash came during the first issuance (status still empty) or a later one.
    secret_adoptable,
    not_issued,
    secret_moved,
    secret_missing,
    secret_damaged,
    secret_replaced,
    issuer_distrusted,
    token_key_unpublished,
    spec_changed,
    forced,
    expired,
    renewal_due,
    token_renewal_due,
)

# Reasons that need only a new JWT-SVID; everything else re-issues the whole credential.
TOKEN_ONLY = frozenset({"TokenRenewalDue", KEY_UNPUBLISHED})


def reissue_reason(
    state: IdentityState, checks: tuple[Check, ...] = CHECKS
) -> ReissueReason | None:
    for check in checks:
        reason = check(state)
        if reason is not None:
            return reason
    return None


def next_due(state: IdentityState) -> dt.datetime | None:
    """When to look again if nothing else happens: the earlier of the two renewal times."""
    times = [
        t
        for t in (state.renewal_time, state.token_renewal_time if state.wants_token else None)
        if t
    ]
    return min(times) if times else None


# Reasons that mean someone else changed or removed the Secret. Repairing them is right, but a
# competing writer (another controller, a GitOps tool) must not make wio re-mint forever.
DRIFT_REASONS = frozenset(
    {
        "SecretMissing",
        "SecretAltered",
        "SpiffeIDMismatch",
        "DataMissing",
        "Unparsable",
        "KeyMismatch",
    }
)
MAX_DRIFT_REPAIRS = 10
DRIFT_WINDOW = dt.timedelta(hours=1)


def drift_repairs_exhausted(
    repairs: Sequence[dt.datetime],
    now: dt.datetime,
    limit: int = MAX_DRIFT_REPAIRS,
    window: dt.timedelta = DRIFT_WINDOW,
) -> dt.datetime | None:
    """When ``limit`` repairs already happened within ``window``: the time repairs resume."""
    recent = sorted(t for t in repairs if now - t < window)
    if len(recent) < limit:
        return None
    return recent[-limit] + window
