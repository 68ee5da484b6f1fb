# SPDX-License-Identifier: Apache-2.0
"""Smoke tests that prove each real part of the local control plane is real."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import hvac
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.cluster import gone, install_crds
from tests.support.waiting import wait_for
from wio.devcluster import OpenBao


def _meta(name: str, **kwargs: object) -> client.V1ObjectMeta:
    return client.V1ObjectMeta(name=name, **kwargs)


def test_secret_written_is_read_back(kube: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=_meta("s"), string_data={"k": "v"})
    )
    assert core.read_namespaced_secret("s", namespace).data == {"k": "dg=="}


def test_cel_rule_rejects_bad_object_with_422_and_its_message(
    kube: client.ApiClient, namespace: str, manifests: Path
) -> None:
    install_crds(kube, [manifests / "smoke-crd.yaml"])
    objects = client.CustomObjectsApi(kube)
    body = {
        "apiVersion": "smoke.wio.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"minReplicas": 5, "maxReplicas": 1},
    }
    with pytest.raises(ApiException) as caught:
        objects.create_namespaced_custom_object("smoke.wio.dev", "v1", namespace, "widgets", body)
    assert caught.value.status == 422
    assert "minReplicas must not exceed maxReplicas" in json.loads(caught.value.body)["message"]
    assert gone(
        objects.get_namespaced_custom_object, "smoke.wio.dev", "v1", namespace, "widgets", "w"
    )

    body["spec"] = {"minReplicas": 1, "maxReplicas": 5}
    objects.create_namespaced_custom_object("smoke.wio.dev", "v1", namespace, "widgets", body)


def test_owned_object_is_garbage_collected_after_owner_delete(
    kube: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=_meta("owner"))
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=_meta("owned", owner_references=[ref]))
    )
    core.delete_namespaced_config_map("owner", namespace)
    wait_for(
        lambda: gone(core.read_namespaced_secret, "owned", namespace),
        timeout=60,
        what="the garbage collector to delete the owned Secret",
    )


def test_namespace_with_objects_is_deleted_to_completion(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    name = "t-nsdelete"
    core.create_namespace(client.V1Namespace(metadata=_meta(name)))
    for i in range(5):
        core.create_namespaced_config_map(name, client.V1ConfigMap(metadata=_meta(f"cm{i}")))
        core.create_namespaced_secret(name, client.V1Secret(metadata=_meta(f"s{i}")))
    core.delete_namespace(name)
    wait_for(
        lambda: gone(core.read_namespace, name),
        timeout=90,
        what=f"namespace {name} to be deleted to completion",
    )


def test_openbao_pki_signs_csr_with_spiffe_uri_san(openbao: OpenBao) -> None:
    vault = hvac.Client(url=openbao.address, token=openbao.root_token)
    vault.sys.enable_secrets_engine("pki", path="pki-smoke", config={"max_lease_ttl": "87600h"})
    vault.secrets.pki.generate_root(
        "internal", "wio smoke root", mount_point="pki-smoke", extra_params={"ttl": "87600h"}
    )
    vault.secrets.pki.create_or_update_role(
        "svid",
        {
            "allowed_uri_sans": "spiffe://example.org/*",
            "basic_constraints_valid_for_non_ca": True,
            "require_cn": False,
            "allow_any_name": False,
            "enforce_hostnames": False,
            "max_ttl": "1h",
            "key_type": "any",
            # SANs come from the request, never from the CSR.
            "use_csr_sans": False,
            "use_csr_common_name": False,
        },
        mount_point="pki-smoke",
    )
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    spiffe_id = "spiffe://example.org/ns/smoke/sa/default"
    response = vault.secrets.pki.sign_certificate(
        "svid",
        csr,
        common_name="",
        extra_params={"uri_sans": spiffe_id, "ttl": "10m"},
        mount_point="pki-smoke",
    )
    cert = x509.load_pem_x509_certificate(response["data"]["certificate"].encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [spiffe_id]
    assert cert.public_key() == key.public_key()
    lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=8) < lifetime <= dt.timedelta(minutes=11)
