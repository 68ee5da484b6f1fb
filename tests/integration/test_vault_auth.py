# SPDX-License-Identifier: Apache-2.0
"""Vault/OpenBao plumbing against real servers: the three auth methods, re-login, TLS, and
how every kind of failure maps onto wio's exception tree.

Auth runs against the session OpenBao (and, for the Kubernetes method, the real control
plane's TokenReview API). Failure modes a healthy server cannot produce on demand (429,
500, 503, a hang) come from a tiny scripted HTTP server in this module.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import threading
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
from kubernetes import client as k8s

from tests.support.waiting import wait_for
from wio.backends.protocols import SvidRequest
from wio.backends.vault import (
    AppRoleAuth,
    KubernetesAuth,
    TokenAuth,
    VaultClient,
    VaultConnection,
    map_vault_error,
    parse_retry_after,
)
from wio.backends.vault_pki import PkiRole, VaultPkiAuthority, vault_serial
from wio.backends.vault_transit import TransitKey, VaultTransitSigner
from wio.clock import FakeClock
from wio.devcluster import Binaries, ControlPlane, OpenBao
from wio.devcluster.processes import ManagedProcess, free_port
from wio.errors import ConfigError, SignerRejected, SignerUnavailable
from wio.issuing.jwt import jwt_svid_claims, new_jti
from wio.issuing.keys import KeyType, generate_private_key
from wio.models.spiffe import SpiffeID, TrustDomain

TD = TrustDomain("example.org")
WORKLOAD = SpiffeID.for_workload(TD, "payments", "api")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Signing:
    """A PKI role and a Transit key, and a policy that allows exactly what wio needs."""

    pki_mount: str
    transit_mount: str
    transit_key: str
    policy: str
    role: str = "svid"


# The policy documented in vault_pki.py and vault_transit.py, nothing more.
_POLICY = """
path "{pki}/sign/svid"        {{ capabilities = ["create", "update"] }}
path "{pki}/revoke"           {{ capabilities = ["create", "update"] }}
path "{pki}/issuers"          {{ capabilities = ["list"] }}
path "{pki}/issuer/+/json"    {{ capabilities = ["read"] }}
path "{transit}/sign/{key}"   {{ capabilities = ["update"] }}
path "{transit}/keys/{key}"   {{ capabilities = ["read"] }}
"""


@pytest.fixture(scope="session")
def root(openbao: OpenBao) -> hvac.Client:
    return hvac.Client(url=openbao.address, token=openbao.root_token)


@pytest.fixture(scope="session")
def signing(root: hvac.Client) -> Signing:
    suffix = uuid.uuid4().hex[:8]
    pki, transit, key, policy = (
        f"pki-auth-{suffix}",
        f"transit-auth-{suffix}",
        "jwt",
        f"wio-{suffix}",
    )
    root.sys.enable_secrets_engine("pki", path=pki, config={"max_lease_ttl": "87600h"})
    root.adapter.post(f"/v1/{pki}/root/generate/internal", json={"common_name": "r", "ttl": "720h"})
    root.adapter.post(
        f"/v1/{pki}/roles/svid",
        json={
            "allowed_uri_sans": "spiffe://example.org/ns/*",
            "basic_constraints_valid_for_non_ca": True,
            "require_cn": False,
            "use_csr_sans": False,
            "use_csr_common_name": False,
            "allow_any_name": False,
            "key_type": "any",
            "key_usage": ["DigitalSignature"],
            "max_ttl": "24h",
        },
    )
    root.sys.enable_secrets_engine("transit", path=transit)
    root.adapter.post(f"/v1/{transit}/keys/{key}", json={"type": "ecdsa-p256"})
    root.sys.create_or_update_policy(policy, _POLICY.format(pki=pki, transit=transit, key=key))
    return Signing(pki, transit, key, policy)


@dataclass(frozen=True)
class AppRole:
    mount: str
    role: str
    role_id: str
    secret_id: str


def _approle(root: hvac.Client, signing: Signing, token_ttl: str) -> AppRole:
    mount = f"approle-{uuid.uuid4().hex[:8]}"
    root.sys.enable_auth_method("approle", path=mount)
    root.adapter.post(
        f"/v1/auth/{mount}/role/wio",
        json={
            "token_policies": [signing.policy],
            "token_ttl": token_ttl,
            "token_max_ttl": token_ttl,
        },
    )
    role_id = root.adapter.get(f"/v1/auth/{mount}/role/wio/role-id")["data"]["role_id"]
    secret_id = root.adapter.post(f"/v1/auth/{mount}/role/wio/secret-id")["data"]["secret_id"]
    return AppRole(mount, "wio", role_id, secret_id)


def _client(
    address: str, auth: TokenAuth | AppRoleAuth | KubernetesAuth, **kw: object
) -> VaultClient:
    return VaultClient(VaultConnection(address, auth), **kw)  # type: ignore[arg-type]


async def _sign_jwt(client: VaultClient, signing: Signing) -> str:
    signer = VaultTransitSigner(
        client, TransitKey(signing.transit_key, mount=signing.transit_mount)
    )
    claims = jwt_svid_claims(str(WORKLOAD), ["orders"], dt.timedelta(minutes=5), _now(), new_jti())
    return (await signer.sign(claims)).kid


async def _issue_and_revoke(client: VaultClient, signing: Signing) -> None:
    authority = VaultPkiAuthority(client, PkiRole(signing.role, TD, mount=signing.pki_mount))
    request = SvidRequest.for_key(
        generate_private_key(KeyType.ECDSAP256),
        WORKLOAD,
        ttl=dt.timedelta(minutes=10),
        now=_now(),
        with_csr=True,
    )
    issued = await authority.issue(request)
    await authority.revoke(issued.serial_hex, namespace=WORKLOAD.segments[1])


def _accessor_alive(root: hvac.Client, accessor: str) -> bool:
    try:
        root.adapter.post("/v1/auth/token/lookup-accessor", json={"accessor": accessor})
    except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden):
        return False
    return True


# ================================================================ token


@pytest.mark.asyncio
async def test_static_token_signs_with_the_documented_policy(
    openbao: OpenBao, root: hvac.Client, signing: Signing
) -> None:
    token = root.auth.token.create(policies=[signing.policy], ttl="1h")["auth"]["client_token"]
    client = _client(openbao.address, TokenAuth(token))
    try:
        await _sign_jwt(client, signing)
        await _issue_and_revoke(client, signing)
    finally:
        client.close()


@pytest.mark.asyncio
async def test_a_refused_static_token_is_signer_rejected_without_leaking_it(
    openbao: OpenBao, signing: Signing
) -> None:
    secret = f"hvs.not-a-token-{uuid.uuid4().hex}"
    client = _client(openbao.address, TokenAuth(secret))
    try:
        with pytest.raises(SignerRejected) as caught:
            await _sign_jwt(client, signing)
    finally:
        client.close()
    assert "403" in str(caught.value)
    assert secret not in "".join(traceback.format_exception(caught.value))


# ================================================================ AppRole


@pytest.mark.asyncio
async def test_approle_logs_in_once_and_signs(
    openbao: OpenBao, root: hvac.Client, signing: Signing
) -> None:
    approle = _approle(root, signing, token_ttl="1h")
    client = _client(
        openbao.address, AppRoleAuth(approle.role_id, approle.secret_id, approle.mount)
    )
    try:
        await _sign_jwt(client, signing)
        await _issue_and_revoke(client, signing)
        assert client.login_count == 1
    finally:
        client.close()


@pytest.mark.asyncio
async def test_approle_with_a_wrong_secret_id_is_rejected_at_login(
    openbao: OpenBao, root: hvac.Client, signing: Signing
) -> None:
    approle = _approle(root, signing, token_ttl="1h")
    wrong = str(uuid.uuid4())
    client = _client(openbao.address, AppRoleAuth(approle.role_id, wrong, approle.mount))
    try:
        with pytest.raises(SignerRejected, match="login") as caught:
            await _sign_jwt(client, signing)
    finally:
        client.close()
    assert wrong not in "".join(traceback.format_exception(caught.value))


@pytest.mark.asyncio
async def test_a_revoked_token_is_replaced_by_a_fresh_login(
    openbao: OpenBao, root: hvac.Client, signing: Signing
) -> None:
    approle = _approle(root, signing, token_ttl="1h")
    client = _client(
        openbao.address, AppRoleAuth(approle.role_id, approle.secret_id, approle.mount)
    )
    try:
        await _sign_jwt(client, signing)
        accessor = client.token_accessor
        assert accessor is not None
        root.adapter.post("/v1/auth/token/revoke-accessor", json={"accessor": accessor})
        await _sign_jwt(client, signing)  # 403, log in again, retry: the caller sees success
        assert client.login_count == 2
        assert client.token_accessor != accessor
    finally:
        client.close()


@pytest.mark.asyncio
async def test_an_expired_token_is_replaced_by_a_fresh_login(
    openbao: OpenBao, root: hvac.Client, signing: Signing
) -> None:
    approle = _approle(root, signing, token_ttl="2s")
    # A frozen clock: the client cannot see the expiry coming, so Vault's 403 must drive it.
    client = _client(
        openbao.address,
        AppRoleAuth(approle.role_id, approle.secret_id, approle.mount),
        clock=FakeClock(_now()),
    )
    try:
        await _sign_jwt(client, signing)
        accessor = client.token_accessor
        assert accessor is not None
        wait_for(
            lambda: not _accessor_alive(root, accessor),
            timeout=30,
            what="the AppRole token to expire in OpenBao",
        )
        await _sign_jwt(client, signing)
        assert client.login_count == 2
    finally:
        client.close()


@pytest.mark.asyncio
async def test_a_token_nearing_its_ttl_is_replaced_before_it_expires(
    openbao: OpenBao, root: hvac.Client, signing: Signing
) -> None:
    approle = _approle(root, signing, token_ttl="1h")
    clock = FakeClock(_now())
    client = _client(
        openbao.address,
        AppRoleAuth(approle.role_id, approle.secret_id, approle.mount),
        clock=clock,
    )
    try:
        await _sign_jwt(client, signing)
        first = client.token_accessor
        assert first is not None
        clock.advance(50 * 60)  # past 80% of the hour
        await _sign_jwt(client, signing)
        assert client.login_count == 2
        # The old token was still good: this login was proactive, not forced by a 403.
        assert _accessor_alive(root, first)
    finally:
        client.close()


# ================================================================ Kubernetes


@dataclass(frozen=True)
class KubeAuth:
    mount: str
    role: str
    namespace: str


def _sa_token(core: k8s.CoreV1Api, namespace: str, name: str, audience: str | None) -> str:
    spec = k8s.V1TokenRequestSpec(audiences=[audience] if audience else [], expiration_seconds=3600)
    response = core.create_namespaced_service_account_token(
        name, namespace, k8s.AuthenticationV1TokenRequest(spec=spec)
    )
    assert response.status is not None
    return str(response.status.token)


@pytest.fixture
def kube_auth(
    kube: k8s.ApiClient,
    namespace: str,
    control_plane: ControlPlane,
    root: hvac.Client,
    signing: Signing,
) -> Iterator[KubeAuth]:
    core = k8s.CoreV1Api(kube)
    rbac = k8s.RbacAuthorizationV1Api(kube)
    for name in ("wio-operator", "vault-reviewer", "someone-else"):
        core.create_namespaced_service_account(
            namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=name))
        )
    binding = f"vault-reviewer-{namespace}"
    rbac.create_cluster_role_binding(
        k8s.V1ClusterRoleBinding(
            metadata=k8s.V1ObjectMeta(name=binding),
            role_ref=k8s.V1RoleRef(
                api_group="rbac.authorization.k8s.io",
                kind="ClusterRole",
                name="system:auth-delegator",
            ),
            subjects=[
                k8s.RbacV1Subject(kind="ServiceAccount", name="vault-reviewer", namespace=namespace)
            ],
        )
    )
    mount = f"k8s-{uuid.uuid4().hex[:8]}"
    root.sys.enable_auth_method("kubernetes", path=mount)
    root.adapter.post(
        f"/v1/auth/{mount}/config",
        json={
            "kubernetes_host": control_plane.server,
            "kubernetes_ca_cert": (control_plane.workdir / "ca.crt").read_text(),
            "token_reviewer_jwt": _sa_token(core, namespace, "vault-reviewer", None),
            "disable_local_ca_jwt": True,
        },
    )
    root.adapter.post(
        f"/v1/auth/{mount}/role/wio",
        json={
            "bound_service_account_names": ["wio-operator"],
            "bound_service_account_namespaces": [namespace],
            "audience": "vault",
            "token_policies": [signing.policy],
            "token_ttl": "1h",
        },
    )
    yield KubeAuth(mount, "wio", namespace)
    rbac.delete_cluster_role_binding(binding)


@pytest.mark.asyncio
async def test_kubernetes_auth_logs_in_with_the_operators_service_account_token(
    openbao: OpenBao,
    root: hvac.Client,
    signing: Signing,
    kube: k8s.ApiClient,
    kube_auth: KubeAuth,
    tmp_path: Path,
) -> None:
    core = k8s.CoreV1Api(kube)
    token_file = tmp_path / "token"
    token_file.write_text(_sa_token(core, kube_auth.namespace, "wio-operator", "vault"))
    client = _client(openbao.address, KubernetesAuth(kube_auth.role, kube_auth.mount, token_file))
    try:
        await _sign_jwt(client, signing)
        await _issue_and_revoke(client, signing)
        assert client.login_count == 1
        # The kubelet rotates projected tokens: a re-login reads the file again.
        token_file.write_text(_sa_token(core, kube_auth.namespace, "wio-operator", "vault"))
        accessor = client.token_accessor
        root.adapter.post("/v1/auth/token/revoke-accessor", json={"accessor": accessor})
        await _sign_jwt(client, signing)
        assert client.login_count == 2
    finally:
        client.close()


@pytest.mark.asyncio
async def test_kubernetes_auth_refuses_another_service_account(
    openbao: OpenBao, signing: Signing, kube: k8s.ApiClient, kube_auth: KubeAuth, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    intruder = _sa_token(k8s.CoreV1Api(kube), kube_auth.namespace, "someone-else", "vault")
    token_file.write_text(intruder)
    client = _client(openbao.address, KubernetesAuth(kube_auth.role, kube_auth.mount, token_file))
    try:
        with pytest.raises(SignerRejected, match="login"):
            await _sign_jwt(client, signing)
    finally:
        client.close()


@pytest.mark.asyncio
async def test_a_missing_service_account_token_file_is_a_config_error(
    openbao: OpenBao, signing: Signing, tmp_path: Path
) -> None:
    client = _client(openbao.address, KubernetesAuth("wio", "kubernetes", tmp_path / "absent"))
    try:
        with pytest.raises(ConfigError, match="tokenPath"):
            await _sign_jwt(client, signing)
    finally:
        client.close()


# ================================================================ TLS


@pytest.fixture(scope="module")
def tls_openbao(
    binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Path]]:
    """A second OpenBao dev server, this one serving TLS with its own generated CA."""
    workdir = tmp_path_factory.mktemp("bao-tls")
    port, token = free_port(), uuid.uuid4().hex
    argv = [
        str(binaries.bao),
        "server",
        "-dev",
        "-dev-tls",
        f"-dev-tls-cert-dir={workdir}",
        f"-dev-listen-address=127.0.0.1:{port}",
        f"-dev-root-token-id={token}",
        "-dev-no-store-token",
        "-log-level=warn",
    ]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir)}
    proc = ManagedProcess("openbao-tls", argv, workdir / "openbao.log", env)
    address = f"https://127.0.0.1:{port}"

    def ready() -> bool:
        ca = next(workdir.glob("*ca.pem"))
        probe = hvac.Client(url=address, token=token, verify=str(ca))
        return bool(probe.sys.read_health_status(method="GET")["sealed"] is False)

    try:
        proc.wait_ready(ready, timeout=60)
        yield address, token, next(workdir.glob("*ca.pem"))
    finally:
        proc.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["file", "pem"])
async def test_tls_is_verified_against_the_configured_ca(
    tls_openbao: tuple[str, str, Path], how: str
) -> None:
    address, token, ca = tls_openbao
    if how == "file":
        connection = VaultConnection(address, TokenAuth(token), ca_cert_file=ca)
    else:
        connection = VaultConnection(address, TokenAuth(token), ca_cert_pem=ca.read_text())
    client = VaultClient(connection)
    try:
        data = await client.read("read", "sys/mounts", "/v1/sys/mounts")
        assert "sys/" in data
    finally:
        client.close()


@pytest.mark.asyncio
async def test_tls_with_an_unknown_ca_is_signer_unavailable(
    tls_openbao: tuple[str, str, Path],
) -> None:
    address, token, _ = tls_openbao
    client = VaultClient(VaultConnection(address, TokenAuth(token)))  # system trust only
    try:
        with pytest.raises(SignerUnavailable, match="TLS"):
            await client.read("read", "sys/mounts", "/v1/sys/mounts")
    finally:
        client.close()


def test_plain_http_to_a_remote_address_is_refused() -> None:
    with pytest.raises(ConfigError, match="https"):
        VaultConnection("http://vault.example.org:8200", TokenAuth("t"))
    VaultConnection("http://vault.example.org:8200", TokenAuth("t"), allow_plain_http=True)
    VaultConnection("http://127.0.0.1:8200", TokenAuth("t"))


# ================================================================ error mapping: real servers


@pytest.mark.asyncio
async def test_an_unreachable_address_is_signer_unavailable() -> None:
    client = _client(f"http://127.0.0.1:{free_port()}", AppRoleAuth("role", "secret"))
    try:
        with pytest.raises(SignerUnavailable, match="cannot connect"):
            await _sign_jwt(client, Signing("pki", "transit", "jwt", "p"))
    finally:
        client.close()


@pytest.mark.asyncio
async def test_a_stopped_openbao_is_signer_unavailable(binaries: Binaries, tmp_path: Path) -> None:
    with OpenBao(binaries.bao, workdir=tmp_path) as bao:
        setup = hvac.Client(url=bao.address, token=bao.root_token)
        setup.sys.enable_secrets_engine("transit", path="transit")
        setup.adapter.post("/v1/transit/keys/jwt", json={"type": "ecdsa-p256"})
        client = _client(bao.address, TokenAuth(bao.root_token))
        signing = Signing("pki", "transit", "jwt", "p")
        try:
            await _sign_jwt(client, signing)
            bao.stop()
            with pytest.raises(SignerUnavailable):
                await _sign_jwt(client, signing)
        finally:
            client.close()


@pytest.mark.asyncio
async def test_a_role_that_forbids_the_san_is_signer_rejected(
    openbao: OpenBao, signing: Signing
) -> None:
    client = _client(openbao.address, TokenAuth(openbao.root_token))
    authority = VaultPkiAuthority(client, PkiRole(signing.role, TD, mount=signing.pki_mount))
    forbidden = SpiffeID.parse("spiffe://example.org/admin/root")
    request = SvidRequest.for_key(
        generate_private_key(KeyType.ECDSAP256),
        forbidden,
        ttl=dt.timedelta(minutes=10),
        now=_now(),
        with_csr=True,
    )
    try:
        with pytest.raises(SignerRejected) as caught:
            await authority.issue(request)
    finally:
        client.close()
    message = str(caught.value)
    assert "HTTP 400" in message
    assert f"{signing.pki_mount}/sign/{signing.role}" in message
    assert str(forbidden) not in message  # the body's echo of the SAN is not repeated


# ================================================================ error mapping: scripted server


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers ``/v1/status/<code>[/<retry-after>]`` with that status and a body that must
    never surface; ``/v1/hang`` holds the request until the test releases it."""

    release = threading.Event()
    SECRET = "SECRET-BODY-do-not-log"

    def _answer(self) -> None:
        parts = self.path.strip("/").split("/")
        if parts[:2] == ["v1", "hang"]:
            self.release.wait(30)
            return
        if parts[:2] == ["v1", "nonjson"]:
            body = b"<html>proxy error</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
        else:
            status = int(parts[2])
            body = json.dumps({"errors": [self.SECRET]}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if len(parts) > 3:
                self.send_header("Retry-After", parts[3].replace("_", " "))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def scripted() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Scripted.release.set()
    server.shutdown()
    server.server_close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "error", "retry_after", "words"),
    [
        ("status/429/7", SignerUnavailable, 7.0, "429"),
        ("status/503/3", SignerUnavailable, 3.0, "sealed"),
        ("status/500", SignerUnavailable, None, "500"),
        ("status/502", SignerUnavailable, None, "502"),
        ("status/504", SignerUnavailable, None, "504"),
        ("status/412", SignerUnavailable, None, "412"),
        ("status/400", SignerRejected, None, "400"),
        ("status/403", SignerRejected, None, "permission denied"),
        ("status/404", SignerRejected, None, "404"),
        ("nonjson", SignerUnavailable, None, "malformed"),
    ],
)
async def test_scripted_responses_map_onto_the_error_tree(
    scripted: str, path: str, error: type[Exception], retry_after: float | None, words: str
) -> None:
    token = f"s.{uuid.uuid4().hex}"
    client = _client(scripted, TokenAuth(token))
    try:
        with pytest.raises(error) as caught:
            await client.read("read", "pki/issuers", f"/v1/{path}")
    finally:
        client.close()
    assert words in str(caught.value)
    assert "pki/issuers" in str(caught.value)
    assert getattr(caught.value, "retry_after", None) == retry_after
    logged = "".join(traceback.format_exception(caught.value))
    assert _Scripted.SECRET not in logged
    assert "proxy error" not in logged
    assert token not in logged


@pytest.mark.asyncio
async def test_an_http_date_retry_after_is_turned_into_seconds(scripted: str) -> None:
    when = _now() + dt.timedelta(seconds=90)
    header = when.strftime("%a,_%d_%b_%Y_%H:%M:%S_GMT")
    client = _client(scripted, TokenAuth("t"))
    try:
        with pytest.raises(SignerUnavailable) as caught:
            await client.read("read", "x", f"/v1/status/429/{header}")
    finally:
        client.close()
    assert caught.value.retry_after is not None
    assert 80 <= caught.value.retry_after <= 91


@pytest.mark.asyncio
async def test_a_hanging_server_times_out_as_signer_unavailable(scripted: str) -> None:
    connection = VaultConnection(scripted, TokenAuth("t"), timeout=0.5)
    client = VaultClient(connection)
    try:
        with pytest.raises(SignerUnavailable, match="timed out"):
            await client.read("read", "x", "/v1/hang")
    finally:
        client.close()


@pytest.mark.asyncio
async def test_a_closed_client_is_signer_unavailable(scripted: str) -> None:
    client = _client(scripted, TokenAuth("t"))
    client.close()
    with pytest.raises(SignerUnavailable, match="closed"):
        await client.read("read", "x", "/v1/status/200")


# ================================================================ pure helpers


def test_retry_after_parsing() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_retry_after("12", now) == 12.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now) == 60.0
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0.0
    assert parse_retry_after("999999", now) == 3600.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_vault_serials_are_colon_separated_byte_pairs() -> None:
    assert vault_serial("1a2b3") == "01:a2:b3"
    assert vault_serial("38e2df9e") == "38:e2:df:9e"
    with pytest.raises(SignerRejected):
        vault_serial("not-hex")
    with pytest.raises(SignerRejected):
        vault_serial("0")


def test_unknown_exceptions_still_map_to_the_tree() -> None:
    assert isinstance(
        map_vault_error(RuntimeError("x"), operation="o", target="t"), SignerUnavailable
    )
    assert isinstance(
        map_vault_error(KeyError("data"), operation="o", target="t"), SignerUnavailable
    )
