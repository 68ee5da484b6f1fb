# SPDX-License-Identifier: Apache-2.0
"""Shared Vault/OpenBao plumbing for the PKI and Transit backends.

- ``VaultConnection``: the typed admin configuration (address, TLS trust, namespace,
  timeout, concurrency, and one of three auth methods: ``TokenAuth``, ``AppRoleAuth``,
  ``KubernetesAuth``).
- ``VaultClient``: one authenticated hvac client and a bounded thread pool. hvac and
  requests are synchronous, so every call runs in that pool via ``loop.run_in_executor``
  and never on the event loop; the pool size bounds the requests in flight to Vault.
  Tokens from AppRole and Kubernetes logins are renewed by logging in again, early
  (at ``RELOGIN_AT_FRACTION`` of their TTL) or late (when a call answers 401/403: the
  token may have been revoked), once per call.
- ``map_vault_error``: the one place where hvac and requests exceptions become ours.
  Connection failures, timeouts, 5xx (sealed, standby, overloaded), 412 and 429 are
  ``SignerUnavailable`` (with ``retry_after`` from ``Retry-After``); other 4xx, including
  403 after a fresh login, are ``SignerRejected``. Messages name only the operation, the
  mount or role and the status code: never response bodies, tokens, CSRs or certificates.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import functools
import ipaddress
import re
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import hvac
import hvac.adapters
import hvac.exceptions
import requests
import requests.adapters
from cryptography import x509

from wio.clock import Clock, SystemClock
from wio.errors import ConfigError, SignerRejected, SignerUnavailable, WioError

T = TypeVar("T")

DEFAULT_SA_TOKEN_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
"""Where Kubernetes mounts the pod's own (projected, rotated) service-account token."""

DEFAULT_TIMEOUT = 10.0
"""Seconds per HTTP request: well above a healthy Vault's milliseconds, well below the
rotation slack (half a certificate's life), so a hung server becomes a retry, not a stall."""

DEFAULT_MAX_CONCURRENCY = 8
"""Requests in flight to Vault at once (threads in the pool, connections in the pool)."""

RELOGIN_AT_FRACTION = 0.8
"""Log in again once this fraction of a token's TTL has passed, before it can expire."""

MAX_RETRY_AFTER = 3600.0
"""Cap on an honoured ``Retry-After``, in seconds: a misconfigured proxy cannot park us."""

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_MOUNT = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")


def check_mount(value: str, field: str) -> str:
    """A mount path like ``pki`` or ``teams/pki``: no empty or dot segments, no slashes at
    the ends, so a configured name can never address another path."""
    if not isinstance(value, str) or not _MOUNT.fullmatch(value):
        raise ConfigError(field, "must be a mount path of [A-Za-z0-9_.-] segments joined by '/'")
    if any(segment in (".", "..") for segment in value.split("/")):
        raise ConfigError(field, "must not contain '.' or '..' segments")
    return value


def check_name(value: str, field: str) -> str:
    """A role or key name: one path segment."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value in (".", ".."):
        raise ConfigError(field, "must be one path segment of [A-Za-z0-9_.-]")
    return value


def api_path(*segments: str) -> str:
    """``/v1/<segments>``, each already validated, percent-quoted for good measure."""
    return "/v1/" + "/".join(quote(s, safe="/") for s in segments)


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class TokenAuth:
    """A static token (for development, or a token managed by an agent outside wio).

    It cannot be renewed here: when Vault refuses it, calls fail with ``SignerRejected``.
    """

    token: str = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or not self.token.strip():
            raise ConfigError("vault.auth.token", "must be a non-empty string")


@dataclass(frozen=True)
class AppRoleAuth:
    """The AppRole method: ``role_id`` plus ``secret_id``, posted to ``auth/<mount>/login``.

    Every re-login spends one use of the secret ID; give the secret ID enough uses (or
    none as limit) for a token TTL of your choosing.
    """

    role_id: str
    secret_id: str = field(repr=False)
    mount: str = "approle"

    def __post_init__(self) -> None:
        if not isinstance(self.role_id, str) or not self.role_id:
            raise ConfigError("vault.auth.appRole.roleID", "must be a non-empty string")
        if not isinstance(self.secret_id, str) or not self.secret_id:
            raise ConfigError("vault.auth.appRole.secretID", "must be a non-empty string")
        check_mount(self.mount, "vault.auth.appRole.mount")


@dataclass(frozen=True)
class KubernetesAuth:
    """The Kubernetes method: the operator's own service-account token, read from
    ``token_path`` at every login (projected tokens rotate), posted with ``role``."""

    role: str
    mount: str = "kubernetes"
    token_path: Path = DEFAULT_SA_TOKEN_PATH

    def __post_init__(self) -> None:
        check_name(self.role, "vault.auth.kubernetes.role")
        check_mount(self.mount, "vault.auth.kubernetes.mount")
        if not isinstance(self.token_path, Path):
            raise ConfigError("vault.auth.kubernetes.tokenPath", "must be a Path")


VaultAuth = TokenAuth | AppRoleAuth | KubernetesAuth


@dataclass(frozen=True)
class VaultConnection:
    """How to reach and authenticate to one Vault or OpenBao server.

    TLS trust is the system store unless ``ca_cert_file`` or ``ca_cert_pem`` names the
    CA (at most one). Plain ``http://`` is refused except on loopback, because the
    token would cross the network in clear; ``allow_plain_http`` overrides that for
    a sidecar or a mesh that encrypts for us.
    """

    address: str
    auth: VaultAuth = field(repr=False)
    ca_cert_file: Path | None = None
    ca_cert_pem: str | None = field(default=None, repr=False)
    namespace: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    allow_plain_http: bool = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.address) if isinstance(self.address, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("vault.address", "must be an http:// or https:// URL with a host")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ConfigError("vault.address", "must not carry a path, query or credentials")
        if parts.scheme == "http" and not self.allow_plain_http and not _loopback(parts.hostname):
            raise ConfigError("vault.address", "plain http is only allowed on loopback; use https")
        if not isinstance(self.auth, TokenAuth | AppRoleAuth | KubernetesAuth):
            raise ConfigError("vault.auth", "must be TokenAuth, AppRoleAuth or KubernetesAuth")
        if self.ca_cert_file is not None and self.ca_cert_pem is not None:
            raise ConfigError("vault.caCert", "give a CA file or CA PEM, not both")
        if self.ca_cert_pem is not None:
            try:
                x509.load_pem_x509_certificates(self.ca_cert_pem.encode("ascii"))
            except (ValueError, UnicodeEncodeError) as err:
                raise ConfigError("vault.caCert", "not a PEM certificate bundle") from err
        if self.namespace is not None:
            check_mount(self.namespace, "vault.namespace")
        if not 0 < self.timeout <= 300:
            raise ConfigError("vault.timeout", "must be between 0 and 300 seconds")
        if not 1 <= self.max_concurrency <= 256:
            raise ConfigError("vault.maxConcurrency", "must be between 1 and 256")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- errors


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if now is None or when.tzinfo is None:
        return None
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER)


_STATUS_OF: dict[type[Exception], int] = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.PreconditionFailed: 412,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


def map_vault_error(
    err: BaseException, *, operation: str, target: str, now: dt.datetime | None = None
) -> WioError:
    """Translate an hvac/requests exception from ``operation`` on ``target`` into ours.

    ``target`` names a mount, role or key (``pki/sign/svid``), never a URL with secrets.
    ``now`` resolves an HTTP-date ``Retry-After``.
    """
    where = f"Vault {operation} on {target}"
    if isinstance(err, WioError):
        return err
    if isinstance(err, hvac.exceptions.ParamValidationError):
        return SignerRejected(f"{where}: parameters refused by the client library")
    if isinstance(err, hvac.exceptions.VaultError):
        status = getattr(err, "wio_status", None) or _STATUS_OF.get(type(err))
        retry_after = parse_retry_after(getattr(err, "wio_retry_after", None), now)
        if status is None:
            return SignerUnavailable(f"{where}: unexpected response", retry_after=retry_after)
        if status == 429:
            return SignerUnavailable(f"{where}: HTTP 429 (rate limited)", retry_after=retry_after)
        if status == 503:
            return SignerUnavailable(
                f"{where}: HTTP 503 (sealed, in standby or overloaded)", retry_after=retry_after
            )
        if status >= 500:
            return SignerUnavailable(
                f"{where}: HTTP {status} (server error)", retry_after=retry_after
            )
        if status == 412:
            # Vault's answer when a performance standby has not caught up yet.
            return SignerUnavailable(
                f"{where}: HTTP 412 (not yet consistent)", retry_after=retry_after
            )
        if status in (401, 403):
            return SignerRejected(f"{where}: HTTP {status} (permission denied)")
        if status == 404:
            return SignerRejected(f"{where}: HTTP 404 (no such mount, role or key)")
        return SignerRejected(f"{where}: HTTP {status} (request refused)")
    if isinstance(err, requests.exceptions.SSLError):
        return SignerUnavailable(f"{where}: TLS handshake or certificate verification failed")
    if isinstance(err, requests.exceptions.Timeout):
        return SignerUnavailable(f"{where}: timed out")
    if isinstance(err, requests.exceptions.ConnectionError):
        return SignerUnavailable(f"{where}: cannot connect")
    if isinstance(err, requests.exceptions.RequestException):
        return SignerUnavailable(f"{where}: HTTP transport error ({type(err).__name__})")
    if isinstance(err, KeyError | TypeError | ValueError):
        return SignerUnavailable(f"{where}: malformed response")
    return SignerUnavailable(f"{where}: unexpected {type(err).__name__}")


def _scrub(err: BaseException) -> BaseException:
    """Drop the response body from an hvac error before it is chained to ours: a traceback
    in a log must not carry what Vault echoed back."""
    if isinstance(err, hvac.exceptions.VaultError):
        status = getattr(err, "wio_status", None) or _STATUS_OF.get(type(err), "?")
        err.args = (f"HTTP {status}",)
        err.errors = None
        err.text = None
        err.json = None
    return err


class _Adapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]
    """hvac's JSON adapter, plus the status code and ``Retry-After`` on its exceptions."""

    def _raise_for_error(self, method: str, url: str, response: requests.Response) -> None:
        try:
            super()._raise_for_error(method, url, response)
        except hvac.exceptions.VaultError as err:
            err.wio_status = response.status_code
            err.wio_retry_after = response.headers.get("Retry-After")
            raise


def response_data(result: Any) -> dict[str, Any]:
    """The ``data`` object of a JSON response; ``{}`` for 204 No Content."""
    if isinstance(result, requests.Response):
        if result.status_code == 204:
            return {}
        raise ValueError("response is not JSON")
    if not isinstance(result, dict):
        raise ValueError("response is not a JSON object")
    data = result.get("data")
    if not isinstance(data, dict):
        raise ValueError("response has no data object")
    return data


# ---------------------------------------------------------------- the client


class VaultClient:
    """An authenticated hvac client behind a bounded thread pool.

    Use ``read``/``write``/``list`` from async code; each runs in the pool, logs in first
    when needed, retries once after a fresh login on 401/403, and maps failures with
    ``map_vault_error``. ``close`` releases the pool and connections.
    """

    def __init__(self, connection: VaultConnection, *, clock: Clock | None = None) -> None:
        self.connection = connection
        self._clock: Clock = clock or SystemClock()
        self._ca_dir: tempfile.TemporaryDirectory[str] | None = None
        self._verify = self._tls_verify()
        self._session = requests.Session()
        # Proxies, netrc and REQUESTS_CA_BUNDLE from the environment would silently change
        # where our token goes and whom we trust; the connection config says it all.
        self._session.trust_env = False
        # hvac lets a session's own verify setting win over its argument; set it here.
        self._session.verify = self._verify
        pool = requests.adapters.HTTPAdapter(
            pool_connections=1, pool_maxsize=connection.max_concurrency
        )
        self._session.mount("http://", pool)
        self._session.mount("https://", pool)
        self._client = self._new_hvac_client()
        self._executor = ThreadPoolExecutor(
            max_workers=connection.max_concurrency, thread_name_prefix="wio-vault"
        )
        self._lock = threading.Lock()
        self._generation = 0
        self._logged_in = False
        self._relogin_at: dt.datetime | None = None
        self._login_count = 0
        self._accessor: str | None = None
        self._closed = False

    # -- public ------------------------------------------------------------------------

    @property
    def login_count(self) -> int:
        """How many times credentials were established (a metric, and a test handle)."""
        return self._login_count

    @property
    def token_accessor(self) -> str | None:
        """The accessor of the current login token (not a credential; None for TokenAuth)."""
        return self._accessor

    async def read(self, operation: str, target: str, path: str) -> dict[str, Any]:
        """GET ``path`` and return its ``data``."""
        return await self.call(operation, target, lambda c: response_data(c.adapter.get(path)))

    async def list(self, operation: str, target: str, path: str) -> dict[str, Any]:
        """LIST ``path`` and return its ``data``."""
        return await self.call(operation, target, lambda c: response_data(c.adapter.list(path)))

    async def write(
        self, operation: str, target: str, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """POST ``body`` to ``path`` and return its ``data``."""
        return await self.call(
            operation, target, lambda c: response_data(c.adapter.post(path, json=body))
        )

    async def call(self, operation: str, target: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(hvac_client)`` in the pool, authenticated; failures become ``WioError``."""
        if self._closed:
            raise SignerUnavailable(f"Vault {operation} on {target}: client is closed")
        loop = asyncio.get_running_loop()
        bound = functools.partial(self._call_sync, operation, target, fn)
        try:
            return await loop.run_in_executor(self._executor, bound)
        except RuntimeError as err:  # the pool was shut down under us
            raise SignerUnavailable(f"Vault {operation} on {target}: client is closed") from err

    def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._session.close()
        if self._ca_dir is not None:
            self._ca_dir.cleanup()
            self._ca_dir = None

    async def __aenter__(self) -> VaultClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- in the pool -------------------------------------------------------------------

    def _call_sync(self, operation: str, target: str, fn: Callable[[Any], T]) -> T:
        try:
            generation = self._ensure_login()
            try:
                return fn(self._client)
            except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
                if isinstance(self.connection.auth, TokenAuth):
                    raise
                # The token may have expired early or been revoked: log in once more and
                # retry; a second refusal is a real "permission denied".
                self._relogin(generation)
                return fn(self._client)
        except WioError:
            raise
        except Exception as err:
            mapped = map_vault_error(err, operation=operation, target=target, now=self._clock.now())
            raise mapped from _scrub(err)

    def _ensure_login(self) -> int:
        with self._lock:
            due = self._relogin_at is not None and self._clock.now() >= self._relogin_at
            if not self._logged_in or due:
                self._login_locked()
            return self._generation

    def _relogin(self, seen_generation: int) -> None:
        with self._lock:
            # Another thread may have logged in while we waited for the lock.
            if self._generation == seen_generation:
                self._login_locked()

    def _login_locked(self) -> None:
        auth = self.connection.auth
        now = self._clock.now()
        if isinstance(auth, TokenAuth):
            self._client.token = auth.token
            self._finish_login(now, lease_seconds=0, accessor=None)
            return
        target = f"auth/{auth.mount}"
        # Log in on a token-less client: a stale token must not ride along with the login.
        login_client = self._new_hvac_client()
        try:
            if isinstance(auth, AppRoleAuth):
                response = login_client.auth.approle.login(
                    role_id=auth.role_id, secret_id=auth.secret_id, mount_point=auth.mount
                )
            else:
                target = f"auth/{auth.mount} role {auth.role}"
                jwt = self._read_sa_token(auth)
                response = login_client.auth.kubernetes.login(
                    auth.role, jwt, mount_point=auth.mount
                )
            token = response["auth"]["client_token"]
            lease = int(response["auth"].get("lease_duration") or 0)
            accessor = response["auth"].get("accessor")
        except WioError:
            raise
        except Exception as err:
            mapped = map_vault_error(err, operation="login", target=target, now=now)
            raise mapped from _scrub(err)
        if not isinstance(token, str) or not token:
            raise SignerUnavailable(f"Vault login on {target}: malformed response")
        self._client.token = token
        self._finish_login(now, lease, accessor if isinstance(accessor, str) else None)

    def _finish_login(self, now: dt.datetime, lease_seconds: int, accessor: str | None) -> None:
        self._relogin_at = (
            now + dt.timedelta(seconds=lease_seconds * RELOGIN_AT_FRACTION)
            if lease_seconds > 0
            else None
        )
        self._accessor = accessor
        self._logged_in = True
        self._generation += 1
        self._login_count += 1

    @staticmethod
    def _read_sa_token(auth: KubernetesAuth) -> str:
        try:
            jwt = auth.token_path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(
                "vault.auth.kubernetes.tokenPath",
                f"cannot read the service-account token file {auth.token_path}",
            ) from err
        if not jwt:
            raise ConfigError("vault.auth.kubernetes.tokenPath", f"{auth.token_path} is empty")
        return jwt

    def _new_hvac_client(self) -> Any:
        # token="" rather than None: hvac would otherwise pick up VAULT_TOKEN or
        # ~/.vault-token from the environment.
        return hvac.Client(
            url=self.connection.address.rstrip("/"),
            token="",
            verify=self._verify,
            timeout=self.connection.timeout,
            namespace=self.connection.namespace,
            session=self._session,
            adapter=_Adapter,
        )

    def _tls_verify(self) -> bool | str:
        conn = self.connection
        if conn.ca_cert_file is not None:
            if not conn.ca_cert_file.is_file():
                raise ConfigError("vault.caCertFile", f"{conn.ca_cert_file} is not a file")
            return str(conn.ca_cert_file)
        if conn.ca_cert_pem is not None:
            # requests takes CA bundles by path only; a private temp dir holds the PEM
            # (public certificates) for the life of this client.
            self._ca_dir = tempfile.TemporaryDirectory(prefix="wio-vault-ca-")
            path = Path(self._ca_dir.name) / "ca.pem"
            path.write_text(conn.ca_cert_pem, encoding="ascii")
            return str(path)
        return True
