# SPDX-License-Identifier: Apache-2.0
"""Admin configuration → Vault/OpenBao backends (PKI for X.509, Transit for JWTs, and the
dynamic secrets ScopedCredentials read).

Only admins configure these (address, mount, role, key, auth); tenants merely name the
signer. Secrets referenced by file path are read here, once, when the signer is built.
"""

from __future__ import annotations

from pathlib import Path

from wio.backends.vault import (
    DEFAULT_SA_TOKEN_PATH,
    AppRoleAuth,
    KubernetesAuth,
    TokenAuth,
    VaultAuth,
    VaultClient,
    VaultConnection,
)
from wio.backends.vault_dynamic import VaultDynamicSecrets
from wio.backends.vault_pki import PkiRole, VaultPkiAuthority
from wio.backends.vault_transit import TransitKey, VaultTransitSigner
from wio.clock import Clock
from wio.config import AdminConfig, VaultAuthMethod, VaultPkiX509, VaultSecrets, VaultTransitJwt
from wio.config import VaultAuth as VaultAuthConfig
from wio.errors import ConfigError


def _secret_file(path: Path | None, field: str) -> str:
    if path is None:
        raise ConfigError(field, "is required")
    try:
        return path.read_text().strip()
    except OSError as err:
        raise ConfigError(field, f"cannot read {path}: {err.strerror}") from err


def _auth(auth: VaultAuthConfig, where: str) -> VaultAuth:
    match auth.method:
        case VaultAuthMethod.TOKEN:
            return TokenAuth(_secret_file(auth.token_file, f"{where}.auth.tokenFile"))
        case VaultAuthMethod.APPROLE:
            return AppRoleAuth(
                role_id=auth.role_id or "",
                secret_id=_secret_file(auth.secret_id_file, f"{where}.auth.secretIDFile"),
                mount=auth.mount or "approle",
            )
        case VaultAuthMethod.KUBERNETES:
            return KubernetesAuth(
                role=auth.role or "",
                mount=auth.mount or "kubernetes",
                token_path=auth.service_account_token_file or DEFAULT_SA_TOKEN_PATH,
            )
    raise ConfigError(f"{where}.auth.method", f"unknown method {auth.method}")


def _client(
    address: str,
    auth: VaultAuthConfig,
    ca_cert_file: Path | None,
    timeout: float,
    where: str,
    clock: Clock,
    clients: list[VaultClient],
) -> VaultClient:
    connection = VaultConnection(
        address=address,
        auth=_auth(auth, where),
        ca_cert_file=ca_cert_file,
        timeout=timeout,
        allow_plain_http=address.startswith("http://"),
    )
    client = VaultClient(connection, clock=clock)
    clients.append(client)
    return client


def vault_authority(
    name: str, cfg: VaultPkiX509, config: AdminConfig, clock: Clock, clients: list[VaultClient]
) -> VaultPkiAuthority:
    where = f"signers.{name}.x509"
    client = _client(
        cfg.address, cfg.auth, cfg.ca_cert_file, cfg.timeout.total_seconds(), where, clock, clients
    )
    role = PkiRole(
        role=cfg.role, trust_domain=config.trust_domain, mount=cfg.mount, verbatim=cfg.sign_verbatim
    )
    return VaultPkiAuthority(client, role, name=name, clock=clock)


def vault_jwt_signer(
    name: str, cfg: VaultTransitJwt, clock: Clock, clients: list[VaultClient]
) -> VaultTransitSigner:
    where = f"signers.{name}.jwt"
    client = _client(
        cfg.address, cfg.auth, cfg.ca_cert_file, cfg.timeout.total_seconds(), where, clock, clients
    )
    return VaultTransitSigner(
        client, TransitKey(key=cfg.key, mount=cfg.mount), name=name, clock=clock
    )


def vault_dynamic_secrets(
    cfg: VaultSecrets, clock: Clock, clients: list[VaultClient]
) -> VaultDynamicSecrets:
    """The ``vault`` block of the admin configuration, for ScopedCredential dynamic secrets."""
    client = _client(
        cfg.address,
        cfg.auth,
        cfg.ca_cert_file,
        cfg.timeout.total_seconds(),
        "vault",
        clock,
        clients,
    )
    return VaultDynamicSecrets(client, cfg.mounts)
