# SPDX-License-Identifier: Apache-2.0
"""The public port speaks TLS with a certificate wio issues itself; metrics are elsewhere.

A second replica (a standby beside the session's operator, so it issues with no API write)
serves on a loopback port with ``tls.mode: self``. A client that trusts the local CA
published in ``wio-trust-bundle`` reaches it by the Service's DNS name; the operations port
serves ``/metrics`` and the probes in plain HTTP, and the public port does not.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.client
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from tests.integration.conftest import OPERATOR_NAMESPACE
from tests.support.identities import trust_configmap
from tests.support.operator import InProcessOperator
from tests.support.scoped import ready_identity
from wio.config import AdminConfig
from wio.devcluster import ControlPlane
from wio.devcluster.processes import free_port
from wio.k8s.access import from_kubeconfig

SERVICE_NAME = f"wio.{OPERATOR_NAMESPACE}.svc"


@pytest.fixture
def tls_replica(
    operator: InProcessOperator, operator_config: AdminConfig, control_plane: ControlPlane
) -> Iterator[InProcessOperator]:
    config = dataclasses.replace(
        operator_config,
        http_port=free_port(),
        metrics_port=free_port(),
        tls_mode="self",
        tls_dns_names=("wio.example.org",),
    )
    replica = InProcessOperator(config, from_kubeconfig(control_plane.kubeconfig))
    replica.start(leading=False)  # the session's operator leads: this one stands by
    yield replica
    replica.stop()


def _trusting(ca_pem: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=ca_pem)
    return context


def _get(port: int, path: str, context: ssl.SSLContext, host: str) -> tuple[int, bytes]:
    """GET over TLS to 127.0.0.1, checking the certificate against ``host``."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_the_public_port_serves_tls_for_the_service_names_from_the_local_ca(
    tls_replica: InProcessOperator, kube: client.ApiClient, namespace: str
) -> None:
    ready_identity(kube, namespace, "tls-probe")  # publishes wio-trust-bundle here
    ca = trust_configmap(kube, namespace)["ca.crt"]
    port = tls_replica.config.http_port
    status, body = _get(port, "/jwks.json", _trusting(ca), SERVICE_NAME)
    assert status == 200
    assert json.loads(body)["keys"]
    assert (
        _get(port, "/.well-known/openid-configuration", _trusting(ca), "wio.example.org")[0] == 200
    )

    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        _trusting(ca).wrap_socket(raw, server_hostname=SERVICE_NAME) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"spiffe://test.wio.local/ns/{OPERATOR_NAMESPACE}/sa/wio" in [
        u for u in sans.get_values_for_type(x509.UniformResourceIdentifier)
    ]
    assert set(sans.get_values_for_type(x509.DNSName)) >= {
        "wio",
        f"wio.{OPERATOR_NAMESPACE}",
        SERVICE_NAME,
        "wio.example.org",
    }
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime <= dt.timedelta(hours=24, seconds=60)  # notBefore is backdated a little


def test_a_name_the_certificate_does_not_carry_is_refused(
    tls_replica: InProcessOperator, kube: client.ApiClient, namespace: str
) -> None:
    ready_identity(kube, namespace, "tls-probe")
    ca = trust_configmap(kube, namespace)["ca.crt"]
    with pytest.raises(ssl.SSLCertVerificationError):
        _get(tls_replica.config.http_port, "/jwks.json", _trusting(ca), "evil.example.org")


def test_plain_http_gets_nowhere_on_the_public_port(tls_replica: InProcessOperator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", tls_replica.config.http_port, timeout=5)
    connection.request("GET", "/jwks.json")
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        connection.getresponse()


def test_metrics_and_probes_are_on_their_own_port_only(tls_replica: InProcessOperator) -> None:
    with urllib.request.urlopen(f"{tls_replica.ops_url}/metrics", timeout=5) as answer:  # noqa: S310
        assert b"wio_leader 0.0" in answer.read()  # a standby's metrics, in plain HTTP
    with urllib.request.urlopen(f"{tls_replica.ops_url}/readyz", timeout=5) as answer:  # noqa: S310
        assert answer.status == 200
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only the status matters here
    for path in ("/metrics", "/healthz"):
        assert _get(tls_replica.config.http_port, path, context, SERVICE_NAME)[0] == 404
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{tls_replica.ops_url}/jwks.json", timeout=5)  # noqa: S310
    assert missing.value.code == 404


def _admin_certificate(name: str) -> tuple[bytes, bytes, bytes]:
    """A CA and a serving certificate for ``name`` made by the admin's own tooling:
    (CA PEM, chain PEM, key PEM)."""
    now = dt.datetime.now(dt.UTC)

    def build(subject: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        build("admin CA", ca_key)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin CA")]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        build(name, key)
        .issuer_name(ca.subject)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    encoding = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca.public_bytes(encoding), leaf.public_bytes(encoding), key_pem


def test_an_admins_certificate_files_are_served_instead(
    operator: InProcessOperator,
    operator_config: AdminConfig,
    control_plane: ControlPlane,
    tmp_path: Path,
) -> None:
    ca, chain, key = _admin_certificate("wio.example.org")
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(chain)
    key_file.write_bytes(key)
    config = dataclasses.replace(
        operator_config,
        http_port=free_port(),
        metrics_port=free_port(),
        tls_mode="files",
        tls_cert_file=cert_file,
        tls_key_file=key_file,
    )
    replica = InProcessOperator(config, from_kubeconfig(control_plane.kubeconfig))
    replica.start(leading=False)
    try:
        context = _trusting(ca.decode())
        assert _get(config.http_port, "/jwks.json", context, "wio.example.org")[0] == 200
    finally:
        replica.stop()
