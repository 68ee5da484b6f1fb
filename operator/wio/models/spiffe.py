# SPDX-License-Identifier: Apache-2.0
"""SPIFFE IDs and trust domains, parsed and validated by the SPIFFE-ID specification.

The parser is hand-written rather than built on ``urllib.parse``: a general URI
parser normalises and forgives (``..`` segments, percent-encoding, upper-case
hosts), and every forgiveness is a way to make two different strings name the
same workload. Here a string is either exactly a SPIFFE ID or refused with a
message that says what is wrong and where.

Rules (SPIFFE-ID.md sections 2 and 2.3):

- scheme ``spiffe``, lower case, followed by ``://``;
- trust domain of ``[a-z0-9._-]``, 1 to 255 characters; no userinfo, no port;
- path of ``/``-separated segments of ``[A-Za-z0-9._-]``; no empty, ``.`` or
  ``..`` segment and no trailing ``/``;
- no query, fragment or percent-encoding; at most 2048 bytes in all.
"""

from __future__ import annotations

from dataclasses import dataclass

from wio.errors import InvalidSpiffeID

SCHEME = "spiffe"
SCHEME_PREFIX = "spiffe://"
MAX_ID_BYTES = 2048
MAX_TRUST_DOMAIN_CHARS = 255

TRUST_DOMAIN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")
PATH_SEGMENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


def _check_trust_domain(name: str, field: str) -> None:
    """Raise ``InvalidSpiffeID`` unless ``name`` is a valid trust domain name."""
    if not name:
        raise InvalidSpiffeID(field, "trust domain is empty")
    if len(name) > MAX_TRUST_DOMAIN_CHARS:
        raise InvalidSpiffeID(
            field,
            f"trust domain is {len(name)} characters long; the maximum is {MAX_TRUST_DOMAIN_CHARS}",
        )
    # Name the delimiters the URI grammar gives meaning to: "a port is not
    # allowed" helps more than "':' is not an allowed character".
    if "@" in name:
        raise InvalidSpiffeID(field, "trust domain must not contain userinfo ('@')")
    if ":" in name:
        raise InvalidSpiffeID(field, "trust domain must not contain a port (':')")
    for index, char in enumerate(name):
        if char in TRUST_DOMAIN_CHARS:
            continue
        if char.isascii() and char.isupper():
            raise InvalidSpiffeID(
                field,
                f"trust domain must be lower case: {char!r} at position {index}",
            )
        raise InvalidSpiffeID(
            field,
            f"trust domain contains {char!r} at position {index}; "
            "only a-z, 0-9, '.', '-' and '_' are allowed",
        )


def _check_path(path: str, field: str) -> None:
    """Raise ``InvalidSpiffeID`` unless ``path`` is empty or a valid SPIFFE ID path."""
    if not path:
        return
    if not path.startswith("/"):
        raise InvalidSpiffeID(field, "path must start with '/'")
    segments = path[1:].split("/")
    last = len(segments) - 1
    for number, segment in enumerate(segments):
        if not segment:
            if number == last:
                raise InvalidSpiffeID(field, "path must not end with '/'")
            raise InvalidSpiffeID(field, "path must not contain an empty segment ('//')")
        if segment in (".", ".."):
            raise InvalidSpiffeID(
                field, f"path must not contain a {segment!r} segment (dot segments)"
            )
        for char in segment:
            if char not in PATH_SEGMENT_CHARS:
                raise InvalidSpiffeID(
                    field,
                    f"path segment {segment!r} contains {char!r}; "
                    "only A-Z, a-z, 0-9, '.', '-' and '_' are allowed",
                )


@dataclass(frozen=True, order=True)
class TrustDomain:
    """A SPIFFE trust domain name such as ``example.org`` (no scheme)."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise InvalidSpiffeID("trustDomain", "trust domain must be a string")
        _check_trust_domain(self.name, "trustDomain")

    @classmethod
    def parse(cls, value: str, *, field: str = "trustDomain") -> TrustDomain:
        """Accept ``example.org`` or its trust domain ID ``spiffe://example.org``."""
        if not isinstance(value, str):
            raise InvalidSpiffeID(field, "trust domain must be a string")
        if "://" in value:
            spiffe_id = SpiffeID.parse(value, field=field)
            if spiffe_id.path:
                raise InvalidSpiffeID(
                    field, "a trust domain ID must not have a path; got a workload SPIFFE ID"
                )
            return spiffe_id.trust_domain
        _check_trust_domain(value, field)
        return cls(value)

    def id(self) -> SpiffeID:
        """The trust domain's own SPIFFE ID, ``spiffe://<name>``: what a CA carries."""
        return SpiffeID(self, "")

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, order=True)
class SpiffeID:
    """A SPIFFE ID: a trust domain and a path that is empty or ``/seg/seg...``.

    ``str()`` gives the URI form. Construct with ``SpiffeID.parse`` or
    ``SpiffeID.for_workload``; direct construction validates the same rules.
    """

    trust_domain: TrustDomain
    path: str

    def __post_init__(self) -> None:
        if not isinstance(self.trust_domain, TrustDomain):
            raise InvalidSpiffeID("spiffeID", "trust_domain must be a TrustDomain")
        if not isinstance(self.path, str):
            raise InvalidSpiffeID("spiffeID", "path must be a string")
        _check_path(self.path, "spiffeID")
        size = len(SCHEME_PREFIX) + len(self.trust_domain.name) + len(self.path.encode())
        if size > MAX_ID_BYTES:
            raise InvalidSpiffeID(
                "spiffeID", f"SPIFFE ID is {size} bytes long; the maximum is {MAX_ID_BYTES}"
            )

    @classmethod
    def parse(cls, value: str, *, field: str = "spiffeID") -> SpiffeID:
        """Parse the URI form; refuse anything that is not exactly a SPIFFE ID."""
        if not isinstance(value, str):
            raise InvalidSpiffeID(field, "SPIFFE ID must be a string")
        if not value:
            raise InvalidSpiffeID(field, "SPIFFE ID is empty")
        size = len(value.encode("utf-8", errors="surrogatepass"))
        if size > MAX_ID_BYTES:
            raise InvalidSpiffeID(
                field, f"SPIFFE ID is {size} bytes long; the maximum is {MAX_ID_BYTES}"
            )
        scheme, sep, rest = value.partition("://")
        if not sep:
            raise InvalidSpiffeID(field, "SPIFFE ID must start with 'spiffe://'")
        if scheme != SCHEME:
            if scheme.lower() == SCHEME:
                raise InvalidSpiffeID(field, f"scheme must be lower case 'spiffe', got {scheme!r}")
            raise InvalidSpiffeID(field, f"scheme must be 'spiffe', got {scheme!r}")
        # These three change what the rest of the string means, so they are
        # named before any character-level complaint.
        if "?" in rest:
            raise InvalidSpiffeID(field, "SPIFFE ID must not contain a query ('?')")
        if "#" in rest:
            raise InvalidSpiffeID(field, "SPIFFE ID must not contain a fragment ('#')")
        if "%" in rest:
            raise InvalidSpiffeID(field, "SPIFFE ID must not contain percent-encoding ('%')")
        authority, slash, path = rest.partition("/")
        if not authority:
            raise InvalidSpiffeID(field, "trust domain is missing")
        _check_trust_domain(authority, field)
        path = slash + path
        _check_path(path, field)
        return cls(TrustDomain(authority), path)

    @classmethod
    def for_workload(
        cls, trust_domain: TrustDomain | str, namespace: str, service_account: str
    ) -> SpiffeID:
        """The Kubernetes workload ID ``spiffe://<td>/ns/<namespace>/sa/<service_account>``."""
        td = trust_domain if isinstance(trust_domain, TrustDomain) else TrustDomain(trust_domain)
        for name, value in (("namespace", namespace), ("serviceAccountName", service_account)):
            if not isinstance(value, str) or not value:
                raise InvalidSpiffeID(name, f"{name} must be a non-empty string")
            if "/" in value:
                raise InvalidSpiffeID(name, f"{name} must not contain '/'")
            _check_path("/" + value, name)
        return cls(td, f"/ns/{namespace}/sa/{service_account}")

    @property
    def is_trust_domain_id(self) -> bool:
        """True for ``spiffe://td`` itself: a CA's ID, never a leaf's (X509-SVID 3.1)."""
        return not self.path

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path[1:].split("/")) if self.path else ()

    def member_of(self, trust_domain: TrustDomain) -> bool:
        return self.trust_domain == trust_domain

    def __str__(self) -> str:
        return f"{SCHEME_PREFIX}{self.trust_domain.name}{self.path}"


def namespace_of(spiffe_id: object) -> str | None:
    """The namespace a workload SPIFFE ID (``spiffe://td/ns/<ns>/sa/<sa>``) names, else None."""
    if not isinstance(spiffe_id, str) or not spiffe_id.startswith(SCHEME_PREFIX):
        return None
    parts = spiffe_id[len(SCHEME_PREFIX) :].split("/")
    if len(parts) == 5 and parts[1] == "ns" and parts[3] == "sa" and parts[2] and parts[4]:
        return parts[2]
    return None
