# SPDX-License-Identifier: Apache-2.0
"""The one exception tree of wio, split by whether a retry can help.

    WioError
    ├── RetryableError              a later attempt may succeed; carries ``retry_after`` seconds
    │   ├── SignerUnavailable       the signer (local CA, Vault/OpenBao) cannot sign right now
    │   └── ApiUnavailable          the Kubernetes API refused or failed for a passing reason
    │       └── ApiConflict         409: someone else changed the object; retry from fresh state
    └── PermanentError              the same input will fail the same way; do not retry blindly
        ├── ConfigError             the operator's own admin configuration is invalid
        ├── ValidationError         a value (spec field, SPIFFE ID, key type...) is malformed;
        │   └── InvalidSpiffeID     carries ``field`` naming the offending path
        ├── PolicyDenied            an IdentityPolicy does not allow the request; names the field
        ├── SignerRejected          the signer refused the request itself (bad role, bad CSR)
        │   └── ForeignCredential   the credential named is another namespace's: not touched
        ├── ApiRejected             the Kubernetes API refused the request (403, 422...)
        │   └── ApiNotFound         404: the object does not exist
        ├── NameTaken               an object wio would write exists and is not wio's
        └── VerificationError       a credential failed verification; carries ``reason``
            ├── SVIDVerificationError
            └── JWTVerificationError

Library exceptions are wrapped at the boundary that calls the library
(``raise SignerUnavailable(...) from err``) and translated into Kopf's
``TemporaryError``/``PermanentError`` in exactly one place, the handlers layer.
No message in this tree may contain key material, certificate bodies or tokens.
"""

from __future__ import annotations


class WioError(Exception):
    """Base of every error wio raises on purpose."""


class RetryableError(WioError):
    """A later attempt may succeed.

    ``retry_after`` is a hint in seconds (for example from a 429 ``Retry-After``
    header); ``None`` lets the caller's backoff decide.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SignerUnavailable(RetryableError):
    """The signer cannot be reached or is sealed, overloaded or timing out."""


class ApiUnavailable(RetryableError):
    """The Kubernetes API failed in a way a retry can fix (5xx, 429, 409, timeouts)."""


class ApiConflict(ApiUnavailable):
    """409 Conflict: the object changed under us; re-read (or re-apply) and try again."""


class PermanentError(WioError):
    """The same input fails the same way; fix the input or configuration."""


class ConfigError(PermanentError):
    """The operator's admin configuration is invalid; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ValidationError(PermanentError):
    """A value is malformed; ``field`` is the path of the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class InvalidSpiffeID(ValidationError):
    """A SPIFFE ID or trust domain breaks the SPIFFE-ID specification."""


class PolicyDenied(PermanentError):
    """No IdentityPolicy allows the request; ``field`` names the first field refused."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class SignerRejected(PermanentError):
    """The signer understood the request and refused it (bad role, disallowed SAN...)."""


class ForeignCredential(SignerRejected):
    """The credential an object names (a serial to revoke upstream, say) was issued to a
    workload of another namespace: wio leaves it alone, and asking again changes nothing."""


class ApiRejected(PermanentError):
    """The Kubernetes API refused the request for a reason a retry will not fix.

    ``status`` is the HTTP status; the message carries the API server's own explanation,
    which never contains object data.
    """

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class ApiNotFound(ApiRejected):
    """404: the object (or its namespace) does not exist."""


class NameTaken(PermanentError):
    """An object wio would write (a credential Secret, a trust ConfigMap) already exists and
    was not created by wio for that purpose: wio never takes it over. The message names the
    field and, where known, the owner."""


class VerificationError(PermanentError):
    """A credential failed verification.

    ``reason`` is a stable machine-readable token (for example ``expired``,
    ``bad-signature``, ``revoked``) used in metrics labels and tests; the
    message is for humans.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class SVIDVerificationError(VerificationError):
    """An X.509-SVID or its chain broke the SVID profile or did not verify."""


class JWTVerificationError(VerificationError):
    """A JWT (JWT-SVID or access token) did not verify."""
