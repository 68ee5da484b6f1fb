# SPDX-License-Identifier: Apache-2.0
"""IdentityPolicy evaluation: one matching policy must allow all of a request (the built-in
defaults filling in what it leaves unset); without one, the defaults decide a WorkloadIdentity
and a ScopedCredential is denied; every denial names the field, the value and who refused it."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from wio.config import AdminConfig
from wio.errors import ValidationError
from wio.models.keytypes import KeyType
from wio.models.limits import PolicyDefaults
from wio.models.resources import (
    IdentityPolicy,
    ScopedCredentialSpec,
    TokenGrant,
    VaultGrant,
    WorkloadIdentitySpec,
)
from wio.models.spiffe import TrustDomain
from wio.policy.identity_policy import (
    Decision,
    dns_name_granted,
    evaluate_identity,
    evaluate_scoped,
    policies_affecting,
    scope_granted,
    service_account_matches,
    vault_path_granted,
)

pytestmark = pytest.mark.unit

NAMESPACE = "payments"
LABELS = {"kubernetes.io/metadata.name": NAMESPACE, "team": "a"}
DEFAULTS = PolicyDefaults()


def policy(name: str, **spec: Any) -> IdentityPolicy:
    return IdentityPolicy.parse(name, {"namespaceSelector": {}, **spec})


def identity(**spec: Any) -> WorkloadIdentitySpec:
    return WorkloadIdentitySpec.parse("payments", {"serviceAccountName": "payments", **spec})


def token(**token_spec: Any) -> ScopedCredentialSpec:
    body = {"audience": "orders-api", "scopes": ["orders:read"], **token_spec}
    return ScopedCredentialSpec.parse("orders", {"identityRef": "payments", "token": body})


def vault(path: str) -> ScopedCredentialSpec:
    return ScopedCredentialSpec.parse("db", {"identityRef": "payments", "vault": {"path": path}})


@dataclass(frozen=True)
class Case:
    """One request, the policies present, and what the decision must say."""

    spec: WorkloadIdentitySpec | ScopedCredentialSpec
    policies: tuple[IdentityPolicy, ...] = ()
    allowed: bool = True
    field: str | None = None
    says: tuple[str, ...] = ()
    policy: str | None = None
    labels: dict[str, str] = dataclasses.field(default_factory=lambda: dict(LABELS))


NO_POLICY_NOTE = f"the built-in defaults (no IdentityPolicy matches namespace {NAMESPACE})"
RSA = {"x509": {"keyTypes": ["RSA2048"]}}

CASES = [
    # --- WorkloadIdentity: the built-in defaults --------------------------------------------
    pytest.param(
        Case(identity(), says=("allowed by", NO_POLICY_NOTE)), id="no-policy-defaults-allow"
    ),
    pytest.param(
        Case(
            identity(x509={"ttl": "1m"}),
            allowed=False,
            field="spec.x509.ttl",
            says=(f"spec.x509.ttl: 1m is below the minimum 10m allowed by {NO_POLICY_NOTE}",),
        ),
        id="default-min-ttl-10m-denies-1m",
    ),
    pytest.param(Case(identity(x509={"ttl": "10m"})), id="default-min-ttl-is-inclusive"),
    pytest.param(Case(identity(x509={"ttl": "24h"})), id="default-max-ttl-is-inclusive"),
    pytest.param(
        Case(
            identity(x509={"ttl": "48h"}),
            allowed=False,
            field="spec.x509.ttl",
            says=("spec.x509.ttl: 48h exceeds the maximum 24h allowed by the built-in defaults",),
        ),
        id="default-max-ttl-denies-48h",
    ),
    pytest.param(
        Case(
            identity(x509={"keyType": "RSA2048"}),
            allowed=False,
            field="spec.x509.keyType",
            says=("RSA2048 is not granted by", "allowed: ECDSAP256, ECDSAP384, Ed25519"),
        ),
        id="rsa-denied-by-default",
    ),
    pytest.param(Case(identity(x509={"keyType": "Ed25519"})), id="ed25519-allowed-by-default"),
    pytest.param(
        Case(
            identity(x509={"dnsNames": ["api.example.com"]}),
            allowed=False,
            field="spec.x509.dnsNames[0]",
            says=("api.example.com is not granted by", "no DNS names are granted"),
        ),
        id="dns-names-denied-by-default",
    ),
    pytest.param(
        Case(identity(jwt={"audiences": ["anyone"], "ttl": "1h"}), says=("built-in defaults",)),
        id="jwt-any-audience-by-default",
    ),
    pytest.param(
        Case(
            identity(jwt={"audiences": ["orders"], "ttl": "2h"}),
            allowed=False,
            field="spec.jwt.ttl",
            says=("spec.jwt.ttl: 2h exceeds the maximum 1h allowed by the built-in defaults",),
        ),
        id="jwt-default-max-1h",
    ),
    pytest.param(
        Case(
            identity(signer="vault"),
            allowed=False,
            field="spec.signer",
            says=("spec.signer: vault is not granted by", "allowed: default"),
        ),
        id="only-default-signer-by-default",
    ),
    # --- WorkloadIdentity: one policy --------------------------------------------------------
    pytest.param(
        Case(
            identity(x509={"ttl": "30s"}),
            (policy("team-a", x509={"minTTL": "30s"}),),
            says=("allowed by IdentityPolicy team-a",),
            policy="team-a",
        ),
        id="policy-lowering-min-ttl-allows-30s",
    ),
    pytest.param(
        Case(
            identity(x509={"ttl": "20s"}),
            (policy("team-a", x509={"minTTL": "30s"}),),
            allowed=False,
            field="spec.x509.ttl",
            says=("20s is below the minimum 30s allowed by IdentityPolicy team-a",),
            policy="team-a",
        ),
        id="policy-min-ttl-still-bounds",
    ),
    pytest.param(
        Case(
            identity(x509={"ttl": "1m"}),
            (policy("team-a", x509={"maxTTL": "2h"}),),
            allowed=False,
            field="spec.x509.ttl",
            says=(
                "1m is below the minimum 10m allowed by the built-in defaults "
                "(IdentityPolicy team-a does not set spec.x509.minTTL)",
            ),
            policy="team-a",
        ),
        id="unset-policy-field-falls-back-to-default",
    ),
    pytest.param(
        Case(
            identity(x509={"ttl": "48h"}),
            (policy("team-a", x509={"maxTTL": "72h"}),),
            policy="team-a",
        ),
        id="policy-raises-max-ttl",
    ),
    pytest.param(
        Case(identity(x509={"keyType": "RSA2048"}), (policy("rsa", **RSA),), policy="rsa"),
        id="rsa-allowed-by-policy",
    ),
    pytest.param(
        Case(
            identity(x509={"keyType": "ECDSAP256"}),
            (policy("rsa", **RSA),),
            allowed=False,
            field="spec.x509.keyType",
            says=("ECDSAP256 is not granted by IdentityPolicy rsa; allowed: RSA2048",),
            policy="rsa",
        ),
        id="policy-key-types-replace-defaults",
    ),
    pytest.param(
        Case(
            identity(x509={"dnsNames": ["api.example.com"]}),
            (policy("dns", x509={"dnsNames": ["api.example.com"]}),),
            policy="dns",
        ),
        id="dns-exact-grant",
    ),
    pytest.param(
        Case(
            identity(x509={"dnsNames": ["api.example.com", "web.example.com"]}),
            (policy("dns", x509={"dnsNames": ["*.example.com"]}),),
            policy="dns",
        ),
        id="dns-wildcard-grant-one-label",
    ),
    pytest.param(
        Case(
            identity(x509={"dnsNames": ["a.b.example.com"]}),
            (policy("dns", x509={"dnsNames": ["*.example.com"]}),),
            allowed=False,
            field="spec.x509.dnsNames[0]",
            says=("a.b.example.com is not granted by IdentityPolicy dns",),
            policy="dns",
        ),
        id="dns-wildcard-grant-not-two-labels",
    ),
    pytest.param(
        Case(
            identity(x509={"dnsNames": ["example.com"]}),
            (policy("dns", x509={"dnsNames": ["*.example.com"]}),),
            allowed=False,
            field="spec.x509.dnsNames[0]",
            policy="dns",
        ),
        id="dns-wildcard-grant-not-apex",
    ),
    pytest.param(
        Case(
            identity(x509={"dnsNames": ["*.example.com"]}),
            (policy("dns", x509={"dnsNames": ["*.example.com"]}),),
            policy="dns",
        ),
        id="dns-wildcard-request-needs-wildcard-grant",
    ),
    pytest.param(
        Case(
            identity(x509={"dnsNames": ["*.example.com"]}),
            (policy("dns", x509={"dnsNames": ["api.example.com", "*.x.example.com"]}),),
            allowed=False,
            field="spec.x509.dnsNames[0]",
            says=("*.example.com is not granted",),
            policy="dns",
        ),
        id="dns-wildcard-request-denied-without-it",
    ),
    pytest.param(
        Case(
            identity(x509={"dnsNames": ["api.payments.svc", "api.other.svc"]}),
            (policy("team-a", x509={"dnsNames": ["*.payments.svc"]}),),
            allowed=False,
            field="spec.x509.dnsNames[1]",
            says=("spec.x509.dnsNames[1]: api.other.svc is not granted by IdentityPolicy team-a",),
            policy="team-a",
        ),
        id="dns-second-name-named-by-index",
    ),
    pytest.param(
        Case(
            identity(jwt={"audiences": ["orders", "billing"]}),
            (policy("jwt", jwt={"audiences": ["orders"]}),),
            allowed=False,
            field="spec.jwt.audiences[1]",
            says=("billing is not granted by IdentityPolicy jwt",),
            policy="jwt",
        ),
        id="jwt-audience-not-granted",
    ),
    pytest.param(
        Case(identity(signer="vault"), (policy("v", signers=["vault"]),), policy="v"),
        id="signer-granted-by-policy",
    ),
    pytest.param(
        Case(
            identity(),
            (policy("web", serviceAccounts=["web-*"]),),
            allowed=False,
            field="spec.serviceAccountName",
            says=("payments is not granted by IdentityPolicy web (serviceAccounts: web-*)",),
            policy="web",
        ),
        id="service-account-pattern-denies",
    ),
    pytest.param(
        Case(identity(), (policy("pay", serviceAccounts=["pay*"]),), policy="pay"),
        id="service-account-pattern-allows",
    ),
    # --- selectors -----------------------------------------------------------------------------
    pytest.param(
        Case(
            identity(x509={"keyType": "RSA2048"}),
            (policy("team-b", namespaceSelector={"matchLabels": {"team": "b"}}, **RSA),),
            allowed=False,
            field="spec.x509.keyType",
            says=(NO_POLICY_NOTE,),
            policy=None,
        ),
        id="non-matching-selector-leaves-defaults",
    ),
    pytest.param(
        Case(
            identity(x509={"keyType": "RSA2048"}),
            (
                policy(
                    "not-prod",
                    namespaceSelector={
                        "matchExpressions": [
                            {"key": "env", "operator": "NotIn", "values": ["prod"]}
                        ]
                    },
                    **RSA,
                ),
            ),
            policy="not-prod",
        ),
        id="notin-matches-absent-key",
    ),
    pytest.param(
        Case(
            identity(x509={"keyType": "RSA2048"}),
            (
                policy(
                    "by-name",
                    namespaceSelector={"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
                    **RSA,
                ),
            ),
            policy="by-name",
        ),
        id="selector-by-namespace-name-label",
    ),
    # --- several policies --------------------------------------------------------------------
    pytest.param(
        Case(
            identity(x509={"keyType": "RSA2048"}),
            (policy("a-strict", x509={"keyTypes": ["ECDSAP256"]}), policy("b-rsa", **RSA)),
            says=("allowed by IdentityPolicy b-rsa",),
            policy="b-rsa",
        ),
        id="second-policy-allows-all",
    ),
    pytest.param(
        Case(
            identity(x509={"keyType": "RSA2048", "dnsNames": ["api.example.com"]}),
            (policy("rsa", **RSA), policy("dns", x509={"dnsNames": ["api.example.com"]})),
            allowed=False,
            field="spec.x509.keyType",
            says=(
                "RSA2048 is not granted by the built-in defaults "
                "(IdentityPolicy dns does not set spec.x509.keyTypes)",
            ),
            policy="dns",
        ),
        id="grants-never-merge-across-policies",
    ),
    pytest.param(
        Case(
            identity(x509={"ttl": "5m", "dnsNames": ["api.example.com"]}),
            (
                policy("a", x509={"dnsNames": ["api.example.com"]}),
                policy("b", x509={"minTTL": "1m"}),
            ),
            allowed=False,
            field="spec.x509.ttl",
            says=("5m is below the minimum 10m",),
            policy="a",
        ),
        id="tie-on-failure-count-broken-by-name",
    ),
    pytest.param(
        Case(
            identity(x509={"ttl": "5m", "dnsNames": ["api.example.com"]}),
            (
                policy("a", x509={"keyTypes": ["Ed25519"]}),
                policy("z", x509={"minTTL": "1m"}),
            ),
            allowed=False,
            field="spec.x509.dnsNames[0]",
            says=(
                "spec.x509.dnsNames[0]: api.example.com is not granted by any IdentityPolicy "
                f"matching namespace {NAMESPACE} (a, z)",
            ),
            policy="z",
        ),
        id="fewest-failures-reported-and-any-wording",
    ),
    # --- ScopedCredential ----------------------------------------------------------------------
    pytest.param(
        Case(
            token(),
            allowed=False,
            field="spec.token",
            says=(f"spec.token: no IdentityPolicy matches namespace {NAMESPACE}",),
        ),
        id="scoped-token-denied-without-policy",
    ),
    pytest.param(
        Case(
            vault("database/creds/orders-ro"),
            (policy("other", namespaceSelector={"matchLabels": {"team": "z"}}),),
            allowed=False,
            field="spec.vault",
            says=("no IdentityPolicy matches namespace",),
        ),
        id="scoped-vault-denied-without-matching-policy",
    ),
    pytest.param(
        Case(
            token(),
            (policy("team-a"),),
            allowed=False,
            field="spec.token.scopes[0]",
            says=("orders:read is not granted by IdentityPolicy team-a; it grants no token",),
            policy="team-a",
        ),
        id="scoped-policy-without-tokens-denies",
    ),
    pytest.param(
        Case(token(), (policy("t", tokens={"scopes": ["orders:read"]}),), policy="t"),
        id="scope-exact-grant",
    ),
    pytest.param(
        Case(
            token(scopes=["orders:read", "orders:write", "orders:admin:all"]),
            (policy("t", tokens={"scopes": ["orders:*"]}),),
            policy="t",
        ),
        id="scope-prefix-grant",
    ),
    pytest.param(
        Case(
            token(scopes=["ordersx:read"]),
            (policy("t", tokens={"scopes": ["orders:*"]}),),
            allowed=False,
            field="spec.token.scopes[0]",
            policy="t",
        ),
        id="scope-prefix-grant-needs-the-colon",
    ),
    pytest.param(
        Case(
            token(scopes=["orders:read", "audit:write", "orders:write"]),
            (policy("team-a", tokens={"scopes": ["orders:read", "audit:*"]}),),
            allowed=False,
            field="spec.token.scopes[2]",
            says=("spec.token.scopes[2]: orders:write is not granted by IdentityPolicy team-a",),
            policy="team-a",
        ),
        id="scope-named-by-index",
    ),
    pytest.param(
        Case(
            token(ttl="5m"),
            (policy("t", tokens={"scopes": ["orders:read"]}),),
            allowed=False,
            field="spec.token.ttl",
            says=(
                "5m is below the minimum 10m allowed by the built-in defaults "
                "(IdentityPolicy t does not set spec.tokens.minTTL)",
            ),
            policy="t",
        ),
        id="token-ttl-default-minimum",
    ),
    pytest.param(
        Case(
            token(ttl="5m"),
            (policy("t", tokens={"scopes": ["orders:read"], "minTTL": "1m"}),),
            policy="t",
        ),
        id="token-ttl-policy-minimum",
    ),
    pytest.param(
        Case(
            token(ttl="2h"),
            (policy("t", tokens={"scopes": ["orders:read"]}),),
            allowed=False,
            field="spec.token.ttl",
            says=("2h exceeds the maximum 1h",),
            policy="t",
        ),
        id="token-ttl-default-maximum",
    ),
    pytest.param(
        Case(
            token(claims={"tenant": "acme"}),
            (policy("t", tokens={"scopes": ["orders:read"]}),),
            allowed=False,
            field="spec.token.claims.tenant",
            says=("claim tenant is not granted by IdentityPolicy t; it allows no extra claims",),
            policy="t",
        ),
        id="claim-not-allowed",
    ),
    pytest.param(
        Case(
            token(claims={"tenant": "acme"}),
            (policy("t", tokens={"scopes": ["orders:read"], "claims": ["tenant"]}),),
            policy="t",
        ),
        id="claim-allowed",
    ),
    pytest.param(
        Case(
            token(audience="billing-api"),
            (policy("t", tokens={"scopes": ["orders:read"], "audiences": ["orders-api"]}),),
            allowed=False,
            field="spec.token.audience",
            says=("billing-api is not granted by IdentityPolicy t",),
            policy="t",
        ),
        id="token-audience-not-granted",
    ),
    pytest.param(
        Case(
            token(),
            (policy("a-none"), policy("b-tokens", tokens={"scopes": ["orders:read"]})),
            policy="b-tokens",
        ),
        id="scoped-second-policy-allows",
    ),
    pytest.param(
        Case(
            vault("kv/data/team-a"),
            (policy("v", vault={"paths": ["kv/data/team-a"]}),),
            policy="v",
        ),
        id="vault-exact-path",
    ),
    pytest.param(
        Case(
            vault("database/creds/orders-ro"),
            (policy("v", vault={"paths": ["database/creds/orders-*"]}),),
            policy="v",
        ),
        id="vault-prefix-path",
    ),
    pytest.param(
        Case(
            vault("database/creds/billing-ro"),
            (policy("v", vault={"paths": ["database/creds/orders-*"]}),),
            allowed=False,
            field="spec.vault.path",
            says=("database/creds/billing-ro is not granted by IdentityPolicy v",),
            policy="v",
        ),
        id="vault-prefix-does-not-match-other",
    ),
    pytest.param(
        Case(
            vault("database/creds/orders-ro"),
            (policy("v", tokens={"scopes": ["orders:*"]}),),
            allowed=False,
            field="spec.vault.path",
            says=("it grants no Vault paths",),
            policy="v",
        ),
        id="vault-policy-without-paths",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_policy_decisions(case: Case) -> None:
    if isinstance(case.spec, WorkloadIdentitySpec):
        decision = evaluate_identity(case.spec, NAMESPACE, case.labels, case.policies, DEFAULTS)
    else:
        decision = evaluate_scoped(case.spec, NAMESPACE, case.labels, case.policies, DEFAULTS)
    assert decision.allowed is case.allowed, decision.message
    assert decision.field == case.field, decision.message
    assert decision.policy == case.policy, decision.message
    for words in case.says:
        assert words in decision.message
    if not case.allowed:
        assert decision.message.startswith(f"{case.field}: ")


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES)
def test_decisions_do_not_depend_on_the_order_of_policies(case: Case) -> None:
    shuffled = list(case.policies)
    random.Random(7).shuffle(shuffled)  # noqa: S311 - a fixed order, not a secret
    reversed_ = list(reversed(case.policies))
    if isinstance(case.spec, WorkloadIdentitySpec):
        decisions = [
            evaluate_identity(case.spec, NAMESPACE, case.labels, order, DEFAULTS)
            for order in (case.policies, shuffled, reversed_)
        ]
    else:
        decisions = [
            evaluate_scoped(case.spec, NAMESPACE, case.labels, order, DEFAULTS)
            for order in (case.policies, shuffled, reversed_)
        ]
    assert decisions[0] == decisions[1] == decisions[2]


def test_a_scoped_credential_is_checked_against_the_identitys_service_account() -> None:
    grants = policy("web", serviceAccounts=["web-*"], tokens={"scopes": ["orders:read"]})
    denied = evaluate_scoped(
        token(), NAMESPACE, LABELS, [grants], DEFAULTS, service_account="payments"
    )
    assert not denied.allowed
    assert denied.field == "spec.identityRef"
    assert "service account payments of WorkloadIdentity payments" in denied.message
    allowed = evaluate_scoped(
        token(), NAMESPACE, LABELS, [grants], DEFAULTS, service_account="web-frontend"
    )
    assert allowed.allowed


def _smuggle(grant: TokenGrant | VaultGrant, **values: Any) -> Any:
    """A grant with fields set behind validation's back, as a bug elsewhere might."""
    for name, value in values.items():
        object.__setattr__(grant, name, value)
    return grant


def test_a_bare_star_grant_never_matches_even_past_validation() -> None:
    star = dataclasses.replace(policy("star"), tokens=_smuggle(TokenGrant(), scopes=("*",)))
    decision = evaluate_scoped(token(), NAMESPACE, LABELS, [star], DEFAULTS)
    assert not decision.allowed
    assert decision.field == "spec.token.scopes[0]"
    star_vault = dataclasses.replace(policy("star"), vault=_smuggle(VaultGrant(), paths=("*",)))
    decision = evaluate_scoped(vault("kv/data/x"), NAMESPACE, LABELS, [star_vault], DEFAULTS)
    assert not decision.allowed


@pytest.mark.parametrize(
    ("grant", "scope", "granted"),
    [
        ("orders:read", "orders:read", True),
        ("orders:read", "orders:write", False),
        ("orders:*", "orders:read", True),
        ("orders:*", "orders:", False),
        ("orders:*", "orders", False),
        ("orders:*", "ordersx:read", False),
        ("*", "orders:read", False),
        ("*", "*", False),
        (":*", ":x", False),
        ("orders:*", "orders:*", False),
        ("orders*", "orders:read", False),
    ],
)
def test_scope_grant_matching(grant: str, scope: str, granted: bool) -> None:
    assert scope_granted(grant, scope) is granted


@pytest.mark.parametrize(
    ("grant", "path", "granted"),
    [
        ("kv/data/a", "kv/data/a", True),
        ("kv/data/a", "kv/data/ab", False),
        ("kv/data/a*", "kv/data/ab", True),
        ("kv/data/a/*", "kv/data/a/b/c", True),
        ("kv/data/a/*", "kv/data/a", False),
        ("kv/data/a/*", "kv/data/a/", False),
        ("*", "kv/data/a", False),
        ("kv/*/a", "kv/x/a", False),
    ],
)
def test_vault_path_grant_matching(grant: str, path: str, granted: bool) -> None:
    assert vault_path_granted(grant, path) is granted


@pytest.mark.parametrize(
    ("grant", "name", "granted"),
    [
        ("api.example.com", "api.example.com", True),
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", "example.com", False),
        ("*.example.com", "*.example.com", True),
        ("*.example.com", "api.example.org", False),
        ("api.example.com", "*.example.com", False),
    ],
)
def test_dns_grant_matching(grant: str, name: str, granted: bool) -> None:
    assert dns_name_granted(grant, name) is granted


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*", "anything", True),
        ("web-*", "web-frontend", True),
        ("web-*", "api", False),
        ("web-?", "web-1", True),
        ("web-?", "web-12", False),
        ("web-[0-9]", "web-1", False),
    ],
)
def test_service_account_patterns(pattern: str, name: str, matches: bool) -> None:
    assert service_account_matches(pattern, name) is matches


def test_policies_affecting_are_the_matching_ones_by_name() -> None:
    b = policy("b")
    a = policy("a", namespaceSelector={"matchLabels": {"team": "a"}})
    other = policy("c", namespaceSelector={"matchLabels": {"team": "c"}})
    assert policies_affecting(LABELS, [b, other, a]) == (a, b)
    assert policies_affecting({}, [b, other, a]) == (b,)


def test_no_policy_can_allow_a_certificate_longer_than_the_ca_lifetime_permits() -> None:
    short_ca = dataclasses.replace(DEFAULTS, x509_ttl_ceiling=timedelta(hours=48))
    spec = identity(x509={"ttl": "72h"})
    decision = evaluate_identity(
        spec, NAMESPACE, LABELS, [policy("long", x509={"maxTTL": "720h"})], short_ca
    )
    assert not decision.allowed
    assert decision.field == "spec.x509.ttl"
    assert "exceeds 48h, the longest certificate the operator's CA lifetime allows" in (
        decision.message
    )


def test_defaults_follow_the_admin_configuration() -> None:
    config = AdminConfig(
        trust_domain=TrustDomain("example.org"),
        jwt_issuer="https://wio.example.org",
        min_ttl=timedelta(minutes=5),
        max_x509_ttl=timedelta(hours=12),
        max_jwt_ttl=timedelta(minutes=30),
        ca_lifetime=timedelta(days=30),
    )
    defaults = config.policy_defaults()
    assert defaults.x509_min_ttl == defaults.jwt_min_ttl == defaults.token_min_ttl
    assert defaults.x509_min_ttl == timedelta(minutes=5)
    assert defaults.x509_max_ttl == timedelta(hours=12)
    assert defaults.jwt_max_ttl == timedelta(minutes=30)
    assert defaults.token_max_ttl == timedelta(hours=1)
    assert defaults.x509_ttl_ceiling == timedelta(days=5)
    assert defaults.key_types == (KeyType.ECDSAP256, KeyType.ECDSAP384, KeyType.ED25519)
    assert defaults.signers == ("default",)


def test_the_default_configuration_implies_the_built_in_defaults() -> None:
    config = AdminConfig(
        trust_domain=TrustDomain("example.org"), jwt_issuer="https://wio.example.org"
    )
    assert config.policy_defaults() == PolicyDefaults(
        reserved_audiences=("https://wio.example.org/introspect",)
    )


def test_the_introspection_audience_needs_an_explicit_grant() -> None:
    """Default grants allow any JWT-SVID audience, except the introspection endpoint: a
    JWT-SVID for it reads the claims of every access token its holder is shown."""
    defaults = PolicyDefaults(reserved_audiences=("https://wio.example.org/introspect",))
    asked = identity(jwt={"audiences": ["https://wio.example.org/introspect"]})
    denied = evaluate_identity(asked, "shop", {}, [], defaults)
    assert not denied.allowed
    assert "spec.jwt.audiences[0]" in denied.message
    assert "must be listed by an IdentityPolicy" in denied.message
    listed = policy("introspectors", jwt={"audiences": ["https://wio.example.org/introspect"]})
    assert evaluate_identity(asked, "shop", {}, [listed], defaults).allowed


def test_a_denial_must_name_a_field() -> None:
    with pytest.raises(ValidationError, match="field"):
        Decision(False, None, "denied", None)
