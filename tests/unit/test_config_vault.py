# SPDX-License-Identifier: Apache-2.0
"""The admin's ``vault`` block (ScopedCredential dynamic secrets) and introspection limits:
defaults, a full example, and refusals that name the YAML path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from wio.config import VaultAuthMethod, VaultSecrets, parse_config
from wio.errors import ConfigError

pytestmark = pytest.mark.unit

MINIMAL: dict[str, Any] = {"trustDomain": "example.org", "jwtIssuer": "https://wio.example.org"}
VAULT: dict[str, Any] = {
    "address": "https://vault.example.org:8200",
    "auth": {"method": "kubernetes", "role": "wio-secrets"},
    "mounts": ["database", "teams/db"],
}


def _with_vault(**changes: Any) -> dict[str, Any]:
    block = {**VAULT, **changes}
    return {**MINIMAL, "vault": {k: v for k, v in block.items() if v is not ...}}


def test_without_a_vault_block_no_dynamic_secret_is_read_and_limits_default() -> None:
    config = parse_config(MINIMAL, {})
    assert config.vault is None
    assert (config.introspection_rate, config.introspection_burst) == (20.0, 40)


def test_a_vault_block_loads_with_its_mounts() -> None:
    document = _with_vault(timeout="3s", caCertFile="/etc/wio/vault-ca.pem")
    document["rateLimits"] = {"introspectionPerSecond": 5, "introspectionBurst": 7}
    config = parse_config(document, {})
    vault = config.vault
    assert isinstance(vault, VaultSecrets)
    assert vault.address == "https://vault.example.org:8200"
    assert vault.auth.method is VaultAuthMethod.KUBERNETES
    assert vault.mounts == ("database", "teams/db")
    assert vault.timeout == timedelta(seconds=3)
    assert vault.ca_cert_file == Path("/etc/wio/vault-ca.pem")
    assert (config.introspection_rate, config.introspection_burst) == (5.0, 7)


def test_only_paths_strictly_under_a_configured_mount_are_allowed() -> None:
    vault = parse_config(_with_vault(), {}).vault
    assert vault is not None
    assert vault.allows("database/creds/orders-ro")
    assert vault.allows("teams/db/creds/x")
    assert not vault.allows("database")
    assert not vault.allows("databases/creds/x")
    assert not vault.allows("teams/dbx/creds/x")
    assert not vault.allows("sys/leases/lookup")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"mounts": []}, "vault.mounts", "non-empty"),
        ({"mounts": "database"}, "vault.mounts", "list"),
        ({"mounts": ["sys"]}, "vault.mounts[0]", "not a secrets engine"),
        ({"mounts": ["auth/kubernetes"]}, "vault.mounts[0]", "not a secrets engine"),
        ({"mounts": ["database", "cubbyhole"]}, "vault.mounts[1]", "not a secrets engine"),
        ({"mounts": ["../sys"]}, "vault.mounts[0]", "mount path"),
        ({"mounts": ["database", "database"]}, "vault.mounts[1]", "listed twice"),
        ({"mounts": ...}, "vault.mounts", "required"),
        ({"address": "http://vault.example.org"}, "vault.address", "plain http"),
        ({"address": ...}, "vault.address", "required"),
        ({"auth": ...}, "vault.auth", "required"),
        ({"timeout": "0s"}, "vault.timeout", "positive"),
        ({"token": "s.abc"}, "vault.token", "unknown key"),
    ],
)
def test_a_bad_vault_block_is_refused_naming_its_path(
    changes: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_with_vault(**changes), {})
    assert caught.value.field == field
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"introspectionPerSecond": 0}, "rateLimits.introspectionPerSecond"),
        ({"introspectionBurst": 0}, "rateLimits.introspectionBurst"),
        ({"introspectionBurst": 1.5}, "rateLimits.introspectionBurst"),
    ],
)
def test_bad_introspection_limits_are_refused(limits: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**MINIMAL, "rateLimits": limits}, {})
    assert caught.value.field == field
