# SPDX-License-Identifier: Apache-2.0
"""The specs of WorkloadIdentity, ScopedCredential and IdentityPolicy, parsed and validated.

Each ``parse`` turns the ``spec`` dict of a custom resource (as the API server returns it)
into frozen values with every default applied, and each value validates itself on
construction. The API server validates first (OpenAPI schema and CEL rules in ``crds/``), so
in a healthy cluster nothing here fires; it is here because the operator must never act on,
or crash on, an object that slipped past admission (an older CRD, a schema edited by hand, a
test). A refusal is a ``ValidationError`` whose ``field`` is the full path, such as
``spec.x509.ttl`` or ``spec.token.scopes[2]``, and whose message says what is wrong.

Limits mirror the CRDs (see the constants below) so that what admission accepts parses here.
Unknown fields are refused rather than ignored: a field we do not understand may be a
restriction the author expects us to honour.

In an ``IdentityPolicy`` a grant left unset is ``None``, meaning "this policy says nothing
about it" (the built-in defaults decide that field), which is different from an empty tuple,
meaning "grants none".
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from wio.errors import ValidationError
from wio.models.claims import RESERVED_CLAIMS
from wio.models.dns import check_dns_name
from wio.models.duration import format_duration, parse_duration
from wio.models.keytypes import KeyType

# --- limits, as in crds/*.yaml ----------------------------------------------------------------

#: The shortest lifetime any credential may ask for; below it, rotation at half-life would
#: spend more time signing and writing than the credential spends being valid.
MIN_TTL = timedelta(seconds=10)
#: Longest X.509-SVID the API accepts (30 days); IdentityPolicies usually allow far less.
MAX_X509_TTL = timedelta(hours=720)
#: Longest JWT-SVID or access token the API accepts: bearer tokens must stay short.
MAX_JWT_TTL = timedelta(hours=24)
MAX_TOKEN_TTL = timedelta(hours=24)

DEFAULT_X509_TTL = timedelta(hours=1)
DEFAULT_JWT_TTL = timedelta(minutes=30)
DEFAULT_TOKEN_TTL = timedelta(minutes=15)
DEFAULT_KEY_TYPE = KeyType.ECDSAP256
DEFAULT_SIGNER = "default"

MAX_DNS_NAMES = 16
MAX_AUDIENCES = 8
MAX_AUDIENCE_CHARS = 256
MAX_SCOPES = 32
MAX_SCOPE_CHARS = 128
MAX_CLAIMS = 16
MAX_CLAIM_NAME_CHARS = 64
MAX_CLAIM_VALUE_CHARS = 256
MAX_VAULT_PATH_CHARS = 256
MAX_NAME_CHARS = 253  # a DNS-1123 subdomain: object names, Secret names
MAX_LABEL_NAME_CHARS = 63
#: Patterns, selector terms and grants per list in an IdentityPolicy. Policies are written by
#: admins, so this only stops a runaway object from making every evaluation slow.
MAX_POLICY_ITEMS = 256

# Default Secret names are <metadata.name><suffix>; names, not secrets. A stored format: a
# changed suffix would orphan every Secret already written under the old one.
IDENTITY_SECRET_SUFFIX = "-identity"  # noqa: S105
CREDENTIAL_SECRET_SUFFIX = "-credential"  # noqa: S105
SPEC_HASH_CHARS = 16  # 64 bits of SHA-256: collisions between two specs of one object are moot

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SCOPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")
_CLAIM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_VAULT_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SA_PATTERN = re.compile(r"[a-z0-9.*?-]+")
_SHOWN = 64  # characters of a refused value echoed back; enough to recognise it
# Scope prefixes that conventionally mean "everything"; refused as `prefix:*` grants, as the CRD
# does, so that no single grant line reads as "all".
_GRANT_ALL_PREFIXES = frozenset({"admin", "root", "all"})


def is_dns1123_label(value: object) -> bool:
    """True for a DNS-1123 label (``payments``): namespace and signer names."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_LABEL_NAME_CHARS
        and _DNS1123_LABEL.fullmatch(value) is not None
    )


def is_dns1123_subdomain(value: object) -> bool:
    """True for a DNS-1123 subdomain (``payments.v2``): object, Secret and account names."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_NAME_CHARS
        and _DNS1123_SUBDOMAIN.fullmatch(value) is not None
    )


def _shown(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


# --- checks shared by the dataclasses ---------------------------------------------------------


def _check_name(value: object, where: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(where, f"must be a non-empty string ({what})")
    if not is_dns1123_subdomain(value):
        raise ValidationError(
            where,
            f"{_shown(value)} is not a valid {what}: use at most {MAX_NAME_CHARS} lower-case "
            "letters, digits, '-' and '.', starting and ending with a letter or digit",
        )
    return value


def _check_label(value: object, where: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(where, f"must be a non-empty string ({what})")
    if not is_dns1123_label(value):
        raise ValidationError(
            where,
            f"{_shown(value)} is not a valid {what}: use at most {MAX_LABEL_NAME_CHARS} "
            "lower-case letters, digits and '-', starting and ending with a letter or digit",
        )
    return value


def _check_ttl(value: object, where: str, *, maximum: timedelta | None) -> timedelta:
    """A lifetime: whole seconds, positive, and with a ``maximum`` also within the API's range.

    ``maximum=None`` is for policy bounds, which may be any positive duration.
    """
    if not isinstance(value, timedelta):
        raise ValidationError(where, f"must be a duration, got {type(value).__name__}")
    if value <= timedelta(0):
        raise ValidationError(where, "must be positive")
    if value.microseconds:
        raise ValidationError(where, "must be a whole number of seconds")
    if maximum is None:
        return value
    if value < MIN_TTL:
        raise ValidationError(
            where,
            f"{format_duration(value)} is below the shortest lifetime wio issues, "
            f"{format_duration(MIN_TTL)}",
        )
    if value > maximum:
        raise ValidationError(
            where,
            f"{format_duration(value)} exceeds the longest lifetime wio issues here, "
            f"{format_duration(maximum)}",
        )
    return value


def _as_tuple(value: object, where: str, *, limit: int) -> tuple[Any, ...]:
    """A list or tuple as a tuple; a bare string is refused (it would iterate characters)."""
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise ValidationError(where, f"must be a list, got {type(value).__name__}")
    if len(value) > limit:
        raise ValidationError(where, f"has {len(value)} items; at most {limit} are allowed")
    return tuple(value)


def _no_duplicates(items: Iterable[object], where: str) -> None:
    seen: set[object] = set()
    for index, item in enumerate(items):
        if item in seen:
            raise ValidationError(f"{where}[{index}]", f"{_shown(item)} is listed twice")
        seen.add(item)


def _check_token_text(value: object, where: str, what: str, limit: int) -> str:
    """Audience-like text: 1 to ``limit`` characters, no whitespace or control characters."""
    if not isinstance(value, str) or not value:
        raise ValidationError(where, f"must be a non-empty string ({what})")
    if len(value) > limit:
        raise ValidationError(where, f"{what} is {len(value)} characters; at most {limit}")
    for char in value:
        # Z* separators and C* control/format characters: invisible, or splits a header.
        if char.isspace() or unicodedata.category(char)[0] in ("Z", "C"):
            raise ValidationError(
                where, f"{what} {_shown(value)} must not contain whitespace or control characters"
            )
    return value


def _check_scope(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(where, "must be a non-empty string (a scope)")
    if "*" in value:
        raise ValidationError(
            where,
            f"scope {_shown(value)} contains a wildcard: ask for concrete scopes only; "
            "wildcards belong in IdentityPolicy grants",
        )
    if len(value) > MAX_SCOPE_CHARS or not _SCOPE.fullmatch(value):
        raise ValidationError(
            where,
            f"{_shown(value)} is not a valid scope: 1 to {MAX_SCOPE_CHARS} letters, digits and "
            "_ . : / -, starting with a letter or digit",
        )
    return value


def _check_claim_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(where, "claim names must be non-empty strings")
    if len(value) > MAX_CLAIM_NAME_CHARS or not _CLAIM_NAME.fullmatch(value):
        raise ValidationError(
            where,
            f"claim name {_shown(value)} is not allowed: use 1 to {MAX_CLAIM_NAME_CHARS} "
            "letters, digits, _ . -, starting with a letter or _",
        )
    # Lower-case as the CRD's lowerAscii() does; a resource server that folds case must not
    # be handed a second `scope` or `roles`.
    if value.lower() in RESERVED_CLAIMS:
        raise ValidationError(
            where,
            f"claim {_shown(value)} is a registered claim name that the operator sets or "
            "resource servers authorise on; choose another name",
        )
    return value


def _check_vault_path(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(where, "must be a non-empty string (a Vault path)")
    if len(value) > MAX_VAULT_PATH_CHARS:
        raise ValidationError(
            where, f"path is {len(value)} characters; at most {MAX_VAULT_PATH_CHARS}"
        )
    if value.startswith("/"):
        raise ValidationError(where, f"vault path {_shown(value)} must be relative")
    if any(segment in (".", "..") for segment in value.split("/")):
        raise ValidationError(
            where, f"vault path {_shown(value)} must not contain a '.' or '..' segment"
        )
    if not _VAULT_PATH.fullmatch(value):
        raise ValidationError(
            where,
            f"{_shown(value)} is not a valid path: letters, digits and _ . - in segments "
            "separated by single '/', starting with a letter or digit, not ending with '/'",
        )
    return value


def _spec_hash(document: Mapping[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:SPEC_HASH_CHARS]


# --- parsing helpers (dict -> values) ---------------------------------------------------------


def _object(value: object, where: str, allowed: Iterable[str]) -> Mapping[str, Any]:
    """``value`` as a mapping with only ``allowed`` keys; ``None`` (absent) is ``{}``.

    Keys whose value is ``None`` are dropped: for the API server an explicit ``null`` of a
    non-nullable field is the field's absence.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(where, f"must be an object, got {type(value).__name__}")
    known = tuple(allowed)
    for key in value:
        if not isinstance(key, str):
            raise ValidationError(where, f"field names must be strings, got {_shown(key)}")
        if key not in known:
            raise ValidationError(
                f"{where}.{key}", f"unknown field; known fields are {', '.join(known)}"
            )
    return {key: item for key, item in value.items() if item is not None}


def _string(doc: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if value is None:
        raise ValidationError(f"{where}.{key}", "is required")
    return _text(value, f"{where}.{key}")


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(where, f"must be a string, got {type(value).__name__}")
    return value


def _duration(doc: Mapping[str, Any], key: str, where: str) -> timedelta | None:
    value = doc.get(key)
    return None if value is None else parse_duration(value, field=f"{where}.{key}")


def _string_tuple(value: object, where: str, *, limit: int) -> tuple[str, ...]:
    items = _as_tuple(value, where, limit=limit)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise ValidationError(
                f"{where}[{index}]", f"must be a string, got {type(item).__name__}"
            )
    return items


def _optional_strings(doc: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = doc.get(key)
    if value is None:
        return None
    return _string_tuple(value, f"{where}.{key}", limit=MAX_POLICY_ITEMS)


def default_identity_secret_name(name: str) -> str:
    """The Secret the WorkloadIdentity ``name`` writes to when ``spec.secretName`` is unset."""
    return f"{name}{IDENTITY_SECRET_SUFFIX}"


def default_credential_secret_name(name: str) -> str:
    """The Secret the ScopedCredential ``name`` writes to when ``spec.secretName`` is unset."""
    return f"{name}{CREDENTIAL_SECRET_SUFFIX}"


def _default_secret_name(default_for: Callable[[str], str], name: object, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationError("metadata.name", "must be a non-empty string")
    default = default_for(name)
    if not is_dns1123_subdomain(default):
        raise ValidationError(
            where,
            f"is not set and the default {_shown(default)} is not a valid Secret name "
            f"(at most {MAX_NAME_CHARS} characters); set {where}",
        )
    return default


# --- WorkloadIdentity -------------------------------------------------------------------------


@dataclass(frozen=True)
class X509Spec:
    """``spec.x509``: the X.509-SVID's lifetime, key type and extra DNS SANs."""

    ttl: timedelta = DEFAULT_X509_TTL
    key_type: KeyType = DEFAULT_KEY_TYPE
    dns_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_ttl(self.ttl, "spec.x509.ttl", maximum=MAX_X509_TTL)
        if not isinstance(self.key_type, KeyType):
            raise ValidationError("spec.x509.keyType", "must be a KeyType")
        names = _as_tuple(self.dns_names, "spec.x509.dnsNames", limit=MAX_DNS_NAMES)
        for index, name in enumerate(names):
            check_dns_name(name, field=f"spec.x509.dnsNames[{index}]")
        _no_duplicates(names, "spec.x509.dnsNames")
        object.__setattr__(self, "dns_names", names)

    @classmethod
    def parse(cls, value: object) -> X509Spec:
        doc = _object(value, "spec.x509", ("ttl", "keyType", "dnsNames"))
        ttl = _duration(doc, "ttl", "spec.x509")
        key_type = _string(doc, "keyType", "spec.x509", DEFAULT_KEY_TYPE.value)
        return cls(
            ttl=DEFAULT_X509_TTL if ttl is None else ttl,
            key_type=KeyType.parse(key_type, field="spec.x509.keyType"),
            dns_names=_string_tuple(
                doc.get("dnsNames", ()), "spec.x509.dnsNames", limit=MAX_DNS_NAMES
            ),
        )


@dataclass(frozen=True)
class JwtSpec:
    """``spec.jwt``: the JWT-SVID's audiences and lifetime."""

    audiences: tuple[str, ...]
    ttl: timedelta = DEFAULT_JWT_TTL

    def __post_init__(self) -> None:
        audiences = _as_tuple(self.audiences, "spec.jwt.audiences", limit=MAX_AUDIENCES)
        if not audiences:
            raise ValidationError("spec.jwt.audiences", "at least one audience is required")
        for index, audience in enumerate(audiences):
            _check_token_text(
                audience, f"spec.jwt.audiences[{index}]", "audience", MAX_AUDIENCE_CHARS
            )
        _no_duplicates(audiences, "spec.jwt.audiences")
        object.__setattr__(self, "audiences", audiences)
        _check_ttl(self.ttl, "spec.jwt.ttl", maximum=MAX_JWT_TTL)

    @classmethod
    def parse(cls, value: object) -> JwtSpec:
        doc = _object(value, "spec.jwt", ("audiences", "ttl"))
        if "audiences" not in doc:
            raise ValidationError("spec.jwt.audiences", "is required when spec.jwt is set")
        ttl = _duration(doc, "ttl", "spec.jwt")
        return cls(
            audiences=_string_tuple(doc["audiences"], "spec.jwt.audiences", limit=MAX_AUDIENCES),
            ttl=DEFAULT_JWT_TTL if ttl is None else ttl,
        )


@dataclass(frozen=True, kw_only=True)
class WorkloadIdentitySpec:
    """A WorkloadIdentity's ``spec`` with every default applied."""

    service_account: str
    x509: X509Spec = field(default_factory=X509Spec)
    jwt: JwtSpec | None = None
    secret_name: str
    signer: str = DEFAULT_SIGNER

    def __post_init__(self) -> None:
        _check_name(self.service_account, "spec.serviceAccountName", "service account name")
        if not isinstance(self.x509, X509Spec):
            raise ValidationError("spec.x509", "must be an X509Spec")
        if self.jwt is not None and not isinstance(self.jwt, JwtSpec):
            raise ValidationError("spec.jwt", "must be a JwtSpec or None")
        _check_name(self.secret_name, "spec.secretName", "Secret name")
        _check_label(self.signer, "spec.signer", "signer name")

    @classmethod
    def parse(cls, name: str, spec: Mapping[str, Any]) -> WorkloadIdentitySpec:
        """Build from ``metadata.name`` and the object's ``spec``; defaults as in the CRD."""
        doc = _object(spec, "spec", ("serviceAccountName", "x509", "jwt", "secretName", "signer"))
        secret_name = doc.get("secretName")
        if secret_name is None:
            secret_name = _default_secret_name(
                default_identity_secret_name, name, "spec.secretName"
            )
        jwt = doc.get("jwt")
        return cls(
            service_account=_string(doc, "serviceAccountName", "spec"),
            x509=X509Spec.parse(doc.get("x509")),
            jwt=None if jwt is None else JwtSpec.parse(jwt),
            secret_name=_text(secret_name, "spec.secretName"),
            signer=_string(doc, "signer", "spec", DEFAULT_SIGNER),
        )

    def spec_hash(self) -> str:
        """A short hex hash of exactly what shapes the minted credential.

        ``secretName`` is left out: moving the Secret is not a reason to mint. Lists are
        sorted because the API treats them as sets, so reordering them must not rotate.
        """
        jwt = self.jwt
        return _spec_hash(
            {
                "kind": "WorkloadIdentity",
                "serviceAccountName": self.service_account,
                "x509": {
                    "ttl": int(self.x509.ttl.total_seconds()),
                    "keyType": self.x509.key_type.value,
                    "dnsNames": sorted(self.x509.dns_names),
                },
                "jwt": None
                if jwt is None
                else {"audiences": sorted(jwt.audiences), "ttl": int(jwt.ttl.total_seconds())},
                "signer": self.signer,
            }
        )


# --- ScopedCredential -------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSpec:
    """``spec.token``: an RFC 9068 access token's audience, scopes, lifetime and extra claims."""

    audience: str
    scopes: tuple[str, ...]
    ttl: timedelta = DEFAULT_TOKEN_TTL
    # A read-only mapping is unhashable, so it stays out of the hash (equality still uses it).
    claims: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _check_token_text(self.audience, "spec.token.audience", "audience", MAX_AUDIENCE_CHARS)
        scopes = _as_tuple(self.scopes, "spec.token.scopes", limit=MAX_SCOPES)
        if not scopes:
            raise ValidationError("spec.token.scopes", "at least one scope is required")
        for index, scope in enumerate(scopes):
            _check_scope(scope, f"spec.token.scopes[{index}]")
        _no_duplicates(scopes, "spec.token.scopes")
        object.__setattr__(self, "scopes", scopes)
        _check_ttl(self.ttl, "spec.token.ttl", maximum=MAX_TOKEN_TTL)
        if not isinstance(self.claims, Mapping):
            raise ValidationError("spec.token.claims", "must be an object of strings")
        if len(self.claims) > MAX_CLAIMS:
            raise ValidationError(
                "spec.token.claims", f"has {len(self.claims)} claims; at most {MAX_CLAIMS}"
            )
        for name, claim in self.claims.items():
            where = f"spec.token.claims.{name}" if isinstance(name, str) else "spec.token.claims"
            _check_claim_name(name, where)
            if not isinstance(claim, str):
                raise ValidationError(where, f"must be a string, got {type(claim).__name__}")
            if len(claim) > MAX_CLAIM_VALUE_CHARS:
                # Never echo the value: claims may carry tenant data.
                raise ValidationError(
                    where, f"value is {len(claim)} characters; at most {MAX_CLAIM_VALUE_CHARS}"
                )
        object.__setattr__(self, "claims", MappingProxyType(dict(self.claims)))

    @classmethod
    def parse(cls, value: object) -> TokenSpec:
        doc = _object(value, "spec.token", ("audience", "scopes", "ttl", "claims"))
        if "scopes" not in doc:
            raise ValidationError("spec.token.scopes", "is required")
        ttl = _duration(doc, "ttl", "spec.token")
        claims = doc.get("claims", {})
        if not isinstance(claims, Mapping):
            raise ValidationError(
                "spec.token.claims", f"must be an object, got {type(claims).__name__}"
            )
        return cls(
            audience=_string(doc, "audience", "spec.token"),
            scopes=_string_tuple(doc["scopes"], "spec.token.scopes", limit=MAX_SCOPES),
            ttl=DEFAULT_TOKEN_TTL if ttl is None else ttl,
            claims=claims,
        )


@dataclass(frozen=True)
class VaultSpec:
    """``spec.vault``: the Vault/OpenBao path of a dynamic secret, relative to the address."""

    path: str

    def __post_init__(self) -> None:
        _check_vault_path(self.path, "spec.vault.path")

    @classmethod
    def parse(cls, value: object) -> VaultSpec:
        doc = _object(value, "spec.vault", ("path",))
        return cls(path=_string(doc, "path", "spec.vault"))


@dataclass(frozen=True, kw_only=True)
class ScopedCredentialSpec:
    """A ScopedCredential's ``spec``: its identity, exactly one source, and its Secret."""

    identity_ref: str
    token: TokenSpec | None = None
    vault: VaultSpec | None = None
    secret_name: str

    def __post_init__(self) -> None:
        _check_name(self.identity_ref, "spec.identityRef", "WorkloadIdentity name")
        if self.token is not None and not isinstance(self.token, TokenSpec):
            raise ValidationError("spec.token", "must be a TokenSpec or None")
        if self.vault is not None and not isinstance(self.vault, VaultSpec):
            raise ValidationError("spec.vault", "must be a VaultSpec or None")
        if (self.token is None) == (self.vault is None):
            got = "neither" if self.token is None else "both"
            raise ValidationError(
                "spec", f"exactly one of spec.token or spec.vault must be set, got {got}"
            )
        _check_name(self.secret_name, "spec.secretName", "Secret name")

    @classmethod
    def parse(cls, name: str, spec: Mapping[str, Any]) -> ScopedCredentialSpec:
        """Build from ``metadata.name`` and the object's ``spec``; defaults as in the CRD."""
        doc = _object(spec, "spec", ("identityRef", "token", "vault", "secretName"))
        secret_name = doc.get("secretName")
        if secret_name is None:
            secret_name = _default_secret_name(
                default_credential_secret_name, name, "spec.secretName"
            )
        token, vault = doc.get("token"), doc.get("vault")
        return cls(
            identity_ref=_string(doc, "identityRef", "spec"),
            token=None if token is None else TokenSpec.parse(token),
            vault=None if vault is None else VaultSpec.parse(vault),
            secret_name=_text(secret_name, "spec.secretName"),
        )

    def spec_hash(self) -> str:
        """A short hex hash of what shapes the credential; ``secretName`` is left out."""
        token = self.token
        return _spec_hash(
            {
                "kind": "ScopedCredential",
                "identityRef": self.identity_ref,
                "token": None
                if token is None
                else {
                    "audience": token.audience,
                    "scopes": sorted(token.scopes),
                    "ttl": int(token.ttl.total_seconds()),
                    "claims": dict(token.claims),
                },
                "vault": None if self.vault is None else {"path": self.vault.path},
            }
        )


# --- label selectors --------------------------------------------------------------------------

_SELECTOR = "spec.namespaceSelector"


class SelectorOperator(enum.StrEnum):
    """The operators of a Kubernetes ``LabelSelectorRequirement``."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


def _check_label_key(key: object, where: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValidationError(where, "label keys must be non-empty strings")
    prefix, slash, name = key.rpartition("/")
    if slash and not is_dns1123_subdomain(prefix):
        raise ValidationError(
            where, f"label key {_shown(key)} has an invalid prefix (a DNS subdomain)"
        )
    if len(name) > MAX_LABEL_NAME_CHARS or not _LABEL_NAME.fullmatch(name):
        raise ValidationError(
            where,
            f"label key {_shown(key)} is invalid: a name of at most 63 letters, digits, "
            "'-', '_' and '.', starting and ending with a letter or digit, optionally "
            "after a DNS-subdomain prefix and '/'",
        )
    return key


def _check_label_value(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(where, f"label values must be strings, got {type(value).__name__}")
    if value and (len(value) > MAX_LABEL_NAME_CHARS or not _LABEL_NAME.fullmatch(value)):
        raise ValidationError(
            where,
            f"label value {_shown(value)} is invalid: at most 63 letters, digits, '-', '_' "
            "and '.', starting and ending with a letter or digit",
        )
    return value


def _check_requirement(
    key: object, operator: object, values: object, where: str
) -> tuple[str, ...]:
    """Validate one requirement; returns its values as a tuple."""
    _check_label_key(key, f"{where}.key")
    if not isinstance(operator, SelectorOperator):
        raise ValidationError(f"{where}.operator", "must be a SelectorOperator")
    items = _as_tuple(values, f"{where}.values", limit=MAX_POLICY_ITEMS)
    for index, item in enumerate(items):
        _check_label_value(item, f"{where}.values[{index}]")
    if operator in (SelectorOperator.IN, SelectorOperator.NOT_IN) and not items:
        raise ValidationError(f"{where}.values", f"must not be empty for operator {operator}")
    if operator in (SelectorOperator.EXISTS, SelectorOperator.DOES_NOT_EXIST) and items:
        raise ValidationError(f"{where}.values", f"must be empty for operator {operator}")
    return items


@dataclass(frozen=True)
class LabelSelectorRequirement:
    """One ``matchExpressions`` term: ``key`` ``operator`` ``values``."""

    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        values = _check_requirement(
            self.key, self.operator, self.values, f"{_SELECTOR}.matchExpressions"
        )
        object.__setattr__(self, "values", values)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes semantics; ``NotIn`` also matches when the key is absent."""
        match self.operator:
            case SelectorOperator.IN:
                return self.key in labels and labels[self.key] in self.values
            case SelectorOperator.NOT_IN:
                return self.key not in labels or labels[self.key] not in self.values
            case SelectorOperator.EXISTS:
                return self.key in labels
            case SelectorOperator.DOES_NOT_EXIST:
                return self.key not in labels


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector; the empty selector (``{}``) selects everything."""

    match_labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.match_labels, Mapping):
            raise ValidationError(f"{_SELECTOR}.matchLabels", "must be an object of strings")
        if len(self.match_labels) > MAX_POLICY_ITEMS:
            raise ValidationError(
                f"{_SELECTOR}.matchLabels", f"at most {MAX_POLICY_ITEMS} labels are allowed"
            )
        for key, value in self.match_labels.items():
            where = f"{_SELECTOR}.matchLabels.{key}"
            _check_label_key(key, where)
            _check_label_value(value, where)
        object.__setattr__(self, "match_labels", MappingProxyType(dict(self.match_labels)))
        terms = _as_tuple(
            self.match_expressions, f"{_SELECTOR}.matchExpressions", limit=MAX_POLICY_ITEMS
        )
        for index, term in enumerate(terms):
            if not isinstance(term, LabelSelectorRequirement):
                raise ValidationError(
                    f"{_SELECTOR}.matchExpressions[{index}]", "must be a LabelSelectorRequirement"
                )
        object.__setattr__(self, "match_expressions", terms)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when every ``matchLabels`` pair and every expression holds for ``labels``."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            term.matches(labels) for term in self.match_expressions
        )

    @classmethod
    def parse(cls, value: object) -> LabelSelector:
        if value is None:
            # Not "everything": a policy that forgot its selector must not grant cluster-wide.
            raise ValidationError(_SELECTOR, "is required; use {} to select every namespace")
        doc = _object(value, _SELECTOR, ("matchLabels", "matchExpressions"))
        labels = doc.get("matchLabels", {})
        if not isinstance(labels, Mapping):
            raise ValidationError(
                f"{_SELECTOR}.matchLabels", f"must be an object, got {type(labels).__name__}"
            )
        raw_terms = _as_tuple(
            doc.get("matchExpressions", ()),
            f"{_SELECTOR}.matchExpressions",
            limit=MAX_POLICY_ITEMS,
        )
        terms = []
        for index, raw in enumerate(raw_terms):
            where = f"{_SELECTOR}.matchExpressions[{index}]"
            term = _object(raw, where, ("key", "operator", "values"))
            operator_name = _string(term, "operator", where)
            try:
                operator = SelectorOperator(operator_name)
            except ValueError:
                allowed = ", ".join(op.value for op in SelectorOperator)
                raise ValidationError(
                    f"{where}.operator",
                    f"unknown operator {_shown(operator_name)}; allowed: {allowed}",
                ) from None
            key = _string(term, "key", where)
            values = term.get("values", ())
            # Validate with the exact path first; the constructor can only name the list.
            _check_requirement(key, operator, values, where)
            terms.append(LabelSelectorRequirement(key, operator, tuple(values)))
        return cls(match_labels=labels, match_expressions=tuple(terms))


# --- IdentityPolicy ---------------------------------------------------------------------------


def _check_bounds(minimum: timedelta | None, maximum: timedelta | None, where: str) -> None:
    if minimum is not None:
        _check_ttl(minimum, f"{where}.minTTL", maximum=None)
    if maximum is not None:
        _check_ttl(maximum, f"{where}.maxTTL", maximum=None)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ValidationError(
            f"{where}.minTTL",
            f"{format_duration(minimum)} exceeds maxTTL {format_duration(maximum)}",
        )


def _optional_items(value: tuple[Any, ...] | None, where: str) -> tuple[Any, ...] | None:
    return None if value is None else _as_tuple(value, where, limit=MAX_POLICY_ITEMS)


def check_scope_grant(value: object, where: str) -> str:
    """A scope grant: an exact scope, or ``prefix:*`` for any scope starting ``prefix:``.

    A bare ``*`` is refused: least privilege means no single line grants every scope.
    """
    if not isinstance(value, str) or not value:
        raise ValidationError(where, "must be a non-empty string (a scope grant)")
    if value == "*":
        raise ValidationError(
            where,
            "a bare '*' would grant every scope; grant exact scopes or 'prefix:*' patterns",
        )
    if "*" in value:
        prefix = value[:-2]
        if not value.endswith(":*") or "*" in prefix or not _SCOPE.fullmatch(prefix):
            raise ValidationError(
                where,
                f"scope grant {_shown(value)} has a misplaced wildcard: use an exact scope or "
                "'prefix:*' (a valid scope, then ':*')",
            )
        if prefix.lower() in _GRANT_ALL_PREFIXES:
            raise ValidationError(
                where, f"scope grant {_shown(value)} is a grant-all pattern and is not allowed"
            )
        return value
    return _check_scope(value, where)


def check_vault_path_grant(value: object, where: str) -> str:
    """A Vault path grant: an exact path, or a prefix ending in ``*`` (``database/creds/app-*``).

    A bare ``*`` is refused for the same reason as for scopes.
    """
    if not isinstance(value, str) or not value:
        raise ValidationError(where, "must be a non-empty string (a Vault path grant)")
    if value == "*":
        raise ValidationError(
            where, "a bare '*' would grant every Vault path; grant paths or 'prefix*' patterns"
        )
    if "*" in value:
        prefix = value[:-1]
        if not value.endswith("*") or "*" in prefix:
            raise ValidationError(
                where, f"path grant {_shown(value)} may only end in '*', not contain one"
            )
        # "database/creds/" is a whole-segment prefix; "database/creds/app-" a partial one.
        _check_vault_path(prefix.removesuffix("/"), where)
        return value
    return _check_vault_path(value, where)


def check_dns_grant(value: object, where: str) -> str:
    """A DNS grant: an exact name, or ``*.suffix`` granting names exactly one label longer."""
    if not isinstance(value, str):
        raise ValidationError(where, f"must be a string, got {type(value).__name__}")
    check_dns_name(value, field=where)
    return value


def _check_sa_pattern(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(where, "must be a non-empty string (a service account pattern)")
    if len(value) > MAX_NAME_CHARS or not _SA_PATTERN.fullmatch(value):
        raise ValidationError(
            where,
            f"{_shown(value)} is not a service account pattern: lower-case letters, digits, "
            "'-', '.', and the wildcards '*' (any run) and '?' (one character)",
        )
    return value


@dataclass(frozen=True)
class X509Grant:
    """``spec.x509`` of a policy; ``None`` leaves the field to the built-in defaults."""

    min_ttl: timedelta | None = None
    max_ttl: timedelta | None = None
    key_types: tuple[KeyType, ...] | None = None
    dns_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_bounds(self.min_ttl, self.max_ttl, "spec.x509")
        key_types = _optional_items(self.key_types, "spec.x509.keyTypes")
        for index, key_type in enumerate(key_types or ()):
            if not isinstance(key_type, KeyType):
                raise ValidationError(f"spec.x509.keyTypes[{index}]", "must be a KeyType")
        object.__setattr__(self, "key_types", key_types)
        names = _optional_items(self.dns_names, "spec.x509.dnsNames")
        for index, name in enumerate(names or ()):
            check_dns_grant(name, f"spec.x509.dnsNames[{index}]")
        object.__setattr__(self, "dns_names", names)

    @classmethod
    def parse(cls, value: object) -> X509Grant:
        where = "spec.x509"
        doc = _object(value, where, ("minTTL", "maxTTL", "keyTypes", "dnsNames"))
        names = _optional_strings(doc, "keyTypes", where)
        key_types = (
            None
            if names is None
            else tuple(
                KeyType.parse(name, field=f"{where}.keyTypes[{index}]")
                for index, name in enumerate(names)
            )
        )
        return cls(
            min_ttl=_duration(doc, "minTTL", where),
            max_ttl=_duration(doc, "maxTTL", where),
            key_types=key_types,
            dns_names=_optional_strings(doc, "dnsNames", where),
        )


@dataclass(frozen=True)
class JwtGrant:
    """``spec.jwt`` of a policy: JWT-SVID lifetime bounds and audiences."""

    min_ttl: timedelta | None = None
    max_ttl: timedelta | None = None
    audiences: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_bounds(self.min_ttl, self.max_ttl, "spec.jwt")
        audiences = _optional_items(self.audiences, "spec.jwt.audiences")
        for index, audience in enumerate(audiences or ()):
            _check_token_text(
                audience, f"spec.jwt.audiences[{index}]", "audience", MAX_AUDIENCE_CHARS
            )
        object.__setattr__(self, "audiences", audiences)

    @classmethod
    def parse(cls, value: object) -> JwtGrant:
        where = "spec.jwt"
        doc = _object(value, where, ("minTTL", "maxTTL", "audiences"))
        return cls(
            min_ttl=_duration(doc, "minTTL", where),
            max_ttl=_duration(doc, "maxTTL", where),
            audiences=_optional_strings(doc, "audiences", where),
        )


@dataclass(frozen=True)
class TokenGrant:
    """``spec.tokens`` of a policy: access-token bounds, audiences, scopes and claim names.

    Unset ``scopes`` grants no scope and unset ``claims`` allows no extra claim: only the
    lifetime bounds and audiences have built-in defaults.
    """

    min_ttl: timedelta | None = None
    max_ttl: timedelta | None = None
    audiences: tuple[str, ...] | None = None
    scopes: tuple[str, ...] | None = None
    claims: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_bounds(self.min_ttl, self.max_ttl, "spec.tokens")
        audiences = _optional_items(self.audiences, "spec.tokens.audiences")
        for index, audience in enumerate(audiences or ()):
            _check_token_text(
                audience, f"spec.tokens.audiences[{index}]", "audience", MAX_AUDIENCE_CHARS
            )
        object.__setattr__(self, "audiences", audiences)
        scopes = _optional_items(self.scopes, "spec.tokens.scopes")
        for index, scope in enumerate(scopes or ()):
            check_scope_grant(scope, f"spec.tokens.scopes[{index}]")
        object.__setattr__(self, "scopes", scopes)
        claims = _optional_items(self.claims, "spec.tokens.claims")
        for index, name in enumerate(claims or ()):
            _check_claim_name(name, f"spec.tokens.claims[{index}]")
        object.__setattr__(self, "claims", claims)

    @classmethod
    def parse(cls, value: object) -> TokenGrant:
        where = "spec.tokens"
        doc = _object(value, where, ("minTTL", "maxTTL", "audiences", "scopes", "claims"))
        return cls(
            min_ttl=_duration(doc, "minTTL", where),
            max_ttl=_duration(doc, "maxTTL", where),
            audiences=_optional_strings(doc, "audiences", where),
            scopes=_optional_strings(doc, "scopes", where),
            claims=_optional_strings(doc, "claims", where),
        )


@dataclass(frozen=True)
class VaultGrant:
    """``spec.vault`` of a policy: readable paths (exact, or a prefix ending in ``*``)."""

    paths: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        paths = _optional_items(self.paths, "spec.vault.paths")
        for index, path in enumerate(paths or ()):
            check_vault_path_grant(path, f"spec.vault.paths[{index}]")
        object.__setattr__(self, "paths", paths)

    @classmethod
    def parse(cls, value: object) -> VaultGrant:
        doc = _object(value, "spec.vault", ("paths",))
        return cls(paths=_optional_strings(doc, "paths", "spec.vault"))


@dataclass(frozen=True, kw_only=True)
class IdentityPolicy:
    """A cluster-scoped IdentityPolicy: which namespaces it selects and what it grants them."""

    name: str
    namespace_selector: LabelSelector
    service_accounts: tuple[str, ...] = ("*",)
    x509: X509Grant = field(default_factory=X509Grant)
    jwt: JwtGrant = field(default_factory=JwtGrant)
    tokens: TokenGrant = field(default_factory=TokenGrant)
    vault: VaultGrant = field(default_factory=VaultGrant)
    signers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_name(self.name, "metadata.name", "IdentityPolicy name")
        if not isinstance(self.namespace_selector, LabelSelector):
            raise ValidationError(_SELECTOR, "must be a LabelSelector")
        patterns = _as_tuple(self.service_accounts, "spec.serviceAccounts", limit=MAX_POLICY_ITEMS)
        for index, pattern in enumerate(patterns):
            _check_sa_pattern(pattern, f"spec.serviceAccounts[{index}]")
        object.__setattr__(self, "service_accounts", patterns)
        for where, value, kind in (
            ("spec.x509", self.x509, X509Grant),
            ("spec.jwt", self.jwt, JwtGrant),
            ("spec.tokens", self.tokens, TokenGrant),
            ("spec.vault", self.vault, VaultGrant),
        ):
            if not isinstance(value, kind):
                raise ValidationError(where, f"must be a {kind.__name__}")
        signers = _optional_items(self.signers, "spec.signers")
        for index, signer in enumerate(signers or ()):
            _check_label(signer, f"spec.signers[{index}]", "signer name")
        object.__setattr__(self, "signers", signers)

    @classmethod
    def parse(cls, name: str, spec: Mapping[str, Any]) -> IdentityPolicy:
        """Build from ``metadata.name`` and the object's ``spec``."""
        doc = _object(
            spec,
            "spec",
            (
                "namespaceSelector",
                "serviceAccounts",
                "x509",
                "jwt",
                "tokens",
                "vault",
                "signers",
            ),
        )
        accounts = _optional_strings(doc, "serviceAccounts", "spec")
        return cls(
            name=name,
            namespace_selector=LabelSelector.parse(doc.get("namespaceSelector")),
            service_accounts=("*",) if accounts is None else accounts,
            x509=X509Grant.parse(doc.get("x509")),
            jwt=JwtGrant.parse(doc.get("jwt")),
            tokens=TokenGrant.parse(doc.get("tokens")),
            vault=VaultGrant.parse(doc.get("vault")),
            signers=_optional_strings(doc, "signers", "spec"),
        )
