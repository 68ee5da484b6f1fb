# SPDX-License-Identifier: Apache-2.0
"""IdentityPolicy evaluation: may this WorkloadIdentity or ScopedCredential be issued?

Pure functions of the parsed spec, the namespace's labels and the policies; no I/O.

The rules (README, IdentityPolicy):

- The policies that apply are those whose ``namespaceSelector`` matches the namespace's labels
  (callers pass the labels as the API reports them, which include the automatic
  ``kubernetes.io/metadata.name``, so a selector can name a namespace).
- A request is allowed when ONE of them allows ALL of it. Grants are never merged across
  policies: two half-permissions do not make a whole one, so what is issued is always
  explained by a single object an admin can read.
- Within a policy, a field it leaves unset falls back to the built-in ``PolicyDefaults`` for
  that field (its TTL bounds, key types, audiences, signers). Token scopes, extra claims and
  Vault paths have no default: unset grants none. The caller passes the defaults in
  (``AdminConfig.policy_defaults()`` builds them), so policy never reads the configuration.
- With no matching policy, a WorkloadIdentity is judged by the defaults alone (its own
  ``ns/<ns>/sa/<sa>`` ID, default TTL bounds and key types, no DNS names), and a
  ScopedCredential is denied.
- Denials name the offending field path and value and who set the limit. Among several
  matching policies the one with the fewest failures is reported (ties by name); when every
  matching policy refuses the same item, the message says "any IdentityPolicy".
- A bare ``*`` scope or Vault-path grant never matches anything, even if one got past
  validation (defence in depth: ``wio.models.resources`` already refuses it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import TypeVar

from wio.errors import ValidationError
from wio.models.duration import format_duration
from wio.models.limits import PolicyDefaults
from wio.models.resources import (
    IdentityPolicy,
    ScopedCredentialSpec,
    WorkloadIdentitySpec,
)

T = TypeVar("T")


# --- the decision -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The outcome: allowed or not; when not, the first offending ``field`` and why.

    ``policy`` names the IdentityPolicy that allowed the request, or the one whose refusal
    is reported; ``None`` when the built-in defaults decided. ``message`` is fit for a
    ``PolicyDenied`` condition and an Event: it holds field paths, names and durations,
    never credential material or claim values.
    """

    allowed: bool
    field: str | None
    message: str
    policy: str | None

    def __post_init__(self) -> None:
        if not isinstance(self.allowed, bool):
            raise ValidationError("allowed", "must be a bool")
        if not isinstance(self.message, str) or not self.message:
            raise ValidationError("message", "must be a non-empty string")
        if self.allowed and self.field is not None:
            raise ValidationError("field", "an allowed decision names no field")
        if not self.allowed and not self.field:
            raise ValidationError("field", "a denial must name the offending field")


# --- grant matching ---------------------------------------------------------------------------


def service_account_matches(pattern: str, name: str) -> bool:
    """Glob match: ``*`` any run of characters, ``?`` one; nothing else is special."""
    if "[" in pattern or "]" in pattern:
        return False  # fnmatch character classes are not part of our pattern language
    return fnmatchcase(name, pattern)


def dns_name_granted(grant: str, name: str) -> bool:
    """Exact match, or ``*.suffix`` granting ``<one label>.suffix``.

    A requested wildcard (``*.example.com``) is granted only by the identical wildcard
    grant, never by a broader one: a wildcard certificate is a bigger claim than a host.
    """
    if grant == name:
        return True
    if not grant.startswith("*.") or name.startswith("*."):
        return False
    label, dot, rest = name.partition(".")
    return bool(dot) and bool(label) and rest == grant[2:]


def scope_granted(grant: str, scope: str) -> bool:
    """Exact match, or ``prefix:*`` granting any scope that starts with ``prefix:``.

    A bare ``*`` never grants anything, nor is a scope containing ``*`` ever granted.
    """
    if grant == "*" or not grant or "*" in scope:
        return False
    if "*" not in grant:
        return grant == scope
    prefix = grant[:-1]
    if not grant.endswith(":*") or "*" in prefix or len(prefix) < 2:
        return False
    return scope.startswith(prefix) and len(scope) > len(prefix)


def vault_path_granted(grant: str, path: str) -> bool:
    """Exact match, or a grant ending in ``*`` granting every longer path with that prefix.

    ``database/creds/app-*`` grants ``database/creds/app-ro``; write ``secret/data/team/*``
    to stay within one path segment. A bare ``*`` never grants anything.
    """
    if grant == "*" or not grant or "*" in path:
        return False
    if "*" not in grant:
        return grant == path
    prefix = grant[:-1]
    if not grant.endswith("*") or "*" in prefix:
        return False
    return path.startswith(prefix) and len(path) > len(prefix)


def policies_affecting(
    namespace_labels: Mapping[str, str], policies: Sequence[IdentityPolicy]
) -> tuple[IdentityPolicy, ...]:
    """The policies whose ``namespaceSelector`` matches ``namespace_labels``, by name."""
    return tuple(
        sorted(
            (p for p in policies if p.namespace_selector.matches(namespace_labels)),
            key=lambda p: p.name,
        )
    )


# --- evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    """One refused field. ``item`` is set for "not granted" refusals, for the "any" wording."""

    field: str
    message: str
    item: str | None = None


@dataclass(frozen=True)
class _Judge:
    """Who decides: one matching policy (the defaults filling in), or the defaults alone."""

    policy: IdentityPolicy | None
    namespace: str
    defaults: PolicyDefaults

    def pick(
        self, get: Callable[[IdentityPolicy], T | None], default: T, grant_field: str
    ) -> tuple[T, str]:
        """The effective value of one grant field, and who set it (for messages)."""
        if self.policy is None:
            return default, (
                f"the built-in defaults (no IdentityPolicy matches namespace {self.namespace})"
            )
        value = get(self.policy)
        if value is None:
            return default, (
                f"the built-in defaults (IdentityPolicy {self.policy.name} does not set "
                f"{grant_field})"
            )
        return value, f"IdentityPolicy {self.policy.name}"

    @property
    def source(self) -> str:
        if self.policy is None:
            return f"the built-in defaults (no IdentityPolicy matches namespace {self.namespace})"
        return f"IdentityPolicy {self.policy.name}"


def _not_granted(where: str, item: str, source: str, hint: str = "") -> _Failure:
    return _Failure(where, f"{where}: {item} is not granted by {source}{hint}", item)


def _ttl_failures(
    where: str,
    ttl: timedelta,
    low: tuple[timedelta, str],
    high: tuple[timedelta, str],
) -> list[_Failure]:
    (minimum, low_source), (maximum, high_source) = low, high
    shown = format_duration(ttl)
    if ttl < minimum:
        return [
            _Failure(
                where,
                f"{where}: {shown} is below the minimum {format_duration(minimum)} "
                f"allowed by {low_source}",
            )
        ]
    if ttl > maximum:
        return [
            _Failure(
                where,
                f"{where}: {shown} exceeds the maximum {format_duration(maximum)} "
                f"allowed by {high_source}",
            )
        ]
    return []


def _service_account_failures(where: str, account: str, item: str, judge: _Judge) -> list[_Failure]:
    policy = judge.policy
    if policy is None or any(service_account_matches(p, account) for p in policy.service_accounts):
        return []
    patterns = ", ".join(policy.service_accounts) or "none"
    return [_not_granted(where, item, judge.source, f" (serviceAccounts: {patterns})")]


def _identity_failures(spec: WorkloadIdentitySpec, judge: _Judge) -> list[_Failure]:
    """Every refusal of ``spec`` by one judge, in the order of the spec's fields."""
    d = judge.defaults
    failures = _service_account_failures(
        "spec.serviceAccountName", spec.service_account, spec.service_account, judge
    )

    x509 = spec.x509
    ttl_failures = _ttl_failures(
        "spec.x509.ttl",
        x509.ttl,
        judge.pick(lambda p: p.x509.min_ttl, d.x509_min_ttl, "spec.x509.minTTL"),
        judge.pick(lambda p: p.x509.max_ttl, d.x509_max_ttl, "spec.x509.maxTTL"),
    )
    if not ttl_failures and x509.ttl > d.x509_ttl_ceiling:
        ttl_failures.append(
            _Failure(
                "spec.x509.ttl",
                f"spec.x509.ttl: {format_duration(x509.ttl)} exceeds "
                f"{format_duration(d.x509_ttl_ceiling)}, the longest certificate the operator's "
                "CA lifetime allows (caLifetime / 6)",
            )
        )
    failures += ttl_failures

    key_types, source = judge.pick(lambda p: p.x509.key_types, d.key_types, "spec.x509.keyTypes")
    if x509.key_type not in key_types:
        allowed = ", ".join(k.value for k in key_types) or "none"
        failures.append(
            _not_granted("spec.x509.keyType", x509.key_type.value, source, f"; allowed: {allowed}")
        )

    dns_grants, source = judge.pick(lambda p: p.x509.dns_names, d.dns_names, "spec.x509.dnsNames")
    hint = "" if dns_grants else "; no DNS names are granted"
    for index, name in enumerate(x509.dns_names):
        if not any(dns_name_granted(grant, name) for grant in dns_grants):
            failures.append(_not_granted(f"spec.x509.dnsNames[{index}]", name, source, hint))

    if spec.jwt is not None:
        audiences, source = judge.pick(
            lambda p: p.jwt.audiences, d.jwt_audiences, "spec.jwt.audiences"
        )
        for index, audience in enumerate(spec.jwt.audiences):
            if audiences is not None and audience not in audiences:
                failures.append(_not_granted(f"spec.jwt.audiences[{index}]", audience, source))
            elif audiences is None and audience in d.reserved_audiences:
                failures.append(
                    _not_granted(
                        f"spec.jwt.audiences[{index}]",
                        audience,
                        source,
                        "; this audience must be listed by an IdentityPolicy's jwt.audiences",
                    )
                )
        failures += _ttl_failures(
            "spec.jwt.ttl",
            spec.jwt.ttl,
            judge.pick(lambda p: p.jwt.min_ttl, d.jwt_min_ttl, "spec.jwt.minTTL"),
            judge.pick(lambda p: p.jwt.max_ttl, d.jwt_max_ttl, "spec.jwt.maxTTL"),
        )

    signers, source = judge.pick(lambda p: p.signers, d.signers, "spec.signers")
    if spec.signer not in signers:
        allowed = ", ".join(signers) or "none"
        failures.append(_not_granted("spec.signer", spec.signer, source, f"; allowed: {allowed}"))
    return failures


def _scoped_failures(
    spec: ScopedCredentialSpec, judge: _Judge, service_account: str | None
) -> list[_Failure]:
    """Every refusal of ``spec`` by one matching policy (never the defaults alone)."""
    policy = judge.policy
    if policy is None:  # evaluate_scoped denies before asking the defaults alone
        raise ValidationError("policy", "a ScopedCredential is judged by a matching policy only")
    d = judge.defaults
    failures: list[_Failure] = []
    if service_account is not None:
        failures += _service_account_failures(
            "spec.identityRef",
            service_account,
            f"service account {service_account} of WorkloadIdentity {spec.identity_ref}",
            judge,
        )
    token = spec.token
    if token is not None:
        audiences, source = judge.pick(
            lambda p: p.tokens.audiences, d.token_audiences, "spec.tokens.audiences"
        )
        if audiences is not None and token.audience not in audiences:
            failures.append(_not_granted("spec.token.audience", token.audience, source))
        scopes = policy.tokens.scopes or ()
        hint = "" if scopes else "; it grants no token scopes"
        for index, scope in enumerate(token.scopes):
            if not any(scope_granted(grant, scope) for grant in scopes):
                failures.append(
                    _not_granted(f"spec.token.scopes[{index}]", scope, judge.source, hint)
                )
        failures += _ttl_failures(
            "spec.token.ttl",
            token.ttl,
            judge.pick(lambda p: p.tokens.min_ttl, d.token_min_ttl, "spec.tokens.minTTL"),
            judge.pick(lambda p: p.tokens.max_ttl, d.token_max_ttl, "spec.tokens.maxTTL"),
        )
        claims = policy.tokens.claims or ()
        hint = "" if claims else "; it allows no extra claims"
        for name in sorted(token.claims):
            if name not in claims:
                failures.append(
                    _not_granted(f"spec.token.claims.{name}", f"claim {name}", judge.source, hint)
                )
    if spec.vault is not None:
        paths = policy.vault.paths or ()
        hint = "" if paths else "; it grants no Vault paths"
        if not any(vault_path_granted(grant, spec.vault.path) for grant in paths):
            failures.append(_not_granted("spec.vault.path", spec.vault.path, judge.source, hint))
    return failures


def _decide(
    namespace: str,
    matching: Sequence[IdentityPolicy],
    defaults: PolicyDefaults,
    failures_of: Callable[[_Judge], list[_Failure]],
) -> Decision:
    """Allowed by the first matching policy (by name) with no failure, else the best denial."""
    results = [(policy, failures_of(_Judge(policy, namespace, defaults))) for policy in matching]
    for policy, failures in results:
        if not failures:
            return Decision(True, None, f"allowed by IdentityPolicy {policy.name}", policy.name)
    best, failures = min(results, key=lambda result: (len(result[1]), result[0].name))
    first = failures[0]
    message = first.message
    if (
        first.item is not None
        and len(results) > 1
        and all(any(f.field == first.field for f in fs) for _, fs in results)
    ):
        names = ", ".join(policy.name for policy, _ in results)
        message = (
            f"{first.field}: {first.item} is not granted by any IdentityPolicy matching "
            f"namespace {namespace} ({names})"
        )
    return Decision(False, first.field, message, best.name)


def evaluate_identity(
    spec: WorkloadIdentitySpec,
    namespace: str,
    namespace_labels: Mapping[str, str],
    policies: Sequence[IdentityPolicy],
    defaults: PolicyDefaults,
) -> Decision:
    """May ``spec`` be issued in ``namespace``? See the module docstring for the rules."""
    matching = policies_affecting(namespace_labels, policies)
    if not matching:
        failures = _identity_failures(spec, _Judge(None, namespace, defaults))
        if failures:
            return Decision(False, failures[0].field, failures[0].message, None)
        return Decision(
            True,
            None,
            f"allowed by the built-in defaults (no IdentityPolicy matches namespace {namespace})",
            None,
        )
    return _decide(namespace, matching, defaults, lambda judge: _identity_failures(spec, judge))


def evaluate_scoped(
    spec: ScopedCredentialSpec,
    namespace: str,
    namespace_labels: Mapping[str, str],
    policies: Sequence[IdentityPolicy],
    defaults: PolicyDefaults,
    *,
    service_account: str | None = None,
) -> Decision:
    """May ``spec`` be issued in ``namespace``? Denied unless a matching policy grants it.

    ``service_account`` is the referenced WorkloadIdentity's; when given, the policy's
    ``serviceAccounts`` patterns must match it too, as they do for the identity itself.
    """
    matching = policies_affecting(namespace_labels, policies)
    if not matching:
        where = "spec.token" if spec.token is not None else "spec.vault"
        return Decision(
            False,
            where,
            f"{where}: no IdentityPolicy matches namespace {namespace}; a ScopedCredential is "
            "issued only when an IdentityPolicy selecting its namespace grants it",
            None,
        )
    return _decide(
        namespace,
        matching,
        defaults,
        lambda judge: _scoped_failures(spec, judge, service_account),
    )
