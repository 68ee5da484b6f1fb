# SPDX-License-Identifier: Apache-2.0
"""The operator's admin configuration: typed, validated and documented once, here.

Admins own it (Helm values -> a ConfigMap mounted as a YAML file, plus a few environment
variables); tenants never see it. It names the trust domain and JWT issuer, the signers
tenants may choose by name (a local CA and key, or Vault/OpenBao PKI and Transit with their
auth), the Vault/OpenBao connection and mounts ScopedCredentials may read dynamic secrets
from, rotation timing, TTL limits, rate limits and the HTTP listener.

The YAML file uses camelCase keys, as a Helm values block would::

    trustDomain: example.org
    jwtIssuer: https://wio.example.org
    operatorNamespace: wio-system
    watchNamespaces: []            # empty: every namespace
    signers:
      default: {x509: {type: local}, jwt: {type: local, algorithm: ES256}}
      vault:
        x509: {type: vaultPKI, address: "https://vault:8200", mount: pki, role: wio,
               auth: {method: kubernetes, role: wio}}
        jwt:  {type: vaultTransit, address: "https://vault:8200", mount: transit, key: wio,
               auth: {method: kubernetes, role: wio}}
    skew: 30s
    rotation: {fraction: 0.5, jitter: 0.1}
    minTTL: 10m
    maxX509TTL: 24h
    maxJwtTTL: 1h
    maxTokenTTL: 1h
    caLifetime: 8760h
    rolloverPublishDelay: 10m      # a new CA or JWT key is published this long before it signs
    rateLimits: {issuancePerSecond: 100, issuanceBurst: 200, maxInflightWrites: 32,
                 introspectionPerSecond: 20, introspectionBurst: 40}
    vault:                         # ScopedCredential dynamic secrets; omitted: none are read
      address: "https://vault:8200"
      auth: {method: kubernetes, role: wio-secrets}
      mounts: [database]           # the only secrets engines tenants' vault.path may name
    http:
      host: 0.0.0.0
      port: 8443                   # discovery, JWKS, SPIFFE bundle, introspection
      metricsPort: 9090            # /metrics, /healthz, /readyz (plain HTTP)
      tls: {mode: auto}            # auto | self | files (certFile, keyFile) | none
    logLevel: INFO
    leaderElection: {enabled: true, leaseDuration: 10s, renewDeadline: 7s, retryPeriod: 2s}
    revocationConfigMap: wio-revocations  # shards are named wio-revocations-00, -01, …
    revocationShards: 64
    trustConfigMap: wio-trust-bundle
    localCASecret: wio-local-ca

Environment variables override single values: ``WIO_TRUST_DOMAIN``, ``WIO_JWT_ISSUER``,
``WIO_OPERATOR_NAMESPACE``, ``WIO_WATCH_NAMESPACES`` (comma-separated), ``WIO_LOG_LEVEL``,
``WIO_HTTP_PORT`` and ``WIO_MIN_TTL``. An empty variable counts as unset.

Everything is refused loudly with a ``ConfigError`` whose ``field`` is the YAML path
(``signers.vault.x509.address``): unknown keys (a typo must not silently fall back to a
default), duplicate keys, wrong types and out-of-range values. Secrets (Vault tokens, AppRole
secret IDs) are never written into this file: it names the files that hold them.

Layering: this module may import ``wio.models`` and ``wio.issuing``; it never imports
``wio.policy``, nor does policy import it: ``AdminConfig.policy_defaults()`` hands policy the
limits it needs as a plain value (``wio.models.limits.PolicyDefaults``).
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import yaml

from wio.errors import ConfigError, ValidationError
from wio.issuing.jwt import JwtAlgorithm
from wio.models.duration import format_duration, parse_duration
from wio.models.limits import LIFETIME_TO_MAX_LEAF_TTL, PolicyDefaults
from wio.models.resources import (
    DEFAULT_SIGNER,
    MAX_JWT_TTL,
    MAX_TOKEN_TTL,
    MAX_X509_TTL,
    MIN_TTL,
    is_dns1123_label,
    is_dns1123_subdomain,
)
from wio.models.spiffe import TrustDomain
from wio.names import INTROSPECTION_PATH

DEFAULT_SA_TOKEN_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
"""Where Kubernetes mounts the pod's own projected (and rotated) service-account token."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_SIGNERS = 64  # a handful is normal; more is a templating accident
MAX_VAULT_TIMEOUT = timedelta(minutes=5)
MAX_SKEW = timedelta(minutes=5)
TLS_MODES = ("auto", "self", "files", "none")
MAX_ROLLOVER_PUBLISH_DELAY = timedelta(days=7)  # longer is a typo, not a plan
#: A Lease longer than this leaves the identities un-rotated for that long after a crash.
MAX_LEASE_DURATION = timedelta(minutes=5)

# Mount paths and role/key names as the Vault backends accept them (wio.backends.vault keeps
# its own copy: this layer may not import the backends).
_VAULT_MOUNT = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
_VAULT_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")


def _detail(err: ConfigError | ValidationError) -> str:
    return str(err).removeprefix(f"{err.field}: ")


@contextmanager
def _within(prefix: str | None) -> Iterator[None]:
    """Re-raise errors of a nested value with the YAML path of where it sits.

    Values validate themselves with paths relative to themselves (``address``); the loader
    builds each one inside ``_within("signers.vault.x509")``. Never nest two of these.
    """
    try:
        yield
    except (ConfigError, ValidationError) as err:
        path = err.field if prefix is None else f"{prefix}.{err.field}"
        raise ConfigError(path, _detail(err)) from err


def _check_url(value: object, where: str, *, what: str, allow_path: bool) -> str:
    """An ``https://`` URL, or ``http://`` to a loopback host (a sidecar or a test server).

    Plain http anywhere else would carry tokens or credentials across the network in clear.
    """
    if not isinstance(value, str) or not value:
        raise ConfigError(where, f"must be a non-empty {what} URL")
    parts = urlsplit(value)
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as err:
        raise ConfigError(where, f"{value!r} has a malformed host or port") from err
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(where, f"{value!r} must be an https:// URL with a host")
    if parts.scheme == "http" and not _loopback(host):
        raise ConfigError(where, f"{value!r} uses plain http; use https (http only on loopback)")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(where, "must not carry credentials")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ConfigError(where, f"{value!r} must not have a query or fragment")
    if not allow_path and parts.path not in ("", "/"):
        raise ConfigError(where, f"{value!r} must not have a path")
    if allow_path and value.endswith("/"):
        # `iss` is compared byte for byte and discovery appends "/.well-known/...".
        raise ConfigError(where, f"{value!r} must not end with '/'")
    if any(char.isspace() for char in value):
        raise ConfigError(where, "must not contain whitespace")
    return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_file(value: object, where: str) -> Path:
    if not isinstance(value, Path):
        raise ConfigError(where, f"must be a file path, got {type(value).__name__}")
    if not value.is_absolute():
        # Relative paths would depend on the working directory of the container.
        raise ConfigError(where, f"{str(value)!r} must be an absolute file path")
    return value


def _check_mount(value: object, where: str) -> str:
    if (
        not isinstance(value, str)
        or not _VAULT_MOUNT.fullmatch(value)
        or any(segment in (".", "..") for segment in value.split("/"))
    ):
        raise ConfigError(
            where, "must be a mount path of [A-Za-z0-9_.-] segments joined by '/' (no . or ..)"
        )
    return value


def _check_vault_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not _VAULT_NAME.fullmatch(value) or value in (".", ".."):
        raise ConfigError(where, "must be one path segment of [A-Za-z0-9_.-]")
    return value


def _check_timeout(value: object, where: str) -> timedelta:
    if not isinstance(value, timedelta) or not timedelta(0) < value <= MAX_VAULT_TIMEOUT:
        raise ConfigError(where, f"must be a duration above 0s and at most {MAX_VAULT_TIMEOUT}")
    return value


# --- signers ------------------------------------------------------------------------------------


class VaultAuthMethod(enum.StrEnum):
    """How the operator logs in to Vault/OpenBao."""

    TOKEN = "token"  # noqa: S105 - a method name, not a token
    APPROLE = "approle"
    KUBERNETES = "kubernetes"


@dataclass(frozen=True, kw_only=True)
class VaultAuth:
    """Vault/OpenBao login; secrets are read from files at login time, never held here.

    - ``token``: ``token_file`` holds a token (development, or one an agent keeps fresh).
    - ``approle``: ``role_id`` (an identifier, not a secret) and ``secret_id_file``;
      ``mount`` defaults to ``approle``.
    - ``kubernetes``: ``role`` and the operator's own service-account token from
      ``service_account_token_file``; ``mount`` defaults to ``kubernetes``. The production
      choice: nothing to distribute or rotate by hand.

    Fields another method uses are refused, so a half-edited block cannot mislead.
    """

    method: VaultAuthMethod
    token_file: Path | None = None
    role_id: str | None = None
    secret_id_file: Path | None = None
    role: str | None = None
    mount: str | None = None
    service_account_token_file: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.method, VaultAuthMethod):
            raise ConfigError("method", "must be one of token, approle, kubernetes")
        used: dict[VaultAuthMethod, tuple[str, ...]] = {
            VaultAuthMethod.TOKEN: ("token_file",),
            VaultAuthMethod.APPROLE: ("role_id", "secret_id_file", "mount"),
            VaultAuthMethod.KUBERNETES: ("role", "mount", "service_account_token_file"),
        }
        yaml_names = {
            "token_file": "tokenFile",
            "role_id": "roleID",
            "secret_id_file": "secretIDFile",
            "role": "role",
            "mount": "mount",
            "service_account_token_file": "serviceAccountTokenFile",
        }
        for attribute, name in yaml_names.items():
            if getattr(self, attribute) is not None and attribute not in used[self.method]:
                raise ConfigError(name, f"is not used by auth method {self.method.value}")
        match self.method:
            case VaultAuthMethod.TOKEN:
                if self.token_file is None:
                    raise ConfigError("tokenFile", "is required for auth method token")
                _check_file(self.token_file, "tokenFile")
            case VaultAuthMethod.APPROLE:
                if self.role_id is None:
                    raise ConfigError("roleID", "is required for auth method approle")
                if (
                    not isinstance(self.role_id, str)
                    or not _PRINTABLE.fullmatch(self.role_id)
                    or len(self.role_id) > 256
                ):
                    raise ConfigError("roleID", "must be 1-256 printable characters")
                if self.secret_id_file is None:
                    raise ConfigError("secretIDFile", "is required for auth method approle")
                _check_file(self.secret_id_file, "secretIDFile")
                object.__setattr__(self, "mount", self.mount or "approle")
                _check_mount(self.mount, "mount")
            case VaultAuthMethod.KUBERNETES:
                if self.role is None:
                    raise ConfigError("role", "is required for auth method kubernetes")
                _check_vault_name(self.role, "role")
                object.__setattr__(self, "mount", self.mount or "kubernetes")
                _check_mount(self.mount, "mount")
                token_file = self.service_account_token_file or DEFAULT_SA_TOKEN_FILE
                object.__setattr__(self, "service_account_token_file", token_file)
                _check_file(token_file, "serviceAccountTokenFile")


@dataclass(frozen=True)
class LocalX509:
    """X.509-SVIDs signed in-process by the local CA (kept in the ``local_ca_secret``)."""


@dataclass(frozen=True)
class LocalJwt:
    """JWTs signed in-process by a local key ring; ``algorithm`` picks the key type.

    ES256 by default: small, fast (~0.08 ms a token) and accepted by every JWT library.
    """

    algorithm: JwtAlgorithm = JwtAlgorithm.ES256

    def __post_init__(self) -> None:
        if not isinstance(self.algorithm, JwtAlgorithm):
            raise ConfigError("algorithm", "must be a JwtAlgorithm")


@dataclass(frozen=True, kw_only=True)
class VaultPkiX509:
    """X.509-SVIDs signed by a Vault/OpenBao PKI ``role`` on ``mount``.

    ``sign_verbatim`` (default False) signs through the role so its constraints apply;
    True uses ``sign-verbatim``, which needs a broader Vault policy. ``timeout`` bounds
    each request (default 10s: far above a healthy Vault, far below half a leaf's life).
    """

    address: str
    mount: str = "pki"
    role: str
    auth: VaultAuth
    ca_cert_file: Path | None = None
    sign_verbatim: bool = False
    timeout: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        _check_url(self.address, "address", what="Vault", allow_path=False)
        _check_mount(self.mount, "mount")
        _check_vault_name(self.role, "role")
        if not isinstance(self.auth, VaultAuth):
            raise ConfigError("auth", "must be a VaultAuth")
        if self.ca_cert_file is not None:
            _check_file(self.ca_cert_file, "caCertFile")
        if not isinstance(self.sign_verbatim, bool):
            raise ConfigError("signVerbatim", "must be true or false")
        _check_timeout(self.timeout, "timeout")


@dataclass(frozen=True, kw_only=True)
class VaultTransitJwt:
    """JWTs signed by a Vault/OpenBao Transit ``key`` on ``mount``; the key never leaves Vault."""

    address: str
    mount: str = "transit"
    key: str
    auth: VaultAuth
    ca_cert_file: Path | None = None
    timeout: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        _check_url(self.address, "address", what="Vault", allow_path=False)
        _check_mount(self.mount, "mount")
        _check_vault_name(self.key, "key")
        if not isinstance(self.auth, VaultAuth):
            raise ConfigError("auth", "must be a VaultAuth")
        if self.ca_cert_file is not None:
            _check_file(self.ca_cert_file, "caCertFile")
        _check_timeout(self.timeout, "timeout")


@dataclass(frozen=True, kw_only=True)
class SignerConfig:
    """A named signer tenants choose with ``spec.signer``: how it signs X.509 and JWTs."""

    name: str
    x509: LocalX509 | VaultPkiX509
    jwt: LocalJwt | VaultTransitJwt

    def __post_init__(self) -> None:
        if not is_dns1123_label(self.name):
            raise ConfigError(
                "name", f"{self.name!r} is not a DNS-1123 label (lower-case a-z, 0-9, '-')"
            )
        if not isinstance(self.x509, LocalX509 | VaultPkiX509):
            raise ConfigError("x509", "must be LocalX509 or VaultPkiX509")
        if not isinstance(self.jwt, LocalJwt | VaultTransitJwt):
            raise ConfigError("jwt", "must be LocalJwt or VaultTransitJwt")


#: Mounts a ScopedCredential may never read through, whatever an admin lists: Vault's own
#: system, auth and identity APIs and the per-token cubbyhole are not secrets engines.
RESERVED_VAULT_MOUNTS = frozenset({"sys", "auth", "identity", "cubbyhole"})
MAX_VAULT_MOUNTS = 64


@dataclass(frozen=True, kw_only=True)
class VaultSecrets:
    """Where ScopedCredentials read dynamic secrets (``spec.vault.path``) from.

    Tenants name only a path; the address, TLS trust and login are the admin's, and so is
    ``mounts``: the secrets-engine mounts (``database``, ``teams/db``) a path may start with.
    A path under any other mount is refused before Vault is asked, whatever an IdentityPolicy
    grants, so a tenant can never point the operator's Vault token at ``sys/`` or at another
    team's engine. ``timeout`` bounds each request (default 10s, as for the signers).
    """

    address: str
    auth: VaultAuth
    mounts: tuple[str, ...]
    ca_cert_file: Path | None = None
    timeout: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        _check_url(self.address, "address", what="Vault", allow_path=False)
        if not isinstance(self.auth, VaultAuth):
            raise ConfigError("auth", "must be a VaultAuth")
        mounts: object = self.mounts
        if isinstance(mounts, str) or not isinstance(mounts, tuple | list) or not mounts:
            raise ConfigError("mounts", "must be a non-empty list of secrets-engine mounts")
        if len(mounts) > MAX_VAULT_MOUNTS:
            raise ConfigError("mounts", f"at most {MAX_VAULT_MOUNTS} mounts are allowed")
        for index, mount in enumerate(mounts):
            where = f"mounts[{index}]"
            _check_mount(mount, where)
            if mount.split("/")[0] in RESERVED_VAULT_MOUNTS:
                raise ConfigError(
                    where, f"{mount!r} is not a secrets engine; ScopedCredentials never read it"
                )
            if mount in mounts[:index]:
                raise ConfigError(where, f"{mount!r} is listed twice")
        object.__setattr__(self, "mounts", tuple(mounts))
        if self.ca_cert_file is not None:
            _check_file(self.ca_cert_file, "caCertFile")
        _check_timeout(self.timeout, "timeout")

    def allows(self, path: str) -> bool:
        """True when ``path`` lies strictly under one of the configured mounts."""
        return any(path.startswith(f"{mount}/") for mount in self.mounts)


def default_signers() -> Mapping[str, SignerConfig]:
    """One local signer named ``default``: works with no Vault at all."""
    return MappingProxyType(
        {DEFAULT_SIGNER: SignerConfig(name=DEFAULT_SIGNER, x509=LocalX509(), jwt=LocalJwt())}
    )


# --- the configuration ------------------------------------------------------------------------


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(where, f"must be a number, got {value!r}")
    return float(value)


def _integer(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(where, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(where, f"must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True, kw_only=True)
class AdminConfig:
    """Everything an admin sets; each field says its unit, its default and why."""

    #: The SPIFFE trust domain (``example.org``). Required: it is in every ID we mint, and
    #: no default could be right for two clusters.
    trust_domain: TrustDomain
    #: The ``iss`` of every JWT and the base of OIDC discovery: an https URL, no trailing
    #: ``/``. Required: verifiers pin it, so it must be the URL they really reach us at, which
    #: only the admin knows (a guessed default would silently mint unverifiable tokens).
    jwt_issuer: str
    #: Namespace the operator runs in (default ``wio-system``): where its own ConfigMaps and
    #: the local CA Secret live.
    operator_namespace: str = "wio-system"
    #: Namespaces to watch; empty (the default) watches all of them.
    watch_namespaces: tuple[str, ...] = ()
    #: Signers by name; ``default`` must exist, as it is what ``spec.signer`` defaults to.
    #: Default: one local signer, so a fresh install works with no Vault.
    signers: Mapping[str, SignerConfig] = field(default_factory=default_signers, hash=False)
    #: How far ``notBefore`` is backdated (default 30s): verifiers with a slightly slow clock
    #: still accept a certificate minted a moment ago.
    skew: timedelta = timedelta(seconds=30)
    #: Renew at this fraction of a credential's lifetime (default 0.5): half the lifetime is
    #: left to ride out a signer outage.
    rotation_fraction: float = 0.5
    #: Relative jitter on that fraction (default 0.1, i.e. renew at 45%-55%): a fleet issued
    #: together does not renew together.
    rotation_jitter: float = 0.1
    #: The production minimum TTL (default 10m) of X.509-SVIDs, JWT-SVIDs and access tokens
    #: when no IdentityPolicy says otherwise: below it, rotation churn costs more than the
    #: shorter exposure gains. Tests and demos lower it through an IdentityPolicy, not here.
    min_ttl: timedelta = timedelta(minutes=10)
    #: Longest X.509-SVID without an IdentityPolicy allowing more (default 24h): a stolen
    #: key is useful for a day at most.
    max_x509_ttl: timedelta = timedelta(hours=24)
    #: Longest JWT-SVID without an IdentityPolicy allowing more (default 1h): a JWT is a
    #: bearer token, usable by whoever holds it, so it must expire sooner than a certificate.
    max_jwt_ttl: timedelta = timedelta(hours=1)
    #: Longest access token without an IdentityPolicy allowing more (default 1h), as above.
    max_token_ttl: timedelta = timedelta(hours=1)
    #: Lifetime of the local CA certificate (default 365 days, ``8760h`` in YAML). It must be
    #: at least 6 x ``max_x509_ttl`` so that CA rotation never cuts a leaf short; policies
    #: can never allow leaves longer than ``ca_lifetime / 6``.
    ca_lifetime: timedelta = timedelta(days=365)
    #: How long a new local CA or JWT key is published before it signs, in a rollover asked
    #: for on demand (default 10m): kubelet refreshes mounted ConfigMaps within about a
    #: minute and JWKS caches commonly keep keys for 5 minutes, so every verifier knows the
    #: new key before it sees anything signed by it. A distrust (emergency) skips it.
    rollover_publish_delay: timedelta = timedelta(minutes=10)
    #: Issuances per second, sustained (token bucket; default 100). Bounds the load a restart
    #: or a mass apply puts on the API server and the signer (each issuance is three writes);
    #: 100/s issues a thousand identities within the 15 s the design asks for. RSA keys
    #: (~58 ms each) make it matter most.
    issuance_rate: float = 100.0
    #: Issuances allowed in a burst above the rate (default 200): a small apply is not slowed.
    issuance_burst: int = 200
    #: API writes in flight at once (default 32): enough to hide latency, few enough not to
    #: trip API priority and fairness.
    max_inflight_writes: int = 32
    #: Token introspection requests per second one authenticated caller may make (token
    #: bucket; default 20): enough for a resource server checking tokens it has not cached,
    #: and a ceiling on what one misbehaving workload can cost the operator.
    introspection_rate: float = 20.0
    #: Introspection requests a caller may make in a burst above that rate (default 40).
    introspection_burst: int = 40
    #: Vault/OpenBao for ScopedCredential dynamic secrets. None (the default): a
    #: ScopedCredential with ``spec.vault`` is refused with a condition saying so.
    vault: VaultSecrets | None = None
    #: Address the HTTP server (OIDC discovery, JWKS, bundle, introspection, metrics, probes)
    #: binds to (default ``0.0.0.0``): kubelet probes and Prometheus reach the pod IP.
    http_host: str = "0.0.0.0"  # noqa: S104 - in a pod, the pod IP is the only way in
    #: Its TCP port (default 8443): discovery, JWKS, the SPIFFE bundle and introspection.
    http_port: int = 8443
    #: The port of ``/metrics`` and the health probes (default 9090), apart from the public
    #: documents, so a NetworkPolicy can let Prometheus and the kubelet in there and nobody
    #: else (the metrics name every identity). Plain HTTP: nothing on it is secret.
    metrics_port: int = 9090
    #: TLS on the public port: ``auto`` (default: ``self`` unless ``http_host`` is a loopback
    #: address), ``self`` (a certificate wio issues itself from its local CA for its Service's
    #: DNS names, 24 h, renewed at half its life and after a CA rotation), ``files``
    #: (``tls_cert_file``/``tls_key_file``, e.g. from cert-manager, read again when they
    #: change) or ``none`` (plain HTTP: TLS is terminated in front, by an Ingress or a mesh).
    tls_mode: str = "auto"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: The Service in front of the operator (default ``wio``): a self-issued certificate
    #: names ``<service>``, ``<service>.<namespace>``, ``<service>.<namespace>.svc`` and
    #: ``<service>.<namespace>.svc.cluster.local``, and ``tls_dns_names`` besides.
    tls_service_name: str = "wio"
    tls_dns_names: tuple[str, ...] = ()
    #: Python logging level name (default ``INFO``: one line per issuance, rotation, revocation).
    log_level: str = "INFO"
    #: Base name of the ConfigMaps (in the operator namespace) holding the revocation list;
    #: its shards are ``<name>-00`` and on.
    revocation_configmap: str = "wio-revocations"
    #: How many ConfigMaps the revocation list may fill (default 64, at most 99): each is
    #: filled to 128 KiB, about 690 unexpired revocations, so 64 hold some 44,000. Lowering
    #: it moves the entries of the shards beyond at the next start.
    revocation_shards: int = 64
    #: ConfigMap name for the trust bundle published in every namespace with identities.
    trust_configmap: str = "wio-trust-bundle"
    #: Secret (in the operator namespace) holding the local CA's keys and certificates.
    local_ca_secret: str = "wio-local-ca"  # noqa: S105 - a Secret's name
    #: Leader election on the Lease ``wio-leader`` in the operator namespace (default on):
    #: with several replicas only the leader reconciles and writes, every replica serves
    #: the public documents and introspection. Off only for a single replica that must not
    #: touch a Lease.
    leader_election: bool = True
    #: How long a leader's Lease is good for without renewal (default 10s): a standby takes
    #: over a crashed leader after at most this long plus one retry period, inside the 15 s
    #: a failover may take. A graceful stop hands the Lease back at once.
    lease_duration: timedelta = timedelta(seconds=10)
    #: How long a leader keeps trying to renew before it stops leading (default 7s): shorter
    #: than the lease duration, so an old leader has stopped writing before anyone may start.
    lease_renew_deadline: timedelta = timedelta(seconds=7)
    #: How often the Lease is renewed, and a standby tries to take it (default 2s).
    lease_retry_period: timedelta = timedelta(seconds=2)

    def __post_init__(self) -> None:
        if not isinstance(self.trust_domain, TrustDomain):
            raise ConfigError("trustDomain", "must be a TrustDomain")
        _check_url(self.jwt_issuer, "jwtIssuer", what="issuer", allow_path=True)
        if not is_dns1123_label(self.operator_namespace):
            raise ConfigError("operatorNamespace", "must be a namespace name (a DNS-1123 label)")
        self._check_watch_namespaces()
        self._check_signers()
        self._check_durations()
        self._check_rotation()
        rate = _number(self.issuance_rate, "rateLimits.issuancePerSecond")
        if not 0 < rate <= 10_000:
            raise ConfigError("rateLimits.issuancePerSecond", "must be above 0 and at most 10000")
        object.__setattr__(self, "issuance_rate", rate)
        _integer(self.issuance_burst, "rateLimits.issuanceBurst", 1, 100_000)
        _integer(self.max_inflight_writes, "rateLimits.maxInflightWrites", 1, 1024)
        introspection = _number(self.introspection_rate, "rateLimits.introspectionPerSecond")
        if not 0 < introspection <= 10_000:
            raise ConfigError(
                "rateLimits.introspectionPerSecond", "must be above 0 and at most 10000"
            )
        object.__setattr__(self, "introspection_rate", introspection)
        _integer(self.introspection_burst, "rateLimits.introspectionBurst", 1, 100_000)
        if self.vault is not None and not isinstance(self.vault, VaultSecrets):
            raise ConfigError("vault", "must be a VaultSecrets")
        _integer(self.http_port, "http.port", 1, 65535)
        _integer(self.metrics_port, "http.metricsPort", 1, 65535)
        if self.metrics_port == self.http_port:
            raise ConfigError("http.metricsPort", "must differ from http.port")
        self._check_tls()
        _integer(self.revocation_shards, "revocationShards", 1, 99)
        if (
            not isinstance(self.http_host, str)
            or not _PRINTABLE.fullmatch(self.http_host)
            or len(self.http_host) > 253
        ):
            raise ConfigError("http.host", "must be a host name or IP address")
        if not isinstance(self.log_level, str) or self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError("logLevel", f"must be one of {', '.join(LOG_LEVELS)}")
        object.__setattr__(self, "log_level", self.log_level.upper())
        for where, name in (
            ("revocationConfigMap", self.revocation_configmap),
            ("trustConfigMap", self.trust_configmap),
            ("localCASecret", self.local_ca_secret),
        ):
            if not is_dns1123_subdomain(name):
                raise ConfigError(where, f"{name!r} is not a valid object name")

    def _check_tls(self) -> None:
        if self.tls_mode not in TLS_MODES:
            raise ConfigError("http.tls.mode", f"must be one of {', '.join(TLS_MODES)}")
        files = (self.tls_cert_file, self.tls_key_file)
        if self.tls_mode == "files" and None in files:
            raise ConfigError("http.tls", "mode files needs both certFile and keyFile")
        if self.tls_mode != "files" and files != (None, None):
            raise ConfigError("http.tls", "certFile and keyFile go with mode files only")
        if not is_dns1123_label(self.tls_service_name):
            raise ConfigError("http.tls.serviceName", "must be a Service name (a DNS-1123 label)")
        for index, name in enumerate(self.tls_dns_names):
            if not isinstance(name, str) or not is_dns1123_subdomain(name):
                raise ConfigError(f"http.tls.dnsNames[{index}]", f"{name!r} is not a DNS name")

    @property
    def serves_tls(self) -> bool:
        """Whether the public port speaks TLS (``auto``: unless it is bound to loopback)."""
        if self.tls_mode == "auto":
            return not _loopback(self.http_host)
        return self.tls_mode != "none"

    @property
    def serving_dns_names(self) -> tuple[str, ...]:
        """The names a self-issued serving certificate carries."""
        service, namespace = self.tls_service_name, self.operator_namespace
        own = (
            service,
            f"{service}.{namespace}",
            f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.cluster.local",
        )
        return tuple(dict.fromkeys((*own, *self.tls_dns_names)))

    def policy_defaults(self) -> PolicyDefaults:
        """The built-in IdentityPolicy limits this configuration implies."""
        # In whole seconds (rounded down), like every configured duration.
        lifetime_s = self.ca_lifetime.days * 86_400 + self.ca_lifetime.seconds
        return PolicyDefaults(
            x509_min_ttl=self.min_ttl,
            x509_max_ttl=self.max_x509_ttl,
            x509_ttl_ceiling=timedelta(seconds=lifetime_s // LIFETIME_TO_MAX_LEAF_TTL),
            jwt_min_ttl=self.min_ttl,
            jwt_max_ttl=self.max_jwt_ttl,
            token_min_ttl=self.min_ttl,
            token_max_ttl=self.max_token_ttl,
            reserved_audiences=(self.jwt_issuer + INTROSPECTION_PATH,),
        )

    def _check_watch_namespaces(self) -> None:
        names: object = self.watch_namespaces
        if isinstance(names, str) or not isinstance(names, tuple | list):
            raise ConfigError("watchNamespaces", "must be a list of namespace names")
        for index, name in enumerate(names):
            if not is_dns1123_label(name):
                raise ConfigError(f"watchNamespaces[{index}]", f"{name!r} is not a namespace name")
            if name in names[:index]:
                raise ConfigError(f"watchNamespaces[{index}]", f"{name!r} is listed twice")
        object.__setattr__(self, "watch_namespaces", tuple(names))

    def _check_signers(self) -> None:
        if not isinstance(self.signers, Mapping):
            raise ConfigError("signers", "must be a mapping of names to signers")
        if len(self.signers) > MAX_SIGNERS:
            raise ConfigError("signers", f"at most {MAX_SIGNERS} signers are allowed")
        for name, signer in self.signers.items():
            if not isinstance(signer, SignerConfig) or signer.name != name:
                raise ConfigError(f"signers.{name}", "must be a SignerConfig of the same name")
        if DEFAULT_SIGNER not in self.signers:
            raise ConfigError(
                f"signers.{DEFAULT_SIGNER}",
                "a signer named 'default' is required: it is what spec.signer defaults to",
            )
        object.__setattr__(self, "signers", MappingProxyType(dict(self.signers)))

    def _check_durations(self) -> None:
        for where, value in (
            ("skew", self.skew),
            ("minTTL", self.min_ttl),
            ("maxX509TTL", self.max_x509_ttl),
            ("maxJwtTTL", self.max_jwt_ttl),
            ("maxTokenTTL", self.max_token_ttl),
            ("caLifetime", self.ca_lifetime),
            ("rolloverPublishDelay", self.rollover_publish_delay),
            ("leaderElection.leaseDuration", self.lease_duration),
            ("leaderElection.renewDeadline", self.lease_renew_deadline),
            ("leaderElection.retryPeriod", self.lease_retry_period),
        ):
            if not isinstance(value, timedelta) or value.microseconds:
                raise ConfigError(where, "must be a duration of whole seconds")
        if not timedelta(0) < self.lease_retry_period < self.lease_renew_deadline:
            raise ConfigError(
                "leaderElection.retryPeriod", "must be above 0s and below renewDeadline"
            )
        if not self.lease_renew_deadline < self.lease_duration <= MAX_LEASE_DURATION:
            raise ConfigError(
                "leaderElection.leaseDuration",
                f"must be above renewDeadline and at most {format_duration(MAX_LEASE_DURATION)}",
            )
        if not timedelta(0) <= self.rollover_publish_delay <= MAX_ROLLOVER_PUBLISH_DELAY:
            raise ConfigError(
                "rolloverPublishDelay",
                f"must be between 0s and {format_duration(MAX_ROLLOVER_PUBLISH_DELAY)}",
            )
        if not timedelta(0) <= self.skew <= MAX_SKEW:
            raise ConfigError("skew", f"must be between 0s and {format_duration(MAX_SKEW)}")
        if self.min_ttl < MIN_TTL:
            raise ConfigError(
                "minTTL", f"must be at least {format_duration(MIN_TTL)}, the API's floor"
            )
        if self.skew >= self.min_ttl:
            raise ConfigError("skew", "must be below minTTL")
        for where, value, ceiling in (
            ("maxX509TTL", self.max_x509_ttl, MAX_X509_TTL),
            ("maxJwtTTL", self.max_jwt_ttl, MAX_JWT_TTL),
            ("maxTokenTTL", self.max_token_ttl, MAX_TOKEN_TTL),
        ):
            if value < self.min_ttl:
                raise ConfigError(
                    where,
                    f"{format_duration(value)} is below minTTL {format_duration(self.min_ttl)}",
                )
            if value > ceiling:
                raise ConfigError(
                    where,
                    f"{format_duration(value)} exceeds {format_duration(ceiling)}, the longest "
                    "the API accepts",
                )
        if self.ca_lifetime < LIFETIME_TO_MAX_LEAF_TTL * self.max_x509_ttl:
            raise ConfigError(
                "caLifetime",
                f"must be at least {LIFETIME_TO_MAX_LEAF_TTL} x maxX509TTL "
                f"({format_duration(LIFETIME_TO_MAX_LEAF_TTL * self.max_x509_ttl)}), so CA "
                f"rotation never cuts a certificate short; got {format_duration(self.ca_lifetime)}",
            )

    def _check_rotation(self) -> None:
        fraction = _number(self.rotation_fraction, "rotation.fraction")
        jitter = _number(self.rotation_jitter, "rotation.jitter")
        if not 0 < fraction < 1:
            raise ConfigError(
                "rotation.fraction", f"must be strictly between 0 and 1, got {fraction}"
            )
        if not 0 <= jitter < 1:
            raise ConfigError("rotation.jitter", f"must be at least 0 and below 1, got {jitter}")
        object.__setattr__(self, "rotation_fraction", fraction)
        object.__setattr__(self, "rotation_jitter", jitter)
        if fraction * (1 + jitter) >= 1:
            # The latest renewal would fall at or after expiry: the credential could lapse.
            raise ConfigError(
                "rotation.jitter",
                "fraction x (1 + jitter) must be below 1, or renewal could fall after expiry",
            )


# --- loading ----------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys: the last one would silently win."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    line = key_node.start_mark.line + 1
                    raise ConfigError(key_node.value, f"duplicate key at line {line}")
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _object(value: object, where: str, known: tuple[str, ...]) -> dict[str, Any]:
    """A YAML mapping with only ``known`` keys; absent or null is ``{}``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(where or "config", f"must be a mapping, got {type(value).__name__}")
    for key in value:
        path = f"{where}.{key}" if where else str(key)
        if not isinstance(key, str):
            raise ConfigError(path, "keys must be strings")
        if key not in known:
            raise ConfigError(path, f"unknown key; known keys here: {', '.join(known)}")
    return {key: item for key, item in value.items() if item is not None}


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _string(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = doc[key]
    if not isinstance(value, str):
        raise ConfigError(_join(where, key), f"must be a string, got {type(value).__name__}")
    return value


def _required(doc: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in doc:
        raise ConfigError(_join(where, key), "is required")
    return doc[key]


def _duration(
    doc: Mapping[str, Any], key: str, where: str, *, allow_zero: bool = False
) -> timedelta:
    with _within(None):
        return parse_duration(doc[key], field=_join(where, key), allow_zero=allow_zero)


def _list(doc: Mapping[str, Any], key: str, where: str, what: str) -> tuple[Any, ...]:
    """A YAML list, as a tuple; its items are checked by ``AdminConfig`` itself."""
    if not isinstance(doc[key], list):
        raise ConfigError(_join(where, key), f"must be a list of {what}")
    return tuple(doc[key])


def _path(doc: Mapping[str, Any], key: str, where: str) -> Path | None:
    if key not in doc:
        return None
    text = _string(doc, key, where)
    if not text:
        raise ConfigError(_join(where, key), "must be a non-empty file path")
    return Path(PurePosixPath(text))


def _parse_auth(value: object, where: str) -> VaultAuth:
    doc = _object(
        value,
        where,
        (
            "method",
            "tokenFile",
            "roleID",
            "secretIDFile",
            "role",
            "mount",
            "serviceAccountTokenFile",
        ),
    )
    _required(doc, "method", where)
    method_name = _string(doc, "method", where)
    try:
        method = VaultAuthMethod(method_name)
    except ValueError:
        raise ConfigError(
            f"{where}.method",
            f"unknown method {method_name!r}; one of {', '.join(m.value for m in VaultAuthMethod)}",
        ) from None
    strings = {key: _string(doc, key, where) for key in ("roleID", "role", "mount") if key in doc}
    with _within(where):
        return VaultAuth(
            method=method,
            token_file=_path(doc, "tokenFile", where),
            role_id=strings.get("roleID"),
            secret_id_file=_path(doc, "secretIDFile", where),
            role=strings.get("role"),
            mount=strings.get("mount"),
            service_account_token_file=_path(doc, "serviceAccountTokenFile", where),
        )


def _signer_type(doc: Mapping[str, Any], where: str, types: tuple[str, ...]) -> str:
    _required(doc, "type", where)
    kind = _string(doc, "type", where)
    if kind not in types:
        raise ConfigError(f"{where}.type", f"unknown type {kind!r}; one of {', '.join(types)}")
    return kind


def _parse_x509(value: object, where: str) -> LocalX509 | VaultPkiX509:
    if not isinstance(value, Mapping):
        raise ConfigError(where, "must be a mapping with a type (local or vaultPKI)")
    kind = _signer_type(value, where, ("local", "vaultPKI"))
    if kind == "local":
        _object(value, where, ("type",))
        return LocalX509()
    doc = _object(
        value,
        where,
        ("type", "address", "mount", "role", "auth", "caCertFile", "signVerbatim", "timeout"),
    )
    auth = _parse_auth(_required(doc, "auth", where), f"{where}.auth")
    verbatim = doc.get("signVerbatim", False)
    if not isinstance(verbatim, bool):
        raise ConfigError(f"{where}.signVerbatim", "must be true or false")
    options: dict[str, Any] = {}
    if "mount" in doc:
        options["mount"] = _string(doc, "mount", where)
    if "timeout" in doc:
        options["timeout"] = _duration(doc, "timeout", where)
    _required(doc, "address", where)
    _required(doc, "role", where)
    with _within(where):
        return VaultPkiX509(
            address=_string(doc, "address", where),
            role=_string(doc, "role", where),
            auth=auth,
            ca_cert_file=_path(doc, "caCertFile", where),
            sign_verbatim=verbatim,
            **options,
        )


def _parse_jwt(value: object, where: str) -> LocalJwt | VaultTransitJwt:
    if not isinstance(value, Mapping):
        raise ConfigError(where, "must be a mapping with a type (local or vaultTransit)")
    kind = _signer_type(value, where, ("local", "vaultTransit"))
    if kind == "local":
        doc = _object(value, where, ("type", "algorithm"))
        if "algorithm" not in doc:
            return LocalJwt()
        with _within(None):
            algorithm = JwtAlgorithm.parse(
                _string(doc, "algorithm", where), field=f"{where}.algorithm"
            )
        return LocalJwt(algorithm=algorithm)
    doc = _object(
        value, where, ("type", "address", "mount", "key", "auth", "caCertFile", "timeout")
    )
    auth = _parse_auth(_required(doc, "auth", where), f"{where}.auth")
    options: dict[str, Any] = {}
    if "mount" in doc:
        options["mount"] = _string(doc, "mount", where)
    if "timeout" in doc:
        options["timeout"] = _duration(doc, "timeout", where)
    _required(doc, "address", where)
    _required(doc, "key", where)
    with _within(where):
        return VaultTransitJwt(
            address=_string(doc, "address", where),
            key=_string(doc, "key", where),
            auth=auth,
            ca_cert_file=_path(doc, "caCertFile", where),
            **options,
        )


def _parse_vault_secrets(value: object) -> VaultSecrets:
    where = "vault"
    doc = _object(value, where, ("address", "auth", "mounts", "caCertFile", "timeout"))
    _required(doc, "address", where)
    auth = _parse_auth(_required(doc, "auth", where), f"{where}.auth")
    mounts = _required(doc, "mounts", where)
    if not isinstance(mounts, list) or not all(isinstance(m, str) for m in mounts):
        raise ConfigError(f"{where}.mounts", "must be a list of mount paths")
    options: dict[str, Any] = {}
    if "timeout" in doc:
        options["timeout"] = _duration(doc, "timeout", where)
    with _within(where):
        return VaultSecrets(
            address=_string(doc, "address", where),
            auth=auth,
            mounts=tuple(mounts),
            ca_cert_file=_path(doc, "caCertFile", where),
            **options,
        )


def _parse_signers(value: object) -> Mapping[str, SignerConfig]:
    if not isinstance(value, Mapping):
        raise ConfigError("signers", f"must be a mapping, got {type(value).__name__}")
    signers: dict[str, SignerConfig] = {}
    for name, body in value.items():
        where = f"signers.{name}"
        if not is_dns1123_label(name):
            raise ConfigError(
                where, "signer names must be DNS-1123 labels (lower-case a-z, 0-9, '-')"
            )
        doc = _object(body, where, ("x509", "jwt"))
        # Both halves are required: a Vault signer whose JWT half silently fell back to a
        # local key would publish keys nobody expected.
        x509 = _parse_x509(_required(doc, "x509", where), f"{where}.x509")
        jwt = _parse_jwt(_required(doc, "jwt", where), f"{where}.jwt")
        signers[name] = SignerConfig(name=name, x509=x509, jwt=jwt)
    return signers


_TOP_LEVEL = (
    "trustDomain",
    "jwtIssuer",
    "operatorNamespace",
    "watchNamespaces",
    "signers",
    "skew",
    "rotation",
    "minTTL",
    "maxX509TTL",
    "maxJwtTTL",
    "maxTokenTTL",
    "caLifetime",
    "rolloverPublishDelay",
    "rateLimits",
    "http",
    "logLevel",
    "revocationConfigMap",
    "revocationShards",
    "trustConfigMap",
    "localCASecret",
    "vault",
    "leaderElection",
)


def _build(document: object) -> AdminConfig:
    doc = _object(document, "", _TOP_LEVEL)
    rotation = _object(doc.get("rotation"), "rotation", ("fraction", "jitter"))
    limits = _object(
        doc.get("rateLimits"),
        "rateLimits",
        (
            "issuancePerSecond",
            "issuanceBurst",
            "maxInflightWrites",
            "introspectionPerSecond",
            "introspectionBurst",
        ),
    )
    http = _object(doc.get("http"), "http", ("host", "port", "metricsPort", "tls"))
    tls = _object(
        http.get("tls"),
        "http.tls",
        ("mode", "certFile", "keyFile", "serviceName", "dnsNames"),
    )
    election = _object(
        doc.get("leaderElection"),
        "leaderElection",
        ("enabled", "leaseDuration", "renewDeadline", "retryPeriod"),
    )
    if "trustDomain" not in doc:
        raise ConfigError(
            "trustDomain",
            "is required: the SPIFFE trust domain (set trustDomain or WIO_TRUST_DOMAIN)",
        )
    if "jwtIssuer" not in doc:
        raise ConfigError(
            "jwtIssuer",
            "is required: the https URL verifiers reach the operator at, the iss of every JWT "
            "(set jwtIssuer or WIO_JWT_ISSUER)",
        )
    trust_domain = _string(doc, "trustDomain", "")
    with _within(None):
        parsed_domain = TrustDomain.parse(trust_domain, field="trustDomain")
    options: dict[str, Any] = {}
    durations = {
        "skew": "skew",
        "minTTL": "min_ttl",
        "maxX509TTL": "max_x509_ttl",
        "maxJwtTTL": "max_jwt_ttl",
        "maxTokenTTL": "max_token_ttl",
        "caLifetime": "ca_lifetime",
        "rolloverPublishDelay": "rollover_publish_delay",
    }
    for key, attribute in durations.items():
        if key in doc:
            options[attribute] = _duration(
                doc, key, "", allow_zero=key in ("skew", "rolloverPublishDelay")
            )
    strings = {
        "operatorNamespace": "operator_namespace",
        "logLevel": "log_level",
        "revocationConfigMap": "revocation_configmap",
        "trustConfigMap": "trust_configmap",
        "localCASecret": "local_ca_secret",
    }
    for key, attribute in strings.items():
        if key in doc:
            options[attribute] = _string(doc, key, "")
    if "watchNamespaces" in doc:
        options["watch_namespaces"] = _list(doc, "watchNamespaces", "", "namespace names")
    if "signers" in doc:
        options["signers"] = _parse_signers(doc["signers"])
    if "vault" in doc:
        options["vault"] = _parse_vault_secrets(doc["vault"])
    nested: tuple[tuple[Mapping[str, Any], str, str], ...] = (
        (rotation, "fraction", "rotation_fraction"),
        (rotation, "jitter", "rotation_jitter"),
        (limits, "issuancePerSecond", "issuance_rate"),
        (limits, "issuanceBurst", "issuance_burst"),
        (limits, "maxInflightWrites", "max_inflight_writes"),
        (limits, "introspectionPerSecond", "introspection_rate"),
        (limits, "introspectionBurst", "introspection_burst"),
        (http, "port", "http_port"),
        (http, "metricsPort", "metrics_port"),
        (doc, "revocationShards", "revocation_shards"),
    )
    for group, key, attribute in nested:
        if key in group:
            options[attribute] = group[key]  # types are checked by AdminConfig itself
    if "host" in http:
        options["http_host"] = _string(http, "host", "http")
    for key, attribute in (("mode", "tls_mode"), ("serviceName", "tls_service_name")):
        if key in tls:
            options[attribute] = _string(tls, key, "http.tls")
    for key, attribute in (("certFile", "tls_cert_file"), ("keyFile", "tls_key_file")):
        options[attribute] = _path(tls, key, "http.tls")
    if "dnsNames" in tls:
        options["tls_dns_names"] = _list(tls, "dnsNames", "http.tls", "DNS names")
    if "enabled" in election:
        if not isinstance(election["enabled"], bool):
            raise ConfigError("leaderElection.enabled", "must be true or false")
        options["leader_election"] = election["enabled"]
    for key, attribute in (
        ("leaseDuration", "lease_duration"),
        ("renewDeadline", "lease_renew_deadline"),
        ("retryPeriod", "lease_retry_period"),
    ):
        if key in election:
            options[attribute] = _duration(election, key, "leaderElection")
    return AdminConfig(
        trust_domain=parsed_domain,
        jwt_issuer=_string(doc, "jwtIssuer", ""),
        **options,
    )


def _port(text: str, name: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ConfigError(name, f"must be a port number, got {text!r}")
    return int(text)


def _namespaces(text: str, name: str) -> list[str]:
    names = [part.strip() for part in text.split(",")]
    for index, part in enumerate(names):
        if not part:
            raise ConfigError(name, f"has an empty namespace name at position {index + 1}")
    return names


_ENV: tuple[tuple[str, tuple[str, ...], Callable[[str, str], object]], ...] = (
    ("WIO_TRUST_DOMAIN", ("trustDomain",), lambda text, _: text),
    ("WIO_JWT_ISSUER", ("jwtIssuer",), lambda text, _: text),
    ("WIO_OPERATOR_NAMESPACE", ("operatorNamespace",), lambda text, _: text),
    ("WIO_WATCH_NAMESPACES", ("watchNamespaces",), _namespaces),
    ("WIO_LOG_LEVEL", ("logLevel",), lambda text, _: text),
    ("WIO_HTTP_PORT", ("http", "port"), _port),
    ("WIO_METRICS_PORT", ("http", "metricsPort"), _port),
    ("WIO_MIN_TTL", ("minTTL",), lambda text, _: text),
)
ENV_OVERRIDES: tuple[str, ...] = tuple(name for name, _, _ in _ENV)
"""The environment variables that override single configuration values."""


def parse_config(document: object, env: Mapping[str, str]) -> AdminConfig:
    """Build the configuration from a parsed YAML document (or ``None``) and ``env``.

    Pure: no file or process-environment access; ``load_config`` does that.
    """
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise ConfigError("config", f"must be a mapping, got {type(document).__name__}")
    merged: dict[str, Any] = dict(document)
    overridden: dict[str, str] = {}
    for name, path, convert in _ENV:
        text = env.get(name, "")
        if not text:
            continue
        value = convert(text, name)
        target = merged
        for key in path[:-1]:
            inner = target.get(key)
            if inner is not None and not isinstance(inner, Mapping):
                raise ConfigError(key, f"must be a mapping, got {type(inner).__name__}")
            target[key] = dict(inner or {})
            target = target[key]
        target[path[-1]] = value
        overridden[".".join(path)] = name
    try:
        return _build(merged)
    except ConfigError as err:
        for path_text, name in overridden.items():
            if err.field == path_text or err.field.startswith((f"{path_text}[", f"{path_text}.")):
                raise ConfigError(err.field, f"{_detail(err)} (set by {name})") from err
        raise


def load_config(path: str | None, env: Mapping[str, str]) -> AdminConfig:
    """Read the YAML file at ``path`` (or none), apply ``env`` overrides, validate."""
    document: object = None
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as err:
            raise ConfigError(path, f"cannot read the configuration file: {err.strerror}") from err
        try:
            document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(path, f"not valid YAML{where}") from err
    return parse_config(document, env)
