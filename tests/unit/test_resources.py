# SPDX-License-Identifier: Apache-2.0
"""Resource specs parse with the CRDs' defaults, hash exactly what shapes a credential, and
refuse every malformed input with a ValidationError naming the full field path, never a crash."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wio.errors import ValidationError
from wio.models.dns import check_dns_name
from wio.models.keytypes import KeyType
from wio.models.resources import (
    IdentityPolicy,
    JwtGrant,
    JwtSpec,
    LabelSelector,
    LabelSelectorRequirement,
    ScopedCredentialSpec,
    SelectorOperator,
    TokenGrant,
    TokenSpec,
    VaultGrant,
    VaultSpec,
    WorkloadIdentitySpec,
    X509Grant,
    X509Spec,
    default_credential_secret_name,
    default_identity_secret_name,
)

pytestmark = pytest.mark.unit

FULL_IDENTITY: dict[str, Any] = {
    "serviceAccountName": "payments",
    "x509": {"ttl": "2h", "keyType": "Ed25519", "dnsNames": ["api.payments.svc", "*.pay.svc"]},
    "jwt": {"audiences": ["orders-api", "audit"], "ttl": "20m"},
    "secretName": "payments-tls",
    "signer": "vault",
}
TOKEN_CREDENTIAL: dict[str, Any] = {
    "identityRef": "payments",
    "token": {
        "audience": "orders-api",
        "scopes": ["orders:read", "audit:write"],
        "ttl": "5m",
        "claims": {"tenant": "acme"},
    },
}


def _with(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``document`` with ``path`` (dots) set to ``value`` (or removed: ...)."""
    result = copy.deepcopy(document)
    target = result
    keys = path.split(".")
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    if value is ...:
        target.pop(keys[-1], None)
    else:
        target[keys[-1]] = value
    return result


# --- WorkloadIdentity ------------------------------------------------------------------------


def test_a_minimal_identity_gets_every_default_of_the_crd() -> None:
    spec = WorkloadIdentitySpec.parse("payments", {"serviceAccountName": "payments"})
    assert spec.service_account == "payments"
    assert spec.x509 == X509Spec(timedelta(hours=1), KeyType.ECDSAP256, ())
    assert spec.jwt is None
    assert spec.secret_name == "payments-identity"
    assert spec.signer == "default"


def test_a_full_identity_keeps_every_value() -> None:
    spec = WorkloadIdentitySpec.parse("payments", FULL_IDENTITY)
    assert spec.x509.ttl == timedelta(hours=2)
    assert spec.x509.key_type is KeyType.ED25519
    assert spec.x509.dns_names == ("api.payments.svc", "*.pay.svc")
    assert spec.jwt == JwtSpec(("orders-api", "audit"), timedelta(minutes=20))
    assert spec.secret_name == "payments-tls"
    assert spec.signer == "vault"


def test_a_jwt_without_ttl_defaults_to_30_minutes_and_null_means_absent() -> None:
    spec = WorkloadIdentitySpec.parse(
        "web", {"serviceAccountName": "web", "jwt": {"audiences": ["a"]}, "x509": None}
    )
    assert spec.jwt is not None
    assert spec.jwt.ttl == timedelta(minutes=30)
    assert spec.x509 == X509Spec()


def test_specs_are_frozen_and_hashable() -> None:
    spec = WorkloadIdentitySpec.parse("payments", FULL_IDENTITY)
    with pytest.raises(AttributeError):
        spec.signer = "other"  # type: ignore[misc]
    assert hash(spec) == hash(WorkloadIdentitySpec.parse("payments", FULL_IDENTITY))


def test_identity_spec_hash_is_pinned_so_an_upgrade_does_not_rotate_every_identity() -> None:
    minimal = WorkloadIdentitySpec.parse("payments", {"serviceAccountName": "payments"})
    assert minimal.spec_hash() == "eebe1a22b84945c1"
    assert len(WorkloadIdentitySpec.parse("p", FULL_IDENTITY).spec_hash()) == 16


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("serviceAccountName", "orders"),
        ("x509.ttl", "3h"),
        ("x509.keyType", "ECDSAP384"),
        ("x509.dnsNames", ["api.payments.svc"]),
        ("jwt", ...),
        ("jwt.audiences", ["orders-api"]),
        ("jwt.ttl", "25m"),
        ("signer", "default"),
    ],
)
def test_identity_spec_hash_changes_with_every_field_that_shapes_the_credential(
    path: str, value: Any
) -> None:
    before = WorkloadIdentitySpec.parse("payments", FULL_IDENTITY).spec_hash()
    after = WorkloadIdentitySpec.parse("payments", _with(FULL_IDENTITY, path, value)).spec_hash()
    assert before != after


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("secretName", "elsewhere"),
        ("secretName", ...),
        ("x509.dnsNames", ["*.pay.svc", "api.payments.svc"]),
        ("jwt.audiences", ["audit", "orders-api"]),
        ("x509.ttl", "120m"),
    ],
)
def test_identity_spec_hash_ignores_what_does_not_change_the_credential(
    path: str, value: Any
) -> None:
    before = WorkloadIdentitySpec.parse("payments", FULL_IDENTITY).spec_hash()
    after = WorkloadIdentitySpec.parse("payments", _with(FULL_IDENTITY, path, value)).spec_hash()
    assert before == after


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("serviceAccountName", ..., "spec.serviceAccountName", "required"),
        ("serviceAccountName", 7, "spec.serviceAccountName", "must be a string"),
        ("serviceAccountName", "Payments", "spec.serviceAccountName", "not a valid"),
        ("serviceAccountName", "", "spec.serviceAccountName", "non-empty"),
        ("x509", "1h", "spec.x509", "must be an object"),
        ("x509.ttl", "1.5h", "spec.x509.ttl", "fraction"),
        ("x509.ttl", 3600, "spec.x509.ttl", "duration string"),
        ("x509.ttl", "5s", "spec.x509.ttl", "below the shortest"),
        ("x509.ttl", "721h", "spec.x509.ttl", "exceeds the longest"),
        ("x509.keyType", "DSA", "spec.x509.keyType", "unknown key type"),
        ("x509.keyType", 256, "spec.x509.keyType", "must be a string"),
        ("x509.dnsNames", "api.svc", "spec.x509.dnsNames", "must be a list"),
        ("x509.dnsNames", ["ok.svc", "Bad.svc"], "spec.x509.dnsNames[1]", "lower-case"),
        ("x509.dnsNames", ["a.svc", "a.svc"], "spec.x509.dnsNames[1]", "listed twice"),
        ("x509.dnsNames", ["a.*.svc"], "spec.x509.dnsNames[0]", "'*'"),
        ("x509.dnsNames", [f"n{i}.svc" for i in range(17)], "spec.x509.dnsNames", "at most 16"),
        ("x509.dnsNames", [None], "spec.x509.dnsNames[0]", "must be a string"),
        ("x509.extra", True, "spec.x509.extra", "unknown field"),
        ("jwt.audiences", ..., "spec.jwt.audiences", "required"),
        ("jwt.audiences", [], "spec.jwt.audiences", "at least one"),
        ("jwt.audiences", ["a b"], "spec.jwt.audiences[0]", "whitespace"),
        ("jwt.audiences", ["x" * 257], "spec.jwt.audiences[0]", "at most 256"),
        ("jwt.audiences", [str(i) for i in range(9)], "spec.jwt.audiences", "at most 8"),
        ("jwt.ttl", "25h", "spec.jwt.ttl", "exceeds the longest"),
        ("jwt.ttl", "-5m", "spec.jwt.ttl", "negative"),
        ("secretName", "Not_Valid", "spec.secretName", "not a valid Secret name"),
        ("signer", "my.signer", "spec.signer", "not a valid signer name"),
        ("signer", "", "spec.signer", "non-empty"),
        ("unknown", 1, "spec.unknown", "unknown field"),
    ],
)
def test_a_malformed_identity_is_refused_naming_its_field(
    path: str, value: Any, field: str, words: str
) -> None:
    with pytest.raises(ValidationError) as err:
        WorkloadIdentitySpec.parse("payments", _with(FULL_IDENTITY, path, value))
    assert err.value.field == field
    assert words in str(err.value)


def test_a_spec_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValidationError) as err:
        WorkloadIdentitySpec.parse("payments", ["serviceAccountName"])  # type: ignore[arg-type]
    assert err.value.field == "spec"


def test_a_default_secret_name_that_would_be_too_long_asks_for_an_explicit_one() -> None:
    with pytest.raises(ValidationError) as err:
        WorkloadIdentitySpec.parse("a" * 250, {"serviceAccountName": "payments"})
    assert err.value.field == "spec.secretName"
    spec = WorkloadIdentitySpec.parse("a" * 250, {"serviceAccountName": "p", "secretName": "s"})
    assert spec.secret_name == "s"


def test_the_default_secret_names_are_the_ones_the_specs_default_to() -> None:
    # A stored format: Secrets already written under these names must still be found.
    assert default_identity_secret_name("payments") == "payments-identity"
    assert default_credential_secret_name("orders-read") == "orders-read-credential"
    identity = WorkloadIdentitySpec.parse("payments", {"serviceAccountName": "payments"})
    assert identity.secret_name == default_identity_secret_name("payments")
    credential = ScopedCredentialSpec.parse(
        "orders-read", {"identityRef": "payments", "vault": {"path": "database/creds/ro"}}
    )
    assert credential.secret_name == default_credential_secret_name("orders-read")


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ValidationError) as err:
        X509Spec(ttl=timedelta(seconds=1.5))
    assert err.value.field == "spec.x509.ttl"
    with pytest.raises(ValidationError) as err:
        WorkloadIdentitySpec(service_account="p", secret_name="s", x509="x")  # type: ignore[arg-type]
    assert err.value.field == "spec.x509"


# --- ScopedCredential ------------------------------------------------------------------------


def test_a_token_credential_gets_the_crd_defaults() -> None:
    spec = ScopedCredentialSpec.parse(
        "orders-read",
        {"identityRef": "payments", "token": {"audience": "orders", "scopes": ["orders:read"]}},
    )
    assert spec.token == TokenSpec("orders", ("orders:read",), timedelta(minutes=15), {})
    assert spec.vault is None
    assert spec.secret_name == "orders-read-credential"


def test_a_vault_credential_parses() -> None:
    spec = ScopedCredentialSpec.parse(
        "db", {"identityRef": "payments", "vault": {"path": "database/creds/orders-ro"}}
    )
    assert spec.vault == VaultSpec("database/creds/orders-ro")
    assert spec.token is None


def test_token_claims_are_read_only() -> None:
    spec = ScopedCredentialSpec.parse("c", TOKEN_CREDENTIAL)
    assert spec.token is not None
    assert dict(spec.token.claims) == {"tenant": "acme"}
    with pytest.raises(TypeError):
        spec.token.claims["tenant"] = "evil"  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("identityRef", "orders"),
        ("token.audience", "billing"),
        ("token.scopes", ["orders:read"]),
        ("token.ttl", "6m"),
        ("token.claims", {"tenant": "globex"}),
        ("token.claims", {}),
    ],
)
def test_credential_spec_hash_changes_with_what_shapes_the_token(path: str, value: Any) -> None:
    before = ScopedCredentialSpec.parse("c", TOKEN_CREDENTIAL).spec_hash()
    after = ScopedCredentialSpec.parse("c", _with(TOKEN_CREDENTIAL, path, value)).spec_hash()
    assert before != after


def test_credential_spec_hash_ignores_secret_name_and_scope_order() -> None:
    before = ScopedCredentialSpec.parse("c", TOKEN_CREDENTIAL).spec_hash()
    moved = _with(TOKEN_CREDENTIAL, "secretName", "other")
    reordered = _with(TOKEN_CREDENTIAL, "token.scopes", ["audit:write", "orders:read"])
    assert ScopedCredentialSpec.parse("c", moved).spec_hash() == before
    assert ScopedCredentialSpec.parse("c", reordered).spec_hash() == before
    vault_a = ScopedCredentialSpec.parse("c", {"identityRef": "p", "vault": {"path": "a/b"}})
    vault_b = ScopedCredentialSpec.parse("c", {"identityRef": "p", "vault": {"path": "a/c"}})
    assert vault_a.spec_hash() != vault_b.spec_hash() != before


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("identityRef", ..., "spec.identityRef", "required"),
        ("identityRef", "Payments", "spec.identityRef", "not a valid"),
        ("token", ..., "spec", "got neither"),
        ("vault", {"path": "a/b"}, "spec", "got both"),
        ("token.audience", ..., "spec.token.audience", "required"),
        ("token.audience", "has space", "spec.token.audience", "whitespace"),
        ("token.scopes", ..., "spec.token.scopes", "required"),
        ("token.scopes", [], "spec.token.scopes", "at least one"),
        ("token.scopes", "orders:read", "spec.token.scopes", "must be a list"),
        ("token.scopes", ["orders:read", "*"], "spec.token.scopes[1]", "wildcard"),
        ("token.scopes", ["orders:*"], "spec.token.scopes[0]", "wildcard"),
        ("token.scopes", ["a", "b", "a"], "spec.token.scopes[2]", "listed twice"),
        ("token.scopes", ["-bad"], "spec.token.scopes[0]", "not a valid scope"),
        ("token.scopes", ["x" * 129], "spec.token.scopes[0]", "not a valid scope"),
        ("token.scopes", [f"s{i}" for i in range(33)], "spec.token.scopes", "at most 32"),
        ("token.ttl", "25h", "spec.token.ttl", "exceeds the longest"),
        ("token.ttl", "1d", "spec.token.ttl", "not a duration"),
        ("token.claims", ["tenant"], "spec.token.claims", "must be an object"),
        ("token.claims", {"sub": "x"}, "spec.token.claims.sub", "registered claim"),
        ("token.claims", {"Scope": "x"}, "spec.token.claims.Scope", "registered claim"),
        ("token.claims", {"ROLES": "x"}, "spec.token.claims.ROLES", "registered claim"),
        ("token.claims", {"9lives": "x"}, "spec.token.claims.9lives", "not allowed"),
        ("token.claims", {"tenant": 5}, "spec.token.claims.tenant", "must be a string"),
        ("token.claims", {"tenant": "v" * 257}, "spec.token.claims.tenant", "at most 256"),
        ("token.claims", {f"c{i}": "v" for i in range(17)}, "spec.token.claims", "at most 16"),
        ("token.extra", 1, "spec.token.extra", "unknown field"),
        ("secretName", "UPPER", "spec.secretName", "not a valid Secret name"),
    ],
)
def test_a_malformed_token_credential_is_refused_naming_its_field(
    path: str, value: Any, field: str, words: str
) -> None:
    with pytest.raises(ValidationError) as err:
        ScopedCredentialSpec.parse("c", _with(TOKEN_CREDENTIAL, path, value))
    assert err.value.field == field
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/database/creds/x", "relative"),
        ("database//creds", "not a valid path"),
        ("database/creds/", "not a valid path"),
        ("database/../sys", "'..'"),
        ("./database", "'.'"),
        ("database/creds/*", "not a valid path"),
        ("database/creds?x=1", "not a valid path"),
        ("x" * 257, "at most 256"),
    ],
)
def test_a_malformed_vault_path_is_refused(path: str, words: str) -> None:
    with pytest.raises(ValidationError) as err:
        ScopedCredentialSpec.parse("c", {"identityRef": "p", "vault": {"path": path}})
    assert err.value.field == "spec.vault.path"
    assert words in str(err.value)


def test_a_claim_value_is_never_echoed_in_an_error() -> None:
    secretish = "s3cr3t-" * 40
    with pytest.raises(ValidationError) as err:
        ScopedCredentialSpec.parse(
            "c", _with(TOKEN_CREDENTIAL, "token.claims", {"tenant": secretish})
        )
    assert "s3cr3t" not in str(err.value)


# --- label selectors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {}, True),
        ({}, {"team": "a"}, True),
        ({"matchLabels": {"team": "a"}}, {"team": "a", "env": "prod"}, True),
        ({"matchLabels": {"team": "a"}}, {"team": "b"}, False),
        ({"matchLabels": {"team": "a"}}, {}, False),
        ({"matchLabels": {"team": ""}}, {"team": ""}, True),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]},
         {"env": "b"}, True),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a"]}]}, {}, False),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
         {"env": "dev"}, True),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
         {}, True),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
         {"env": "prod"}, False),
        ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {"env": ""}, True),
        ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {"env": "x"}, False),
        ({"matchLabels": {"team": "a"},
          "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]},
         {"team": "a", "env": "dev"}, False),
        ({"matchLabels": {"kubernetes.io/metadata.name": "payments"}},
         {"kubernetes.io/metadata.name": "payments"}, True),
    ],
)  # fmt: skip
def test_label_selectors_follow_kubernetes_semantics(
    selector: dict[str, Any], labels: dict[str, str], expected: bool
) -> None:
    assert LabelSelector.parse(selector).matches(labels) is expected


@pytest.mark.parametrize(
    ("selector", "field", "words"),
    [
        (None, "spec.namespaceSelector", "use {} to select every namespace"),
        ([], "spec.namespaceSelector", "must be an object"),
        ({"matchLabel": {}}, "spec.namespaceSelector.matchLabel", "unknown field"),
        ({"matchLabels": {"team": 1}}, "spec.namespaceSelector.matchLabels.team", "strings"),
        ({"matchLabels": {"bad key!": "x"}}, "spec.namespaceSelector.matchLabels.bad key!",
         "label key"),
        ({"matchLabels": {"team": "-x"}}, "spec.namespaceSelector.matchLabels.team",
         "label value"),
        ({"matchExpressions": [{"key": "a", "operator": "Has"}]},
         "spec.namespaceSelector.matchExpressions[0].operator", "unknown operator"),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]},
         "spec.namespaceSelector.matchExpressions[0].values", "must not be empty"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"},
                               {"key": "b", "operator": "Exists", "values": ["x"]}]},
         "spec.namespaceSelector.matchExpressions[1].values", "must be empty"),
        ({"matchExpressions": [{"operator": "Exists"}]},
         "spec.namespaceSelector.matchExpressions[0].key", "required"),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]},
         "spec.namespaceSelector.matchExpressions[0].values", "must be a list"),
        ({"matchExpressions": {"key": "a"}}, "spec.namespaceSelector.matchExpressions",
         "must be a list"),
    ],
)  # fmt: skip
def test_a_malformed_selector_is_refused_naming_its_field(
    selector: object, field: str, words: str
) -> None:
    with pytest.raises(ValidationError) as err:
        LabelSelector.parse(selector)
    assert err.value.field == field
    assert words in str(err.value)


def test_a_requirement_built_directly_is_validated() -> None:
    with pytest.raises(ValidationError):
        LabelSelectorRequirement("env", SelectorOperator.IN, ())
    requirement = LabelSelectorRequirement("env", SelectorOperator.NOT_IN, ["prod"])  # type: ignore[arg-type]
    assert requirement.values == ("prod",)


# --- IdentityPolicy --------------------------------------------------------------------------


def test_a_policy_leaves_unset_grants_as_none_and_empty_lists_as_grants_of_nothing() -> None:
    policy = IdentityPolicy.parse(
        "team-a",
        {"namespaceSelector": {}, "x509": {"dnsNames": []}, "tokens": {"scopes": ["orders:*"]}},
    )
    assert policy.service_accounts == ("*",)
    assert policy.x509 == X509Grant(dns_names=())
    assert policy.x509.key_types is None
    assert policy.jwt == JwtGrant()
    assert policy.tokens == TokenGrant(scopes=("orders:*",))
    assert policy.tokens.claims is None
    assert policy.vault == VaultGrant()
    assert policy.signers is None


def test_a_full_policy_parses() -> None:
    policy = IdentityPolicy.parse(
        "team-a",
        {
            "namespaceSelector": {"matchLabels": {"team": "a"}},
            "serviceAccounts": ["web-*", "api"],
            "x509": {
                "minTTL": "30s",
                "maxTTL": "48h",
                "keyTypes": ["RSA2048", "ECDSAP256"],
                "dnsNames": ["api.example.com", "*.svc.example.com"],
            },
            "jwt": {"minTTL": "1m", "maxTTL": "2h", "audiences": ["orders"]},
            "tokens": {
                "minTTL": "1m",
                "maxTTL": "1h",
                "audiences": ["orders-api"],
                "scopes": ["orders:read", "audit:*"],
                "claims": ["tenant"],
            },
            "vault": {"paths": ["database/creds/orders-*", "kv/data/team-a"]},
            "signers": ["default", "vault"],
        },
    )
    assert policy.x509.min_ttl == timedelta(seconds=30)
    assert policy.x509.key_types == (KeyType.RSA2048, KeyType.ECDSAP256)
    assert policy.jwt.max_ttl == timedelta(hours=2)
    assert policy.tokens.scopes == ("orders:read", "audit:*")
    assert policy.vault.paths == ("database/creds/orders-*", "kv/data/team-a")
    assert policy.signers == ("default", "vault")


POLICY: dict[str, Any] = {"namespaceSelector": {}}


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("namespaceSelector", ..., "spec.namespaceSelector", "required"),
        ("serviceAccounts", "web", "spec.serviceAccounts", "must be a list"),
        ("serviceAccounts", ["web[0-9]"], "spec.serviceAccounts[0]", "pattern"),
        ("x509.minTTL", "1.5m", "spec.x509.minTTL", "fraction"),
        ("x509.maxTTL", "0s", "spec.x509.maxTTL", "zero"),
        ("x509", {"minTTL": "2h", "maxTTL": "1h"}, "spec.x509.minTTL", "exceeds maxTTL"),
        ("x509.keyTypes", ["RSA1024"], "spec.x509.keyTypes[0]", "unknown key type"),
        ("x509.dnsNames", ["*.*.example.com"], "spec.x509.dnsNames[0]", "'*'"),
        ("x509.dnsNames", ["Example.com"], "spec.x509.dnsNames[0]", "lower-case"),
        ("jwt.audiences", ["a b"], "spec.jwt.audiences[0]", "whitespace"),
        ("tokens.scopes", ["*"], "spec.tokens.scopes[0]", "bare '*'"),
        ("tokens.scopes", ["orders:read", "orders*"], "spec.tokens.scopes[1]", "misplaced"),
        ("tokens.scopes", ["*:read"], "spec.tokens.scopes[0]", "misplaced"),
        ("tokens.scopes", [":*"], "spec.tokens.scopes[0]", "misplaced"),
        ("tokens.scopes", ["a:*:*"], "spec.tokens.scopes[0]", "misplaced"),
        ("tokens.scopes", ["*:*"], "spec.tokens.scopes[0]", "misplaced"),
        ("tokens.scopes", ["Admin:*"], "spec.tokens.scopes[0]", "grant-all"),
        ("tokens.scopes", ["root:*"], "spec.tokens.scopes[0]", "grant-all"),
        ("tokens.claims", ["iss"], "spec.tokens.claims[0]", "registered claim"),
        ("tokens.bogus", [], "spec.tokens.bogus", "unknown field"),
        ("vault.paths", ["*"], "spec.vault.paths[0]", "bare '*'"),
        ("vault.paths", ["a/*/b"], "spec.vault.paths[0]", "only end in '*'"),
        ("vault.paths", ["/abs/*"], "spec.vault.paths[0]", "relative"),
        ("vault.paths", ["a/../*"], "spec.vault.paths[0]", "'..'"),
        ("signers", ["Vault"], "spec.signers[0]", "not a valid signer name"),
        ("signers", "default", "spec.signers", "must be a list"),
        ("surprise", 1, "spec.surprise", "unknown field"),
    ],
)
def test_a_malformed_policy_is_refused_naming_its_field(
    path: str, value: Any, field: str, words: str
) -> None:
    with pytest.raises(ValidationError) as err:
        IdentityPolicy.parse("team-a", _with(POLICY, path, value))
    assert err.value.field == field
    assert words in str(err.value)


def test_a_policy_name_must_be_an_object_name() -> None:
    with pytest.raises(ValidationError) as err:
        IdentityPolicy.parse("Team A", POLICY)
    assert err.value.field == "metadata.name"


def test_a_bare_star_grant_cannot_be_constructed_directly_either() -> None:
    with pytest.raises(ValidationError, match="bare"):
        TokenGrant(scopes=("*",))
    with pytest.raises(ValidationError, match="bare"):
        VaultGrant(paths=("*",))


# --- never crash on a malformed object -------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _refused_field(parse: Any, spec: Any) -> str:
    """The field a ValidationError names, or "-" when ``spec`` parses; anything else raises."""
    try:
        parse("fuzz", spec)
    except ValidationError as err:
        return err.field
    return "-"


def _shaped(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the right keys and random values: closer to real mistakes than noise."""
    return st.dictionaries(st.sampled_from(keys), _json, max_size=len(keys))


@settings(max_examples=300)
@given(
    st.one_of(
        _json,
        _shaped(["serviceAccountName", "x509", "jwt", "secretName", "signer"]),
    )
)
def test_any_identity_object_parses_or_is_refused_with_a_validation_error(spec: Any) -> None:
    assert _refused_field(WorkloadIdentitySpec.parse, spec).startswith(("spec", "metadata", "-"))


@settings(max_examples=300)
@given(st.one_of(_json, _shaped(["identityRef", "token", "vault", "secretName"])))
def test_any_credential_object_parses_or_is_refused_with_a_validation_error(spec: Any) -> None:
    assert _refused_field(ScopedCredentialSpec.parse, spec).startswith(("spec", "metadata", "-"))


@settings(max_examples=300)
@given(
    st.one_of(
        _json,
        _shaped(["namespaceSelector", "serviceAccounts", "x509", "jwt", "tokens", "vault"]),
    )
)
def test_any_policy_object_parses_or_is_refused_with_a_validation_error(spec: Any) -> None:
    assert _refused_field(IdentityPolicy.parse, spec).startswith(("spec", "metadata", "-"))


@pytest.mark.parametrize("address", ["10.0.0.1", "192.168.1.10", "::1", "2001:db8::1"])
def test_an_ip_address_is_refused_as_a_dns_name(address: str) -> None:
    """A DNS SAN holding an IP literal would be matched by some clients as a host name."""
    with pytest.raises(ValidationError) as refused:
        WorkloadIdentitySpec.parse(
            "web", {"serviceAccountName": "web", "x509": {"dnsNames": [address]}}
        )
    assert refused.value.field.startswith("spec.x509.dnsNames")
    assert "IP address" in str(refused.value)


def test_an_ip_address_is_refused_in_a_policy_dns_grant() -> None:
    with pytest.raises(ValidationError, match="IP address"):
        check_dns_name("10.0.0.1")
