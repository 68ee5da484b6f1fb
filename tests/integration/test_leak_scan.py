# SPDX-License-Identifier: Apache-2.0
"""Secret hygiene (ARCHITECTURE.md §7): no private key, certificate body or token ever appears in
logs (any level), Kubernetes Events, status, annotations or metrics, error paths included.

The scenario runs wio for real: issuance on the local signer and on OpenBao, a policy denial,
an unconfigured signer, a certificate OpenBao signs but wio refuses, a spec-change rotation, a
forced rotation, a Secret someone else altered, and revocation on delete. Every credential that
existed along the way (each Secret's key, chain and token, OpenBao's issued certificates, the
local signer's own keys, the operator's cluster credentials) becomes a needle; every place a
user or an SRE can read without Secret access is a haystack. A second test plants leaks on
purpose, so that a clean scan means something.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hvac
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from kubernetes import client

from tests.integration.conftest import OPERATOR_NAMESPACE
from tests.support.certs import LeafSpec, make_ca, make_leaf, pem
from tests.support.cluster import gone
from tests.support.identities import (
    GROUP,
    VERSION,
    apply_policy,
    condition,
    create_identity,
    delete_identity,
    delete_policy,
    events_for,
    get_identity,
    patch_identity,
    read_secret,
    revocation_shards,
    wait_condition,
)
from tests.support.leakscan import (
    CERTIFICATE,
    OPAQUE,
    PRIVATE_KEY,
    TOKEN,
    Credential,
    Finding,
    LeakScanner,
    pem_credentials,
    report,
    secret_credentials,
)
from tests.support.operator import InProcessOperator
from tests.support.tokens import sign
from tests.support.waiting import wait_for
from wio.devcluster import OpenBao

TRUST_CONFIGMAP = "wio-trust-bundle"
REVOCATIONS_CONFIGMAP = "wio-revocations"
ROTATE_ANNOTATION = f"{GROUP}/rotate"
# Trust-document keys that legitimately carry CA certificates and public keys. They are scanned
# too, but only for leaf certificates, private keys and tokens.
PUBLIC_KEYS = ("ca.crt", "bundle.spiffe.json", "jwks.json")
PUBLIC_SUFFIXES = (".spiffe-trust-bundle.pem",)
VERBOSE_LOGGERS = ("", "wio", "kopf", "aiohttp")


# -- logs --------------------------------------------------------------------------------------

_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class LogCapture(logging.Handler):
    """Every record, formatted with its traceback and any ``extra`` fields (the audit line)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
        )
        self.lines: list[str] = []
        self._lines_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)  # includes exc_info and stack_info
        extras = {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}
        if extras:
            line += f" extras={extras!r}"
        with self._lines_lock:
            self.lines.append(line)

    def text(self) -> str:
        with self._lines_lock:
            return "\n".join(self.lines)


@pytest.fixture
def captured_logs() -> Iterator[LogCapture]:
    """All logging of the process at DEBUG for one test, the operator's thread included."""
    capture = LogCapture()
    loggers = [logging.getLogger(name) for name in VERBOSE_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(capture)
    try:
        yield capture
    finally:
        logging.getLogger().removeHandler(capture)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# -- haystacks ---------------------------------------------------------------------------------


def _events(kube: client.ApiClient, namespaces: tuple[str, ...]) -> str:
    """Every Event, whole and as the API server sent it: core and events.k8s.io views, so
    reason, message, note and annotations are all in."""
    core, events = client.CoreV1Api(kube), client.EventsV1Api(kube)
    found = []
    for namespace in namespaces:
        for listing in (
            core.list_namespaced_event(namespace, _preload_content=False),
            events.list_namespaced_event(namespace, _preload_content=False),
        ):
            found += json.loads(listing.data)["items"]
    return json.dumps(found, sort_keys=True)


def _metadata_haystacks(kube: client.ApiClient, namespace: str) -> dict[str, str]:
    """Status and annotations of every WorkloadIdentity; annotations and labels of Secrets."""
    haystacks = {}
    listed = client.CustomObjectsApi(kube).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "workloadidentities"
    )
    for body in listed["items"]:
        where = f"{namespace}/{body['metadata']['name']}"
        haystacks[f"status:{where}"] = json.dumps(body.get("status") or {}, sort_keys=True)
        haystacks[f"annotations:{where}"] = json.dumps(
            {
                "annotations": body["metadata"].get("annotations") or {},
                "labels": body["metadata"].get("labels") or {},
            },
            sort_keys=True,
        )
    for secret in client.CoreV1Api(kube).list_namespaced_secret(namespace).items:
        haystacks[f"annotations:{namespace}/{secret.metadata.name}"] = json.dumps(
            {"annotations": secret.metadata.annotations, "labels": secret.metadata.labels},
            sort_keys=True,
        )
    return haystacks


def _configmap_haystacks(
    kube: client.ApiClient, namespace: str, name: str
) -> tuple[dict[str, str], dict[str, str]]:
    """(private-looking haystacks, public trust documents) of one ConfigMap."""
    cm = client.CoreV1Api(kube).read_namespaced_config_map(name, namespace)
    where = f"configmap:{namespace}/{name}"
    private = {
        f"{where} metadata": json.dumps(
            {"annotations": cm.metadata.annotations, "labels": cm.metadata.labels}, sort_keys=True
        )
    }
    public = {}
    for key, value in (cm.data or {}).items():
        if key in PUBLIC_KEYS or key.endswith(PUBLIC_SUFFIXES):
            public[f"{where} {key}"] = value
        else:
            private[f"{where} {key}"] = value
    return private, public


def _http(operator: InProcessOperator, path: str) -> str:
    base = operator.ops_url if path == "/metrics" else operator.base_url
    with urllib.request.urlopen(f"{base}{path}", timeout=5) as response:  # noqa: S310
        return str(response.read().decode())


# -- needles -----------------------------------------------------------------------------------


def _namespace_credentials(kube: client.ApiClient, namespace: str, stage: str) -> list[Credential]:
    found = []
    for secret in client.CoreV1Api(kube).list_namespaced_secret(namespace).items:
        _, data = read_secret(kube, namespace, secret.metadata.name)
        found += secret_credentials(f"{namespace}/{secret.metadata.name} ({stage})", data)
    return found


def _operator_credentials(operator: InProcessOperator, kube: client.ApiClient) -> list[Credential]:
    """The local signer's CA and JWT keys, and the operator's own API-server credentials."""
    _, state = read_secret(kube, OPERATOR_NAMESPACE, operator.config.local_ca_secret)
    found = []
    for key, value in state.items():
        keys = pem_credentials(f"local signer state {key}", value)
        assert keys, f"no PEM key found in the local signer's {key}: the scan would miss it"
        found += keys
    access = operator.access
    if access.key_data:
        found.append(Credential("operator API client key", PRIVATE_KEY, access.key_data))
    if access.bearer_token():
        found.append(Credential("operator API token", OPAQUE, access.bearer_token().encode()))  # type: ignore[union-attr]
    return found


def _openbao_credentials(vault: hvac.Client) -> list[Credential]:
    """Every leaf OpenBao's PKI issued, including ones wio refused and never stored."""
    found = []
    for serial in vault.list("pki-wio/certs")["data"]["keys"]:
        cert = vault.read(f"pki-wio/cert/{serial}")["data"]["certificate"]
        found += [c for c in pem_credentials(f"openbao cert {serial}", cert) if c.leaf]
    return found


# -- scenario helpers --------------------------------------------------------------------------


def _allow_signers(kube: client.ApiClient, namespace: str, name: str) -> None:
    """Short TTLs and RSA keys, and the signers `openbao` and `nope` (which is not configured)."""
    client.CoreV1Api(kube).patch_namespace(
        namespace, {"metadata": {"labels": {"wio-test": namespace}}}
    )
    apply_policy(
        kube,
        name,
        {
            "namespaceSelector": {"matchLabels": {"wio-test": namespace}},
            "x509": {
                "minTTL": "10s",
                "maxTTL": "24h",
                "keyTypes": ["ECDSAP256", "ECDSAP384", "RSA2048"],
            },
            "jwt": {"minTTL": "10s", "maxTTL": "1h", "audiences": ["orders-api"]},
            "signers": ["default", "openbao", "nope"],
        },
    )


@contextlib.contextmanager
def _openbao_role_capped(vault: hvac.Client, max_ttl: str) -> Iterator[None]:
    """OpenBao's `svid` role signs shorter than asked for a while (it caps, with a warning)."""
    original = vault.secrets.pki.read_role("svid", mount_point="pki-wio")["data"]
    vault.secrets.pki.create_or_update_role(
        "svid", {**original, "max_ttl": max_ttl}, mount_point="pki-wio"
    )
    try:
        yield
    finally:
        vault.secrets.pki.create_or_update_role("svid", original, mount_point="pki-wio")


def _status(kube: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return dict(get_identity(kube, namespace, name).get("status") or {})


def _wait_new_serial(kube: client.ApiClient, namespace: str, name: str, old: str) -> None:
    wait_for(
        lambda: _status(kube, namespace, name).get("serialNumber") not in (None, old),
        timeout=30,
        what=f"{name} to be reissued",
    )


def _wait_event(kube: client.ApiClient, namespace: str, name: str, reason: str) -> None:
    wait_for(
        lambda: reason in {e.reason for e in events_for(kube, namespace, name)},
        timeout=15,
        what=f"a {reason} Event for {name}",
    )


# -- the scan ----------------------------------------------------------------------------------


def test_no_credential_material_leaks_anywhere(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    openbao: OpenBao,
    captured_logs: LogCapture,
) -> None:
    core = client.CoreV1Api(kube)
    vault = hvac.Client(url=openbao.address, token=openbao.root_token)
    policy = f"leak-{namespace}"
    credentials: list[Credential] = []
    _allow_signers(kube, namespace, policy)
    try:
        jwt = {"audiences": ["orders-api"], "ttl": "30m"}
        create_identity(
            kube, namespace, "local", {"serviceAccountName": "local", "x509": {}, "jwt": jwt}
        )
        create_identity(
            kube,
            namespace,
            "local-rsa",
            {"serviceAccountName": "rsa", "x509": {"ttl": "1h", "keyType": "RSA2048"}},
        )
        create_identity(
            kube,
            namespace,
            "bao",
            {"serviceAccountName": "bao", "signer": "openbao", "x509": {"ttl": "15m"}, "jwt": jwt},
        )
        # Error paths: a policy denial (ttl above the policy's 24h) and a signer nobody set up.
        create_identity(
            kube, namespace, "denied", {"serviceAccountName": "denied", "x509": {"ttl": "48h"}}
        )
        create_identity(
            kube, namespace, "unconfigured", {"serviceAccountName": "nope", "signer": "nope"}
        )
        for name in ("local", "local-rsa", "bao"):
            wait_condition(kube, namespace, name, "Ready", "True")
        denied = wait_condition(kube, namespace, "denied", "PolicyDenied", "True")
        assert "ttl" in condition(denied, "PolicyDenied")["message"]  # type: ignore[index]
        unconfigured = wait_condition(
            kube, namespace, "unconfigured", "Issuing", "False", reason="Failed"
        )
        assert "not configured" in condition(unconfigured, "Issuing")["message"]  # type: ignore[index]
        assert condition(unconfigured, "Ready")["status"] == "False"  # type: ignore[index]
        credentials += _namespace_credentials(kube, namespace, "first issued")

        # OpenBao signs, but shorter than asked: wio holds a fresh key and a signed certificate
        # and must refuse them without printing either.
        with _openbao_role_capped(vault, "2m"):
            create_identity(
                kube,
                namespace,
                "refused",
                {"serviceAccountName": "refused", "signer": "openbao", "x509": {"ttl": "20m"}},
            )
            refused = wait_condition(
                kube, namespace, "refused", "Issuing", "False", reason="Failed"
            )
        assert "lives until" in condition(refused, "Issuing")["message"]  # type: ignore[index]
        _wait_event(kube, namespace, "refused", "SignerError")

        # Rotation by spec change, a forced rotation, and a Secret someone else altered.
        before = {
            n: _status(kube, namespace, n)["serialNumber"] for n in ("local", "bao", "local-rsa")
        }
        patch_identity(kube, namespace, "local", {"spec": {"x509": {"ttl": "2h"}}})
        wait_condition(kube, namespace, "local", "Ready", "True", reason="Rotated")
        patch_identity(
            kube, namespace, "bao", {"metadata": {"annotations": {ROTATE_ANNOTATION: "leak-scan"}}}
        )
        wait_for(
            lambda: _status(kube, namespace, "bao").get("lastForcedRotation") == "leak-scan",
            timeout=30,
            what="the forced rotation to be acknowledged",
        )
        _wait_new_serial(kube, namespace, "bao", before["bao"])
        stranger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        credentials.append(
            Credential("a stranger's key written into local-rsa", PRIVATE_KEY, stranger)
        )
        core.patch_namespaced_secret(
            "local-rsa-identity",
            namespace,
            {"data": {"tls.key": base64.b64encode(stranger).decode()}},
        )
        _wait_new_serial(kube, namespace, "local-rsa", before["local-rsa"])
        credentials += _namespace_credentials(kube, namespace, "rotated")
        # What deletion removes (status, the Secrets' annotations) is a haystack as it was.
        before_delete = {
            f"{where} (before delete)": text
            for where, text in _metadata_haystacks(kube, namespace).items()
        }

        # Revocation on delete (upstream too, for OpenBao).
        for name in ("local", "bao"):
            delete_identity(kube, namespace, name)
        for name in ("local", "bao"):
            wait_for(
                lambda name=name: gone(get_identity, kube, namespace, name),  # type: ignore[misc]
                timeout=30,
                what=f"{name}'s finalizer",
            )
            _wait_event(kube, namespace, name, "Revoked")
        wait_for(
            lambda: '"action":"revoke"' in captured_logs.text(),
            timeout=10,
            what="the audit record of the revocation",
        )
        # The audit stream is part of the log haystack: every kind of record it wrote here.
        for action in ("issue", "forced-rotation", "deny", "revoke"):
            assert f'"action":"{action}"' in captured_logs.text(), action
    finally:
        delete_policy(kube, policy)

    credentials += _openbao_credentials(vault)
    credentials += _operator_credentials(operator, kube)
    credentials.append(Credential("openbao root token", OPAQUE, openbao.root_token.encode()))
    kinds = {c.kind for c in credentials}
    assert {PRIVATE_KEY, CERTIFICATE, TOKEN} <= kinds, kinds
    assert sum(c.kind == TOKEN for c in credentials) >= 3  # local and bao, before and after

    haystacks = {
        "log": captured_logs.text(),
        "events": _events(kube, (namespace, OPERATOR_NAMESPACE)),
        "metrics": _http(operator, "/metrics"),
    }
    haystacks |= before_delete | _metadata_haystacks(kube, namespace)
    haystacks |= _metadata_haystacks(kube, OPERATOR_NAMESPACE)
    trust_private, public = _configmap_haystacks(kube, namespace, TRUST_CONFIGMAP)
    shards = revocation_shards(kube, OPERATOR_NAMESPACE, REVOCATIONS_CONFIGMAP)
    assert shards  # the scenario revoked: the list is there to be scanned
    haystacks |= trust_private
    for shard in shards:
        revocations_private, revocations_public = _configmap_haystacks(
            kube, OPERATOR_NAMESPACE, shard.metadata.name
        )
        haystacks |= revocations_private
        public |= revocations_public
    for path in ("/jwks.json", "/bundle.spiffe.json", "/.well-known/openid-configuration"):
        public[f"http:{path}"] = _http(operator, path)

    # What the scan saw must be what the scenario did, or a clean result proves nothing.
    assert "issued" in haystacks["log"]
    assert '"schema":1' in haystacks["log"]  # the audit stream was scanned
    assert "is not configured" in haystacks["log"]  # the failure path logged, at WARNING
    assert "lives until" in haystacks["log"]
    for reason in ("PolicyDenied", "SignerError", "Rotated", "Revoked"):
        assert f'"reason": "{reason}"' in haystacks["events"], reason
    assert "wio_issuances_total" in haystacks["metrics"]
    assert f"status:{namespace}/refused" in haystacks
    assert f"annotations:{namespace}/bao-identity (before delete)" in haystacks

    scanner = LeakScanner(credentials, public=public.values())
    counts = Counter(c.kind for c in scanner.credentials)
    findings = scanner.scan(haystacks) + scanner.for_public_documents().scan(public)
    summary = (
        f"scanned {len(haystacks) + len(public)} haystacks "
        f"({sum(map(len, haystacks.values())) // 1024} KiB, of which "
        f"{len(haystacks['log']) // 1024} KiB of logs) with {len(scanner.credentials)} "
        f"credentials ({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}; "
        f"{scanner.needle_count} needles)"
    )
    print(summary)
    assert not findings, f"{summary}\n{report(findings)}"


# -- the scanner itself ------------------------------------------------------------------------


def _kinds(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.haystack, f.kind) for f in findings}


def test_scanner_catches_a_planted_leak(
    kube: client.ApiClient,
    namespace: str,
    operator: InProcessOperator,
    captured_logs: LogCapture,
) -> None:
    create_identity(
        kube,
        namespace,
        "plant",
        {"serviceAccountName": "plant", "jwt": {"audiences": ["a"]}},
    )
    wait_condition(kube, namespace, "plant", "Ready", "True")
    _, data = read_secret(kube, namespace, "plant-identity")
    token = data["token"].decode()
    key_line = data["tls.key"].decode().splitlines()[1]
    leaf_pem = data["tls.crt"].decode().split("-----END CERTIFICATE-----")[0] + (
        "-----END CERTIFICATE-----\n"
    )
    _, public = wait_for(
        lambda: _configmap_haystacks(kube, namespace, TRUST_CONFIGMAP),
        timeout=15,
        what="the trust bundle ConfigMap",
    )
    scanner = LeakScanner(
        secret_credentials(f"{namespace}/plant-identity", data), public=public.values()
    )
    core = client.CoreV1Api(kube)

    # A log line with one line of the key, at DEBUG, through one of wio's own loggers.
    logging.getLogger("wio.service.identities").debug("reconciling with key line %s", key_line)
    # A token in an annotation of a Secret.
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="planted", annotations={"debug/token": token})
        ),
    )
    # A base64url'd fragment of the key PEM in an Event message.
    encoded = base64.urlsafe_b64encode(data["tls.key"]).decode()
    fragment = encoded[len(encoded) // 2 - 33 : len(encoded) // 2 + 33]
    core.create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="plant.leak"),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind="WorkloadIdentity",
                name="plant",
                namespace=namespace,
            ),
            reason="Debug",
            message=f"state dump: {fragment}",
            type="Normal",
        ),
    )
    haystacks = _metadata_haystacks(kube, namespace)
    # Status is schema-pruned, so a leak there is planted into the haystack: the key PEM,
    # escaped inside JSON as a status dump would carry it, next to the real status.
    status = json.loads(haystacks[f"status:{namespace}/plant"])
    haystacks[f"status:{namespace}/plant"] = json.dumps(
        {**status, "debug": data["tls.key"].decode()}
    )
    haystacks |= {
        "log": captured_logs.text(),
        "events": _events(kube, (namespace,)),
        "metrics": _http(operator, "/metrics") + f'wio_debug{{token="{token}"}} 1\n',
    }
    public_planted = {
        **public,
        "trust ca.crt": public[f"configmap:{namespace}/{TRUST_CONFIGMAP} ca.crt"] + leaf_pem,
    }

    found = _kinds(scanner.scan(haystacks))
    found_public = _kinds(scanner.for_public_documents().scan(public_planted))

    expected = {
        ("log", "private-key:der-base64-chunk"),
        (f"annotations:{namespace}/planted", "token:raw"),
        (f"annotations:{namespace}/planted", "shape:jwt"),
        ("events", "private-key:base64-chunk"),
        ("metrics", "token:raw"),
        ("metrics", "shape:jwt"),
        (f"status:{namespace}/plant", "private-key:der-base64-chunk"),
        (f"status:{namespace}/plant", "shape:private-key-pem"),
    }
    assert expected <= found, f"missed: {expected - found}"
    # Only what was planted: the real status, annotations and trust documents stay clean.
    assert {h for h, _ in found} == {h for h, _ in expected}
    # A leaf in a trust document is reported; the untouched trust documents are not.
    assert ("trust ca.crt", "certificate:raw") in found_public
    assert {h for h, _ in found_public} == {"trust ca.crt"}


@pytest.mark.parametrize("key_type", ["P-256", "RSA-2048", "Ed25519"])
def test_one_line_of_a_key_is_caught_and_public_ca_material_is_not(key_type: str) -> None:
    key: Any = {
        "P-256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "RSA-2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "Ed25519": ed25519.Ed25519PrivateKey.generate,
    }[key_type]()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    root = make_ca("leak-scan root")
    intermediate = make_ca("leak-scan intermediate", issuer=root)
    leaf = make_leaf(intermediate, LeafSpec())
    signer = ec.generate_private_key(ec.SECP256R1())
    token = sign(
        signer,
        "ES256",
        {"alg": "ES256", "typ": "JWT", "kid": "k1"},
        {"sub": "spiffe://example.org/ns/default/sa/app", "aud": ["a"], "exp": 2_000_000_000},
    )
    data = {
        "tls.key": key_pem,
        "tls.crt": pem(leaf, intermediate.cert),
        "ca.crt": pem(root.cert),
        "token": token.encode(),
    }
    scanner = LeakScanner(
        secret_credentials("ns/app-identity", data), public=[pem(root.cert, intermediate.cert)]
    )

    lines = key_pem.decode().splitlines()[1:-1]
    body = "".join(lines)
    for chunk in (body[len(body) // 2 : len(body) // 2 + 40], body[-40:]):
        findings = scanner.scan({"log": f"dumping {chunk} for debugging"})
        assert findings, chunk
        assert all(f.haystack == "log" for f in findings)
        assert any(f.kind.startswith("private-key:der-base64-chunk") for f in findings)
        # An RSA key's base64 may also happen to carry a whole private number's encoding.
        assert all(f.kind.startswith("private-key:") for f in findings)
    header, payload, signature = token.split(".")
    assert scanner.scan({"log": f"kid header {header}"}) == []  # the header is not secret
    assert _kinds(scanner.scan({"log": f"sig={signature}"})) == {("log", "token:segment")}
    assert _kinds(scanner.scan({"log": f"claims={payload}"})) == {("log", "token:segment")}

    # Public CA material alone, in every form a trust document carries it, is not a leak.
    bundle = json.dumps(
        {
            "keys": [
                {
                    "use": "x509-svid",
                    "x5c": [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()],
                }
                for c in (root.cert, intermediate.cert)
            ]
        }
    )
    public = {"ca.crt": pem(root.cert, intermediate.cert).decode(), "bundle.spiffe.json": bundle}
    assert scanner.for_public_documents().scan(public) == []
    # ... while the leaf in the same place is.
    public["ca.crt"] += pem(leaf).decode()
    assert _kinds(scanner.for_public_documents().scan(public)) == {("ca.crt", "certificate:raw")}
