# SPDX-License-Identifier: Apache-2.0
"""wio works with exactly the permissions of deploy/rbac.yaml, against the real API server.

The RBAC objects of deploy/rbac.yaml are applied as they are, moved to an operator namespace of
this module's own (``wio-rbac``). A token for their ServiceAccount comes from the TokenRequest
API, and a second wio instance runs with nothing but that token, watching one namespace. It
must issue, publish trust, post Events, force a rotation and run the delete finalizer, and the
API server must refuse it nothing: its audit log holds no RBAC denial for the account, and
neither wio's nor Kopf's log mentions one. A denial found here is fixed in deploy/rbac.yaml.

The module runs on a control plane of its own, so the session's admin-rights operator never
sees its objects: what happens here is the RBAC-limited instance's doing alone.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509 import verification
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.conftest import TRUST_DOMAIN
from tests.support.cluster import REPO, api_client, gone, install_crds
from tests.support.identities import (
    GROUP,
    VERSION,
    create_identity,
    delete_identity,
    events_for,
    get_identity,
    leaf,
    patch_identity,
    read_secret,
    revocations,
    spiffe_ids,
    trust_configmap,
    wait_condition,
)
from tests.support.operator import InProcessOperator
from tests.support.waiting import wait_for
from wio.config import parse_config
from wio.devcluster import Binaries, ControlPlane
from wio.devcluster.processes import free_port
from wio.k8s.access import ClusterAccess

RBAC = REPO / "deploy" / "rbac.yaml"
OPERATOR_NAMESPACE = "wio-rbac"
ACCOUNT = f"system:serviceaccount:{OPERATOR_NAMESPACE}:wio"
# Cluster-scoped objects get a name of their own, so this module never edits an installed wio.
CLUSTER_NAME = "wio-rbac-test"
# How the API server words an RBAC denial, and how Kopf says it lacked a permission.
DENIAL = re.compile(r"cannot \w+ resource|Not enough permissions", re.IGNORECASE)
# The user agent of the kubernetes client this module probes permissions with.
TEST_CLIENT = "OpenAPI-Generator/"


# -- applying deploy/rbac.yaml ---------------------------------------------------------------


def rbac_documents(namespace: str) -> list[dict[str, Any]]:
    """deploy/rbac.yaml as shipped, moved to ``namespace`` (rules untouched)."""
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    for doc in docs:
        meta = doc["metadata"]
        if "namespace" in meta:
            meta["namespace"] = namespace
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            meta["name"] = CLUSTER_NAME
        if doc.get("roleRef", {}).get("kind") == "ClusterRole":
            doc["roleRef"]["name"] = CLUSTER_NAME
        for subject in doc.get("subjects", []):
            subject["namespace"] = namespace
    return docs


def _apply(kube: client.ApiClient, doc: dict[str, Any]) -> None:
    """Create ``doc``, or replace what is there (a re-run in the same cluster)."""
    core, rbac = client.CoreV1Api(kube), client.RbacAuthorizationV1Api(kube)
    name, namespace = doc["metadata"]["name"], doc["metadata"].get("namespace")
    calls: dict[str, tuple[Callable[[], object], Callable[[], object] | None]] = {
        "ServiceAccount": (
            lambda: core.create_namespaced_service_account(namespace, doc),
            None,  # nothing in it that a re-run would change
        ),
        "ClusterRole": (
            lambda: rbac.create_cluster_role(doc),
            lambda: rbac.replace_cluster_role(name, doc),
        ),
        "ClusterRoleBinding": (
            lambda: rbac.create_cluster_role_binding(doc),
            lambda: rbac.replace_cluster_role_binding(name, doc),
        ),
        "Role": (
            lambda: rbac.create_namespaced_role(namespace, doc),
            lambda: rbac.replace_namespaced_role(name, namespace, doc),
        ),
        "RoleBinding": (
            lambda: rbac.create_namespaced_role_binding(namespace, doc),
            lambda: rbac.replace_namespaced_role_binding(name, namespace, doc),
        ),
    }
    create, replace = calls[doc["kind"]]
    try:
        create()
    except ApiException as err:
        if err.status != 409:
            raise
        if replace is not None:
            replace()


def _ensure_namespace(kube: client.ApiClient, name: str) -> None:
    try:
        client.CoreV1Api(kube).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
        )
    except ApiException as err:
        if err.status != 409:
            raise


def _service_account_token(kube: client.ApiClient, namespace: str) -> str:
    """A bound token for the ServiceAccount wio, for the API server's own audience."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    answer = client.CoreV1Api(kube).create_namespaced_service_account_token(
        "wio", namespace, request
    )
    return str(answer.status.token)


def _client_for(server: str, ca_file: Path, token: str) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = server
    configuration.ssl_ca_cert = str(ca_file)
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(configuration)


def _allowed(api: client.ApiClient, **attributes: str) -> bool:
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(**attributes)
        )
    )
    answer = client.AuthorizationV1Api(api).create_self_subject_access_review(review)
    return bool(answer.status.allowed)


# -- this module's own control plane --------------------------------------------------------


@pytest.fixture(scope="module")
def control_plane(binaries: Binaries) -> Iterator[ControlPlane]:
    with ControlPlane(binaries) as plane:
        yield plane


@pytest.fixture(scope="module")
def kube(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    api = api_client(control_plane.kubeconfig)
    yield api
    api.close()


@pytest.fixture(scope="module")
def crds(kube: client.ApiClient) -> list[str]:
    return install_crds(kube, sorted((REPO / "crds").glob("*.yaml")))


# -- capturing what the limited operator logs ------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def denials(self) -> list[str]:
        lines = [f"{r.name}: {r.getMessage()}" for r in self.records]
        return [line for line in lines if DENIAL.search(line)]


def _audit_denials(audit_log: Path, exclude_agent: str | None = TEST_CLIENT) -> list[str]:
    """Requests of the account the API server refused for want of RBAC (writes are audited).

    Requests this module makes itself with the account's token, to probe what it may not do,
    are told apart by their user agent (the kubernetes client's, not wio's or Kopf's).
    """
    found = []
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        annotations = event.get("annotations") or {}
        if (
            event.get("user", {}).get("username") == ACCOUNT
            and annotations.get("authorization.k8s.io/decision") == "forbid"
            and not (exclude_agent and event.get("userAgent", "").startswith(exclude_agent))
        ):
            found.append(f"{event['verb']} {event['requestURI']}")
    return found


# -- the RBAC-limited operator ---------------------------------------------------------------


@dataclass
class Limited:
    operator: InProcessOperator
    namespace: str
    api: client.ApiClient  # the operator's own identity, for access reviews
    log: _Collect
    audit_log: Path

    def assert_nothing_denied(self) -> None:
        assert not _audit_denials(self.audit_log), "the API server refused the operator"
        assert not self.log.denials(), "the operator logged a permission problem"

    def sample(self, name: str, labels: dict[str, str]) -> float:
        value = self.operator.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


@pytest.fixture(scope="module")
def limited(
    kube: client.ApiClient,
    crds: list[str],
    control_plane: ControlPlane,
) -> Iterator[Limited]:
    ca_file = control_plane.workdir / "ca.crt"
    _ensure_namespace(kube, OPERATOR_NAMESPACE)
    for doc in rbac_documents(OPERATOR_NAMESPACE):
        _apply(kube, doc)
    token = _service_account_token(kube, OPERATOR_NAMESPACE)
    api = _client_for(control_plane.server, ca_file, token)
    # The RBAC authorizer learns new bindings from a watch: wait until they are in force.
    wait_for(
        lambda: (
            _allowed(api, group=GROUP, resource="workloadidentities", verb="watch")
            and _allowed(
                api,
                resource="secrets",
                verb="get",
                namespace=OPERATOR_NAMESPACE,
                name="wio-local-ca",
            )
        ),
        timeout=30,
        what="the RBAC bindings to take effect",
    )

    namespace = f"t-rbac-{uuid.uuid4().hex[:8]}"
    _ensure_namespace(kube, namespace)
    config = parse_config(
        {
            "trustDomain": TRUST_DOMAIN,
            "jwtIssuer": "https://wio.test.wio.local",
            "operatorNamespace": OPERATOR_NAMESPACE,
            "watchNamespaces": [namespace],
            "signers": {"default": {"x509": {"type": "local"}, "jwt": {"type": "local"}}},
            "http": {"host": "127.0.0.1", "port": free_port(), "metricsPort": free_port()},
            "logLevel": "DEBUG",
        },
        {},
    )
    access = ClusterAccess(server=control_plane.server, ca_data=ca_file.read_bytes(), token=token)

    collect = _Collect()
    loggers = [logging.getLogger("wio"), logging.getLogger("kopf")]
    for logger in loggers:
        logger.addHandler(collect)
    limited_operator = InProcessOperator(config, access)
    try:
        limited_operator.start()
        yield Limited(limited_operator, namespace, api, collect, control_plane.audit_log)
        # Let this instance finalize what is left, so the namespace can go without it.
        objects = client.CustomObjectsApi(kube)
        for body in objects.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "workloadidentities"
        )["items"]:
            delete_identity(kube, namespace, body["metadata"]["name"])
        wait_for(
            lambda: (
                not objects.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, "workloadidentities"
                )["items"]
            ),
            timeout=30,
            what="the remaining identities to be finalized",
        )
    finally:
        try:
            limited_operator.stop()
        finally:
            for logger in loggers:
                logger.removeHandler(collect)
            api.close()
            client.CoreV1Api(kube).delete_namespace(namespace)


# -- the tests -----------------------------------------------------------------------------


def _verify(cert: x509.Certificate, roots_pem: bytes) -> None:
    store = verification.Store(x509.load_pem_x509_certificates(roots_pem))
    verifier = (
        verification.PolicyBuilder()
        .store(store)
        .time(dt.datetime.now(dt.UTC))
        .build_client_verifier()
    )
    verifier.verify(cert, [])


def test_operator_starts_with_only_the_deployed_rbac(limited: Limited) -> None:
    # Start-up read (or created) its own state in its own namespace, with its own token.
    state = client.CoreV1Api(limited.api).read_namespaced_secret("wio-local-ca", OPERATOR_NAMESPACE)
    assert state.metadata.labels["app.kubernetes.io/managed-by"] == "wio"
    assert limited.operator.runtime.ready
    limited.assert_nothing_denied()


def test_identity_is_issued_published_and_rotated_with_only_the_deployed_rbac(
    kube: client.ApiClient, limited: Limited
) -> None:
    ns = limited.namespace
    issued_before = limited.sample("wio_issuances_total", {"kind": "x509", "result": "success"})
    create_identity(
        kube,
        ns,
        "payments",
        {"serviceAccountName": "payments", "jwt": {"audiences": ["orders-api"]}},
    )
    status = wait_condition(kube, ns, "payments", "Ready", "True")["status"]
    secret, data = read_secret(kube, ns, "payments-identity")
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "wio"
    cert = leaf(data)
    assert spiffe_ids(cert) == [f"spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/payments"]
    assert secret.metadata.annotations[f"{GROUP}/serial"] == status["serialNumber"]
    _verify(cert, data["ca.crt"])
    assert data["token"]
    # The trust bundle ConfigMap (create + patch by apply) carries the CA that signed it.
    # (published asynchronously, coalesced with other changes)
    bundle = wait_for(lambda: trust_configmap(kube, ns), timeout=10, what="the trust bundle")
    _verify(cert, bundle["ca.crt"].encode())
    # This instance issued it (the session operator is stopped), and said so in an Event.
    assert (
        limited.sample("wio_issuances_total", {"kind": "x509", "result": "success"})
        == issued_before + 1
    )
    wait_for(
        lambda: "Issued" in {e.reason for e in events_for(kube, ns, "payments")},
        timeout=10,
        what="an Issued Event",
    )

    # A forced rotation rewrites the existing Secret (patch without create).
    patch_identity(kube, ns, "payments", {"metadata": {"annotations": {f"{GROUP}/rotate": "r1"}}})
    wait_for(
        lambda: get_identity(kube, ns, "payments")["status"].get("lastForcedRotation") == "r1",
        timeout=30,
        what="the forced rotation to be acknowledged",
    )
    _, rotated = read_secret(kube, ns, "payments-identity")
    assert leaf(rotated).serial_number != cert.serial_number
    limited.assert_nothing_denied()


def test_delete_runs_the_finalizer_with_only_the_deployed_rbac(
    kube: client.ApiClient, limited: Limited
) -> None:
    ns = limited.namespace
    create_identity(kube, ns, "gone", {"serviceAccountName": "gone"})
    status = wait_condition(kube, ns, "gone", "Ready", "True")["status"]
    assert f"{GROUP}/finalizer" in get_identity(kube, ns, "gone")["metadata"]["finalizers"]

    delete_identity(kube, ns, "gone")
    wait_for(lambda: gone(get_identity, kube, ns, "gone"), timeout=30, what="the finalizer")
    assert gone(client.CoreV1Api(kube).read_namespaced_secret, "gone-identity", ns)
    listed = {(r["kind"], r["id"]) for r in revocations(kube, OPERATOR_NAMESPACE)}
    assert ("x509", status["serialNumber"]) in listed
    assert limited.sample("wio_revocations_total", {"kind": "x509", "result": "success"}) >= 1
    wait_for(
        lambda: "Revoked" in {e.reason for e in events_for(kube, ns, "gone")},
        timeout=10,
        what="a Revoked Event",
    )
    limited.assert_nothing_denied()


@pytest.mark.parametrize(
    ("verb", "resource", "where"),
    [
        ("get", "secrets", "tenant"),  # Secrets arrive by the label-selected watch only
        ("update", "secrets", "tenant"),
        ("get", "configmaps", "tenant"),
        ("get", "secrets", "another state Secret"),
        ("create", "tokenreviews", "cluster"),
        ("create", "pods", "tenant"),
        ("delete", "configmaps", "tenant"),
        ("update", "workloadidentities", "tenant"),
        ("delete", "workloadidentities", "tenant"),
        ("create", "leases", "tenant"),  # leader election is in wio's namespace only
        ("update", "leases", "another Lease"),  # …and on its own Lease only
    ],
)
def test_deployed_rbac_grants_nothing_beyond_what_wio_calls(
    limited: Limited, verb: str, resource: str, where: str
) -> None:
    groups = {
        "tokenreviews": "authentication.k8s.io",
        "workloadidentities": GROUP,
        "leases": "coordination.k8s.io",
    }
    attributes = {"verb": verb, "resource": resource, "group": groups.get(resource, "")}
    if where == "tenant":
        attributes["namespace"] = limited.namespace
    elif where == "operator":
        attributes["namespace"] = OPERATOR_NAMESPACE
    elif where == "another state Secret":
        attributes.update(namespace=OPERATOR_NAMESPACE, name="not-wio-local-ca")
    elif where == "another Lease":
        attributes.update(namespace=OPERATOR_NAMESPACE, name="kube-scheduler")
    assert not _allowed(limited.api, **attributes)


def test_the_denial_pattern_matches_what_the_api_server_says(
    kube: client.ApiClient, limited: Limited
) -> None:
    """The checks above are only as good as DENIAL: prove it catches a real refusal."""
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(limited.api).read_namespaced_secret("anything", limited.namespace)
    assert refused.value.status == 403
    assert DENIAL.search(json.loads(refused.value.body)["message"])
    # A refused write reaches the audit log, and the probe's own user agent is told apart.
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(limited.api).create_namespaced_service_account(
            limited.namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="probe"))
        )
    assert refused.value.status == 403
    uri = f"/api/v1/namespaces/{limited.namespace}/serviceaccounts"
    wait_for(
        lambda: any(uri in d for d in _audit_denials(limited.audit_log, exclude_agent=None)),
        timeout=10,
        what="the refused write in the audit log",
    )
    assert not any(uri in d for d in _audit_denials(limited.audit_log))
