# SPDX-License-Identifier: Apache-2.0
"""``wio verify``: is this SVID or JWT valid for the trust bundle wio publishes, and not revoked?

Three steps, only the middle one does I/O:

1. ``read_presented`` reads what the user handed in without trusting any of it: a PEM
   chain (only its CERTIFICATE blocks are kept) or a compact JWT. The SPIFFE ID it claims
   only chooses whose bundle to read: the namespace it names (``spiffe://td/ns/<ns>/…``).
2. ``fetch_trust`` reads that namespace's ``wio-trust-bundle`` ConfigMap: ``ca.crt``,
   ``jwks.json`` and ``revocations.json`` (``{"version": 2, "namespace", "expires": {kind:
   {id: epoch}}}``, ``wio.models.revocation.RevocationList.published_json``).
3. ``decide`` runs the operator's own verifiers (``wio.issuing.verify_x509`` and
   ``verify_jwt``) with that bundle and list, as a pure function of ``now``.

A published list counts only against credentials whose SPIFFE ID names its namespace (the
operator scopes revocations the same way, ARCHITECTURE.md §6), so a bundle read from another
namespace with ``--bundle-from`` checks the signature but not revocation, and says so.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from wio.clock import rfc3339
from wio.errors import (
    ApiNotFound,
    InvalidSpiffeID,
    JWTVerificationError,
    ValidationError,
    VerificationError,
)
from wio.issuing.jwt import parse_unverified
from wio.issuing.verify_jwt import JwtVerifier, TokenProfile
from wio.issuing.verify_x509 import SvidVerifier
from wio.k8s.client import configmap_path
from wio.models.revocation import PUBLISHED_VERSION
from wio.models.spiffe import SpiffeID, namespace_of
from wio.sre.objects import Kube

MAX_INPUT = 1024 * 1024  # a chain or a token is a few KiB; this is not one
_CERT_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----"
)
_JWS = re.compile(rb"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


@dataclass(frozen=True)
class Presented:
    """A credential handed to ``wio verify``, read but not trusted. ``claimed_id`` is the
    SPIFFE ID it claims, used only to choose the trust bundle."""

    form: str  # x509 | jwt
    material: bytes = field(repr=False)
    claimed_id: str | None
    header: Mapping[str, Any] = field(default_factory=dict)
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: The input held a private key too (a credential-bundle file): ignored, and said so.
    had_private_key: bool = False


def read_presented(raw: bytes) -> Presented:
    """A PEM certificate chain or a compact JWT; anything else is a usage error."""
    if len(raw) > MAX_INPUT:
        raise ValidationError("input", f"is {len(raw)} bytes; a certificate chain or JWT is less")
    text = raw.strip()
    if b"-----BEGIN CERTIFICATE-----" in text:
        material = b"\n".join(_CERT_BLOCK.findall(text)) + b"\n"
        return Presented(
            "x509",
            material,
            _claimed_uri(material),
            had_private_key=b"PRIVATE KEY-----" in text,
        )
    token = parse_unverified(text) if _JWS.fullmatch(text) else None
    if token is None:
        raise ValidationError("input", "is neither a PEM certificate chain nor a compact JWT")
    sub = token.claims.get("sub")
    return Presented("jwt", text, sub if isinstance(sub, str) else None, token.header, token.claims)


def _claimed_uri(pem: bytes) -> str | None:
    """The leaf's one URI SAN, unverified; None when there is not exactly one."""
    try:
        leaf = x509.load_pem_x509_certificates(pem)[0]
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, UnsupportedAlgorithm, x509.ExtensionNotFound):
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if len(uris) == 1 else None


def bundle_namespace(presented: Presented, override: str | None) -> str:
    """Whose trust bundle to read: ``--bundle-from``, else the namespace the ID names."""
    if override:
        return override
    namespace = namespace_of(presented.claimed_id)
    if namespace is None:
        claimed = presented.claimed_id or "no SPIFFE ID"
        raise ValidationError(
            "--bundle-from",
            f"the credential claims {claimed}, which names no namespace "
            "(spiffe://<td>/ns/<namespace>/sa/<sa>); pass --bundle-from NAMESPACE",
        )
    return namespace


@dataclass(frozen=True)
class TrustMaterial:
    """One namespace's published trust: roots, JWT keys and revocations."""

    namespace: str
    roots: tuple[x509.Certificate, ...]
    jwks: Mapping[str, Any]
    revoked: Mapping[str, frozenset[str]]  # kind -> revoked serials (hex) or jtis
    revocations_namespace: str
    truncated: bool

    @classmethod
    def from_configmap(cls, namespace: str, data: Mapping[str, str]) -> TrustMaterial:
        """Parse the ConfigMap's data; a missing or garbled key is a usage error naming it."""
        where = f"ConfigMap {namespace}/wio-trust-bundle"

        missing = [k for k in ("ca.crt", "jwks.json", "revocations.json") if not data.get(k)]
        if missing:
            raise ValidationError(where, f"has no {', '.join(missing)}")
        try:
            roots = tuple(x509.load_pem_x509_certificates(data["ca.crt"].encode()))
            jwks = json.loads(data["jwks.json"])
            listed = json.loads(data["revocations.json"])
        except (ValueError, UnsupportedAlgorithm) as err:
            raise ValidationError(where, f"is unreadable ({type(err).__name__})") from err
        if not isinstance(jwks, dict) or not isinstance(listed, dict):
            raise ValidationError(where, "jwks.json and revocations.json must be JSON objects")
        if listed.get("version") != PUBLISHED_VERSION:
            raise ValidationError(
                where, f"revocations.json is version {listed.get('version')!r}, not 2"
            )
        expires = listed.get("expires")
        if not isinstance(expires, dict):
            raise ValidationError(where, "revocations.json has no 'expires' map")
        revoked = {kind: frozenset(ids) for kind, ids in expires.items() if isinstance(ids, dict)}
        return cls(
            namespace=namespace,
            roots=roots,
            jwks=jwks,
            revoked=revoked,
            revocations_namespace=str(listed.get("namespace") or ""),
            truncated=listed.get("truncated") is True,
        )


async def fetch_trust(kube: Kube, namespace: str, configmap: str) -> TrustMaterial:
    """The namespace's trust ConfigMap (``get`` on configmaps there, the SRE's own RBAC)."""
    try:
        body = await kube.get(configmap_path(namespace, configmap))
    except ApiNotFound as err:
        raise ValidationError(
            "--bundle-from",
            f"no ConfigMap {configmap} in namespace {namespace} (wio publishes it in every "
            "namespace with identities)",
        ) from err
    return TrustMaterial.from_configmap(namespace, body.get("data") or {})


@dataclass(frozen=True)
class Verdict:
    """Valid, or invalid with the verifier's stable reason; ``facts`` are IDs and times."""

    valid: bool
    form: str  # x509-svid | jwt-svid | access-token
    reason: str
    message: str
    facts: Mapping[str, Any]
    notes: tuple[str, ...]

    def to_record(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "kind": self.form,
            "reason": self.reason,
            "message": self.message,
            **self.facts,
            "notes": list(self.notes),
        }


def decide(
    presented: Presented,
    trust: TrustMaterial,
    now: dt.datetime,
    *,
    audience: str | None = None,
    trust_domain: str | None = None,
    issuer: str | None = None,
) -> Verdict:
    """Verify ``presented`` against ``trust`` at ``now``. ``trust_domain`` and ``issuer`` pin
    what is otherwise taken from the credential itself (which only the signature then
    vouches for); ``audience`` is checked when given."""
    notes: list[str] = []
    if presented.had_private_key:
        notes.append("the input also held a private key; it was ignored")
    claimed_namespace = namespace_of(presented.claimed_id)
    checks_revocation = claimed_namespace == trust.revocations_namespace
    if not checks_revocation:
        notes.append(
            f"revocation not checked: the list of namespace {trust.revocations_namespace} "
            f"covers only SPIFFE IDs of that namespace, not {claimed_namespace or 'this one'}"
        )
    elif trust.truncated:
        notes.append("the published revocation list is truncated; ask introspection to be sure")
    form = "x509-svid"
    if presented.form == "jwt":
        typ = presented.header.get("typ")
        access = isinstance(typ, str) and typ.casefold() in _ACCESS_TOKEN_TYPES
        form = "access-token" if access else "jwt-svid"
    domain = trust_domain or _trust_domain_of(presented.claimed_id)
    if domain is None:
        message = "the credential carries no valid SPIFFE ID"
        return Verdict(False, form, "invalid-spiffe-id", message, {}, tuple(notes))
    revoked = trust.revoked if checks_revocation else {}
    try:
        if presented.form == "x509":
            facts = _verify_x509(presented, trust, now, domain, revoked.get("x509", frozenset()))
        else:
            kind = "token" if form == "access-token" else "jwt"
            revoked_jtis = revoked.get(kind, frozenset())
            facts = _verify_jwt(
                presented, trust, now, form, domain, revoked_jtis, audience, issuer, notes
            )
    except VerificationError as err:
        message = str(err).removeprefix(f"{err.reason}: ")
        return Verdict(False, form, err.reason, message, {}, tuple(notes))
    message = "chains to a published root or key, and is not revoked"
    return Verdict(True, form, "valid", message, facts, tuple(notes))


def _verify_x509(
    presented: Presented,
    trust: TrustMaterial,
    now: dt.datetime,
    domain: str,
    revoked_serials: frozenset[str],
) -> dict[str, Any]:
    """An X.509-SVID through ``SvidVerifier``; raises ``SVIDVerificationError``."""
    svid = SvidVerifier(trust.roots, domain).verify(presented.material, now, revoked_serials)
    return {
        "spiffeID": str(svid.spiffe_id),
        "serial": svid.serial_hex,
        "notAfter": rfc3339(svid.not_after),
        # The verified path runs up to the trusted root, which the Secret does not carry.
        "pathLength": len(svid.path),
    }


def _verify_jwt(
    presented: Presented,
    trust: TrustMaterial,
    now: dt.datetime,
    form: str,
    domain: str,
    revoked_jtis: frozenset[str],
    audience: str | None,
    issuer: str | None,
    notes: list[str],
) -> dict[str, Any]:
    """A JWT-SVID or access token through ``JwtVerifier``; raises ``JWTVerificationError``.
    Without ``audience`` (or an access token's ``issuer``) the token's own is used and a note
    says so: the question is then only whether wio's keys signed it and it is not revoked."""
    claims = presented.claims
    access = form == "access-token"
    if audience is None:
        aud = claims.get("aud")
        first = aud[0] if isinstance(aud, list) and aud else aud
        audience = first if isinstance(first, str) and first else None
        notes.append("audience not checked (pass --audience to check it)")
    if access and issuer is None:
        iss = claims.get("iss")
        issuer = iss if isinstance(iss, str) and iss else None
        notes.append("issuer taken from the token (pass --issuer to pin it)")
    for name, value in (("aud", audience), ("iss", issuer if access else "-")):
        if not value:
            raise JWTVerificationError("missing-claim", f"{name} is required")
    verifier = JwtVerifier.from_jwks(
        trust.jwks,
        audience=audience,
        issuer=issuer,
        profile=TokenProfile.ACCESS_TOKEN if access else TokenProfile.JWT_SVID,
        trust_domain=domain,
        revoked_jtis=revoked_jtis,
    )
    verified = verifier.verify(presented.material.decode("ascii"), now)
    return {
        "spiffeID": verified.subject,
        "jti": verified.jti,
        "expiresAt": rfc3339(verified.expires_at),
        "kid": verified.kid,
        "audience": audience,
    }


def _trust_domain_of(spiffe_id: str | None) -> str | None:
    if spiffe_id is None:
        return None
    try:
        return SpiffeID.parse(spiffe_id).trust_domain.name
    except InvalidSpiffeID:
        return None
