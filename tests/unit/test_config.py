# SPDX-License-Identifier: Apache-2.0
"""The admin configuration loads from YAML and environment variables with documented defaults,
and refuses every typo, wrong type and out-of-range value with the YAML path of the offender."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from wio.config import (
    DEFAULT_SA_TOKEN_FILE,
    ENV_OVERRIDES,
    AdminConfig,
    LocalJwt,
    LocalX509,
    SignerConfig,
    VaultAuth,
    VaultAuthMethod,
    VaultPkiX509,
    VaultTransitJwt,
    load_config,
    parse_config,
)
from wio.errors import ConfigError
from wio.issuing.jwt import JwtAlgorithm
from wio.models.spiffe import TrustDomain

pytestmark = pytest.mark.unit

MINIMAL: dict[str, Any] = {"trustDomain": "example.org", "jwtIssuer": "https://wio.example.org"}

FULL_YAML = """\
trustDomain: prod.example.org
jwtIssuer: https://wio.example.org/oidc
operatorNamespace: identity
watchNamespaces: [payments, orders]
signers:
  default:
    x509: {type: local}
    jwt: {type: local, algorithm: ES384}
  vault:
    x509:
      type: vaultPKI
      address: https://vault.example.org:8200
      mount: pki_int
      role: wio
      caCertFile: /etc/wio/vault-ca.pem
      signVerbatim: false
      timeout: 5s
      auth: {method: kubernetes, role: wio}
    jwt:
      type: vaultTransit
      address: https://vault.example.org:8200
      mount: transit
      key: wio-jwt
      auth:
        method: approle
        roleID: 4f0c-role
        secretIDFile: /var/run/secrets/vault/secret-id
  dev:
    x509:
      type: vaultPKI
      address: http://127.0.0.1:8200
      role: dev
      auth: {method: token, tokenFile: /var/run/secrets/vault/token}
    jwt: {type: local}
skew: 45s
rotation: {fraction: 0.6, jitter: 0.2}
minTTL: 5m
maxX509TTL: 12h
maxJwtTTL: 30m
maxTokenTTL: 20m
caLifetime: 2160h
rolloverPublishDelay: 2m
rateLimits: {issuancePerSecond: 20.5, issuanceBurst: 40, maxInflightWrites: 8}
http: {host: 127.0.0.1, port: 9443}
logLevel: debug
revocationConfigMap: revoked
trustConfigMap: trust
localCASecret: ca
"""


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _with(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy with the dotted ``path`` set to ``value`` (``...`` removes it)."""
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


def test_a_minimal_configuration_gets_every_documented_default() -> None:
    config = parse_config(MINIMAL, {})
    assert config.trust_domain == TrustDomain("example.org")
    assert config.jwt_issuer == "https://wio.example.org"
    assert config.operator_namespace == "wio-system"
    assert config.watch_namespaces == ()
    assert dict(config.signers) == {
        "default": SignerConfig(name="default", x509=LocalX509(), jwt=LocalJwt())
    }
    assert config.signers["default"].jwt == LocalJwt(JwtAlgorithm.ES256)
    assert config.skew == timedelta(seconds=30)
    assert (config.rotation_fraction, config.rotation_jitter) == (0.5, 0.1)
    assert config.min_ttl == timedelta(minutes=10)
    assert config.max_x509_ttl == timedelta(hours=24)
    assert config.max_jwt_ttl == config.max_token_ttl == timedelta(hours=1)
    assert config.ca_lifetime == timedelta(days=365)
    assert (config.issuance_rate, config.issuance_burst) == (100.0, 200)
    assert config.max_inflight_writes == 32
    assert (config.http_host, config.http_port) == ("0.0.0.0", 8443)  # noqa: S104
    assert config.metrics_port == 9090
    assert config.tls_mode == "auto"
    assert config.serves_tls  # not on loopback: TLS, with a certificate wio issues itself
    assert config.leader_election
    assert config.log_level == "INFO"
    assert config.revocation_configmap == "wio-revocations"
    assert config.trust_configmap == "wio-trust-bundle"
    assert config.local_ca_secret == "wio-local-ca"
    assert config == AdminConfig(
        trust_domain=TrustDomain("example.org"), jwt_issuer="https://wio.example.org"
    )


def test_the_full_yaml_example_loads_every_value(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, FULL_YAML), {})
    assert config.trust_domain == TrustDomain("prod.example.org")
    assert config.jwt_issuer == "https://wio.example.org/oidc"
    assert config.operator_namespace == "identity"
    assert config.watch_namespaces == ("payments", "orders")
    assert sorted(config.signers) == ["default", "dev", "vault"]
    assert config.signers["default"].jwt == LocalJwt(JwtAlgorithm.ES384)
    vault = config.signers["vault"]
    assert vault.x509 == VaultPkiX509(
        address="https://vault.example.org:8200",
        mount="pki_int",
        role="wio",
        auth=VaultAuth(
            method=VaultAuthMethod.KUBERNETES,
            role="wio",
            mount="kubernetes",
            service_account_token_file=DEFAULT_SA_TOKEN_FILE,
        ),
        ca_cert_file=Path("/etc/wio/vault-ca.pem"),
        timeout=timedelta(seconds=5),
    )
    assert vault.jwt == VaultTransitJwt(
        address="https://vault.example.org:8200",
        mount="transit",
        key="wio-jwt",
        auth=VaultAuth(
            method=VaultAuthMethod.APPROLE,
            role_id="4f0c-role",
            secret_id_file=Path("/var/run/secrets/vault/secret-id"),
        ),
    )
    assert isinstance(vault.jwt, VaultTransitJwt)
    assert vault.jwt.auth.mount == "approle"
    dev = config.signers["dev"]
    assert isinstance(dev.x509, VaultPkiX509)
    assert dev.x509.mount == "pki"
    assert dev.x509.auth.token_file == Path("/var/run/secrets/vault/token")
    assert dev.x509.auth.mount is None
    assert config.skew == timedelta(seconds=45)
    assert (config.rotation_fraction, config.rotation_jitter) == (0.6, 0.2)
    assert config.min_ttl == timedelta(minutes=5)
    assert config.max_x509_ttl == timedelta(hours=12)
    assert config.max_jwt_ttl == timedelta(minutes=30)
    assert config.max_token_ttl == timedelta(minutes=20)
    assert config.ca_lifetime == timedelta(days=90)
    assert (config.issuance_rate, config.issuance_burst, config.max_inflight_writes) == (
        20.5,
        40,
        8,
    )
    assert (config.http_host, config.http_port) == ("127.0.0.1", 9443)
    assert config.log_level == "DEBUG"
    assert (config.revocation_configmap, config.trust_configmap, config.local_ca_secret) == (
        "revoked",
        "trust",
        "ca",
    )


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    env = {
        "WIO_TRUST_DOMAIN": "staging.example.org",
        "WIO_JWT_ISSUER": "https://wio.staging.example.org",
        "WIO_OPERATOR_NAMESPACE": "wio-staging",
        "WIO_WATCH_NAMESPACES": "a, b,c",
        "WIO_LOG_LEVEL": "warning",
        "WIO_HTTP_PORT": "8443",
        "WIO_METRICS_PORT": "9191",
        "WIO_MIN_TTL": "15m",
        "WIO_KEEP_DEVCLUSTER": "1",  # other WIO_ variables belong to other tools
    }
    config = load_config(_write(tmp_path, FULL_YAML), env)
    assert config.trust_domain == TrustDomain("staging.example.org")
    assert config.jwt_issuer == "https://wio.staging.example.org"
    assert config.operator_namespace == "wio-staging"
    assert config.watch_namespaces == ("a", "b", "c")
    assert config.log_level == "WARNING"
    assert config.http_port == 8443
    assert config.metrics_port == 9191
    assert config.http_host == "127.0.0.1"  # the rest of the http block is kept
    assert config.min_ttl == timedelta(minutes=15)
    assert set(ENV_OVERRIDES) == set(env) - {"WIO_KEEP_DEVCLUSTER"}


def test_the_environment_alone_is_enough_and_empty_variables_count_as_unset() -> None:
    env = {
        "WIO_TRUST_DOMAIN": "example.org",
        "WIO_JWT_ISSUER": "https://wio.example.org",
        "WIO_LOG_LEVEL": "",
        "WIO_WATCH_NAMESPACES": "",
    }
    config = load_config(None, env)
    assert config.trust_domain == TrustDomain("example.org")
    assert config.log_level == "INFO"
    assert config.watch_namespaces == ()


@pytest.mark.parametrize(
    ("env", "field", "words"),
    [
        ({"WIO_HTTP_PORT": "eighty"}, "WIO_HTTP_PORT", "port number"),
        ({"WIO_HTTP_PORT": "70000"}, "http.port", "(set by WIO_HTTP_PORT)"),
        ({"WIO_MIN_TTL": "1.5m"}, "minTTL", "(set by WIO_MIN_TTL)"),
        ({"WIO_WATCH_NAMESPACES": "a,,b"}, "WIO_WATCH_NAMESPACES", "position 2"),
        ({"WIO_WATCH_NAMESPACES": "a,B"}, "watchNamespaces[1]", "(set by WIO_WATCH_NAMESPACES)"),
        ({"WIO_JWT_ISSUER": "http://wio"}, "jwtIssuer", "(set by WIO_JWT_ISSUER)"),
        ({"WIO_LOG_LEVEL": "chatty"}, "logLevel", "(set by WIO_LOG_LEVEL)"),
    ],
)
def test_a_bad_environment_value_names_where_it_came_from(
    env: dict[str, str], field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL, env)
    assert err.value.field == field
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("key", "env_name"), [("trustDomain", "WIO_TRUST_DOMAIN"), ("jwtIssuer", "WIO_JWT_ISSUER")]
)
def test_trust_domain_and_issuer_are_required_with_a_clear_error(key: str, env_name: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_with(MINIMAL, key, ...), {})
    assert err.value.field == key
    assert "is required" in str(err.value)
    assert env_name in str(err.value)


VAULT_SIGNER: dict[str, Any] = {
    "x509": {
        "type": "vaultPKI",
        "address": "https://vault.example.org:8200",
        "role": "wio",
        "auth": {"method": "kubernetes", "role": "wio"},
    },
    "jwt": {
        "type": "vaultTransit",
        "address": "https://vault.example.org:8200",
        "key": "wio",
        "auth": {"method": "kubernetes", "role": "wio"},
    },
}
WITH_VAULT: dict[str, Any] = {
    **MINIMAL,
    "signers": {
        "default": {"x509": {"type": "local"}, "jwt": {"type": "local"}},
        "vault": VAULT_SIGNER,
    },
}


def test_the_vault_fixture_is_valid() -> None:
    assert isinstance(parse_config(WITH_VAULT, {}).signers["vault"].x509, VaultPkiX509)


PKI = "signers.vault.x509"
AUTH = "signers.vault.x509.auth"


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("minTtl", "5m", "minTtl", "unknown key"),
        ("rotation.fractoin", 0.5, "rotation.fractoin", "unknown key"),
        ("http.bind", "x", "http.bind", "unknown key"),
        ("rotation", 0.5, "rotation", "must be a mapping"),
        ("rotation.fraction", 1, "rotation.fraction", "strictly between 0 and 1"),
        ("rotation.fraction", 0, "rotation.fraction", "strictly between 0 and 1"),
        ("rotation.fraction", "0.5", "rotation.fraction", "must be a number"),
        ("rotation.fraction", True, "rotation.fraction", "must be a number"),
        ("rotation.jitter", -0.1, "rotation.jitter", "at least 0"),
        ("rotation.jitter", 1.0, "rotation.jitter", "below 1"),
        ("rotation", {"fraction": 0.9, "jitter": 0.2}, "rotation.jitter",
         "fraction x (1 + jitter)"),
        ("minTTL", 600, "minTTL", "duration string"),
        ("minTTL", "5s", "minTTL", "at least 10s"),
        ("maxX509TTL", "5m", "maxX509TTL", "below minTTL"),
        ("maxX509TTL", "721h", "maxX509TTL", "exceeds 720h"),
        ("maxJwtTTL", "25h", "maxJwtTTL", "exceeds 24h"),
        ("maxTokenTTL", "1m", "maxTokenTTL", "below minTTL"),
        ("caLifetime", "100h", "caLifetime", "at least 6 x maxX509TTL"),
        ("caLifetime", "365d", "caLifetime", "not a duration"),
        ("rolloverPublishDelay", "169h", "rolloverPublishDelay", "between 0s and 168h"),
        ("rolloverPublishDelay", "-1m", "rolloverPublishDelay", "negative"),
        ("skew", "1h", "skew", "between 0s and 5m"),
        ("skew", "-1s", "skew", "negative"),
        ("trustDomain", "Example.org", "trustDomain", "lower case"),
        ("trustDomain", 42, "trustDomain", "must be a string"),
        ("jwtIssuer", "http://wio.example.org", "jwtIssuer", "plain http"),
        ("jwtIssuer", "https://wio.example.org/", "jwtIssuer", "must not end with '/'"),
        ("jwtIssuer", "https://wio.example.org?x=1", "jwtIssuer", "query"),
        ("jwtIssuer", "https://u:p@wio.example.org", "jwtIssuer", "credentials"),
        ("jwtIssuer", "wio.example.org", "jwtIssuer", "https:// URL"),
        ("jwtIssuer", "https://wio.example.org:99999", "jwtIssuer", "malformed"),
        ("operatorNamespace", "Wio", "operatorNamespace", "namespace name"),
        ("watchNamespaces", "payments", "watchNamespaces", "must be a list"),
        ("watchNamespaces", ["a", "a"], "watchNamespaces[1]", "listed twice"),
        ("watchNamespaces", ["a", "B"], "watchNamespaces[1]", "not a namespace name"),
        ("rateLimits.issuancePerSecond", 0, "rateLimits.issuancePerSecond", "above 0"),
        ("rateLimits.issuanceBurst", 0, "rateLimits.issuanceBurst", "between 1"),
        ("rateLimits.maxInflightWrites", 1.5, "rateLimits.maxInflightWrites", "integer"),
        ("http.port", 0, "http.port", "between 1 and 65535"),
        ("http.port", "8080", "http.port", "integer"),
        ("http.host", "", "http.host", "host name"),
        ("logLevel", "LOUD", "logLevel", "one of DEBUG"),
        ("revocationConfigMap", "Bad_Name", "revocationConfigMap", "not a valid object name"),
        ("localCASecret", "", "localCASecret", "not a valid object name"),
        ("signers", [], "signers", "must be a mapping"),
        ("signers.default", ..., "signers.default", "a signer named 'default' is required"),
        ("signers.Bad", VAULT_SIGNER, "signers.Bad", "DNS-1123"),
        ("signers.default.x509", ..., "signers.default.x509", "is required"),
        ("signers.default.x509.type", "vault", "signers.default.x509.type", "unknown type"),
        ("signers.default.x509.role", "x", "signers.default.x509.role", "unknown key"),
        ("signers.default.jwt.algorithm", "HS256", "signers.default.jwt.algorithm", "unknown JWT"),
        ("signers.default.jwt", "local", "signers.default.jwt", "must be a mapping"),
        (f"{PKI}.address", "ftp://vault", f"{PKI}.address", "https:// URL"),
        (f"{PKI}.address", "http://vault.example.org:8200", f"{PKI}.address", "plain http"),
        (f"{PKI}.address", "https://vault:8200/v1", f"{PKI}.address", "must not have a path"),
        (f"{PKI}.address", ..., f"{PKI}.address", "is required"),
        (f"{PKI}.mount", "../pki", f"{PKI}.mount", "mount path"),
        (f"{PKI}.mount", "pki/", f"{PKI}.mount", "mount path"),
        (f"{PKI}.role", "a/b", f"{PKI}.role", "one path segment"),
        (f"{PKI}.role", ..., f"{PKI}.role", "is required"),
        (f"{PKI}.timeout", "10m", f"{PKI}.timeout", "at most"),
        (f"{PKI}.signVerbatim", "yes", f"{PKI}.signVerbatim", "true or false"),
        (f"{PKI}.caCertFile", "ca.pem", f"{PKI}.caCertFile", "absolute"),
        (f"{PKI}.token", "hvs.secret", f"{PKI}.token", "unknown key"),
        (f"{PKI}.auth", ..., f"{PKI}.auth", "is required"),
        (f"{AUTH}.method", "ldap", f"{AUTH}.method", "unknown method"),
        (f"{AUTH}.role", ..., f"{AUTH}.role", "is required for auth method kubernetes"),
        (f"{AUTH}.token", "hvs.inline", f"{AUTH}.token", "unknown key"),
        (f"{AUTH}.tokenFile", "/t", f"{AUTH}.tokenFile", "not used by auth method kubernetes"),
        (f"{AUTH}.serviceAccountTokenFile", "token", f"{AUTH}.serviceAccountTokenFile",
         "absolute"),
        (AUTH, {"method": "token"}, f"{AUTH}.tokenFile", "is required for auth method token"),
        (AUTH, {"method": "token", "tokenFile": "/t", "role": "r"}, f"{AUTH}.role", "not used"),
        (AUTH, {"method": "approle", "roleID": "r"}, f"{AUTH}.secretIDFile", "is required"),
        (AUTH, {"method": "approle", "secretIDFile": "/s"}, f"{AUTH}.roleID", "is required"),
        ("signers.vault.jwt.key", ..., "signers.vault.jwt.key", "is required"),
        ("signers.vault.jwt.type", "vaultPKI", "signers.vault.jwt.type", "unknown type"),
        ("signers.vault.jwt.signVerbatim", True, "signers.vault.jwt.signVerbatim", "unknown key"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_naming_its_yaml_path(
    path: str, value: Any, field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_with(WITH_VAULT, path, value), {})
    assert err.value.field == field
    assert words in str(err.value)
    assert str(err.value).startswith(f"{field}: ")


def test_loopback_vault_and_issuer_may_use_plain_http() -> None:
    document = _with(WITH_VAULT, "jwtIssuer", "http://127.0.0.1:8080")
    document = _with(document, f"{PKI}.address", "http://localhost:8200")
    config = parse_config(document, {})
    assert config.jwt_issuer == "http://127.0.0.1:8080"


def test_zero_skew_is_allowed() -> None:
    assert parse_config(_with(MINIMAL, "skew", "0s"), {}).skew == timedelta(0)


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    text = "trustDomain: example.org\njwtIssuer: https://a.example.org\nminTTL: 5m\nminTTL: 1h\n"
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text), {})
    assert err.value.field == "minTTL"
    assert "duplicate key at line 4" in str(err.value)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, "- trustDomain\n"), {})
    assert err.value.field == "config"


def test_invalid_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "trustDomain: example.org\nsigners: {default: [\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, {})
    assert err.value.field == path
    assert "not valid YAML at line" in str(err.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError) as err:
        load_config(path, {})
    assert err.value.field == path


def test_an_empty_file_is_an_empty_configuration(tmp_path: Path) -> None:
    env = {"WIO_TRUST_DOMAIN": "example.org", "WIO_JWT_ISSUER": "https://wio.example.org"}
    assert load_config(_write(tmp_path, ""), env) == parse_config(None, env)


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ConfigError) as err:
        AdminConfig(
            trust_domain=TrustDomain("example.org"),
            jwt_issuer="https://wio.example.org",
            rotation_fraction=1.0,
        )
    assert err.value.field == "rotation.fraction"
    with pytest.raises(ConfigError) as err:
        VaultAuth(method=VaultAuthMethod.KUBERNETES)
    assert err.value.field == "role"


def test_secrets_are_referenced_by_file_and_never_shown_in_repr() -> None:
    auth = VaultAuth(method=VaultAuthMethod.TOKEN, token_file=Path("/var/run/vault/token"))
    assert "/var/run/vault/token" in repr(auth)
    assert not any(name in {"token", "secret_id"} for name in VaultAuth.__dataclass_fields__)


@pytest.mark.parametrize(
    ("http", "serves_tls"),
    [
        ({"host": "127.0.0.1"}, False),  # loopback: plain HTTP unless asked
        ({"host": "::1", "tls": {"mode": "self"}}, True),
        ({"host": "0.0.0.0"}, True),  # noqa: S104 - anywhere else: TLS by default
        ({"host": "0.0.0.0", "tls": {"mode": "none"}}, False),  # noqa: S104 - TLS in front
        ({"tls": {"mode": "files", "certFile": "/tls/tls.crt", "keyFile": "/tls/tls.key"}}, True),
    ],
)
def test_the_public_port_speaks_tls_unless_on_loopback_or_told_not_to(
    http: dict[str, Any], serves_tls: bool
) -> None:
    config = parse_config({**MINIMAL, "http": http}, {})
    assert config.serves_tls is serves_tls


def test_a_self_issued_serving_certificate_names_the_service_in_every_form() -> None:
    config = parse_config(
        {
            **MINIMAL,
            "operatorNamespace": "ops",
            "http": {"tls": {"serviceName": "identity", "dnsNames": ["wio.example.org"]}},
        },
        {},
    )
    assert config.serving_dns_names == (
        "identity",
        "identity.ops",
        "identity.ops.svc",
        "identity.ops.svc.cluster.local",
        "wio.example.org",
    )


@pytest.mark.parametrize(
    ("http", "field", "words"),
    [
        ({"tls": {"mode": "mtls"}}, "http.tls.mode", "one of"),
        ({"tls": {"mode": "files", "certFile": "/a"}}, "http.tls", "both certFile and keyFile"),
        ({"tls": {"certFile": "/a", "keyFile": "/b"}}, "http.tls", "mode files only"),
        ({"tls": {"dnsNames": ["bad name"]}}, "http.tls.dnsNames[0]", "not a DNS name"),
        ({"tls": {"serviceName": "Wio_Svc"}}, "http.tls.serviceName", "DNS-1123"),
        ({"port": 9090, "metricsPort": 9090}, "http.metricsPort", "must differ"),
        ({"tls": {"mode": "none", "insecure": True}}, "http.tls.insecure", "unknown"),
    ],
)
def test_bad_http_settings_name_the_field(http: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config({**MINIMAL, "http": http}, {})
    assert field in str(refused.value)
    assert words in str(refused.value)
