# SPDX-License-Identifier: Apache-2.0
"""``wio inspect``: what a credential Secret holds, as metadata, never as material.

The Secret is read with the SRE's own RBAC (``get`` on ``secrets``). Certificates are decoded
for their subject, SPIFFE ID, serial, issuer, validity, key type and key fingerprint; tokens
for their JOSE header and claims, without verifying them (``wio verify`` does that). The
private key is never decoded, and no certificate body or token leaves this module: only the
facts above, the names of the Secret's keys and wio's own annotations.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from wio.clock import rfc3339
from wio.errors import ApiNotFound, PermanentError, ValidationError
from wio.issuing.jwt import parse_unverified
from wio.issuing.keys import key_type_of, public_key_fingerprint
from wio.k8s.client import secret_path
from wio.names import GROUP, WORKLOAD_IDENTITY
from wio.sre.objects import Found, Kube, condition

#: JWT claims that are NumericDates, shown as RFC 3339 beside the number.
_TIME_CLAIMS = ("exp", "iat", "nbf")


def describe_certificates(pem: bytes, status_serial: str | None = None) -> dict[str, Any]:
    """The leaf of a PEM chain (leaf first) and the length of the chain."""
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except (ValueError, UnsupportedAlgorithm):
        return {"unreadable": "not a PEM certificate chain"}
    leaf = chain[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        dns = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        uris, dns = [], []
    public_key = leaf.public_key()
    try:
        key_type = key_type_of(public_key).value  # type: ignore[arg-type]
    except ValidationError:
        key_type = type(public_key).__name__
    serial = format(leaf.serial_number, "x")
    facts: dict[str, Any] = {
        "subject": leaf.subject.rfc4514_string() or "(empty)",
        "spiffeID": uris[0] if len(uris) == 1 else uris,
        "dnsNames": dns,
        "serial": serial,
        "issuer": leaf.issuer.rfc4514_string() or "(empty)",
        "notBefore": rfc3339(leaf.not_valid_before_utc),
        "notAfter": rfc3339(leaf.not_valid_after_utc),
        "keyType": key_type,
        "keyFingerprint": public_key_fingerprint(public_key),  # type: ignore[arg-type]
        "chainLength": len(chain),
    }
    if status_serial is not None:
        # A Secret that does not hold what status recorded is what wio repairs next.
        facts["matchesStatus"] = serial == status_serial
    return facts


def describe_token(token: bytes) -> dict[str, Any]:
    """The JOSE header and claims of a compact JWS, NOT verified; never the token itself."""
    parsed = parse_unverified(token.strip())
    if parsed is None:
        return {"unreadable": "not a compact JWS"}
    claims = dict(parsed.claims)
    facts: dict[str, Any] = {"header": dict(parsed.header), "claims": claims}
    for name in _TIME_CLAIMS:
        value = claims.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            facts[f"{name} (UTC)"] = rfc3339(dt.datetime.fromtimestamp(value, dt.UTC))
    facts["verified"] = False
    return facts


def describe_secret(found: Found, secret: Mapping[str, Any]) -> dict[str, Any]:
    """Everything ``wio inspect`` shows, in sections: the object, the Secret, the X.509-SVID,
    the token, or the names of a Vault secret's keys."""
    status = found.status
    ready = condition(status, "Ready") or {}
    meta = secret.get("metadata") or {}
    data: Mapping[str, str] = secret.get("data") or {}
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(f"{GROUP}/")
    }
    sections: dict[str, Any] = {
        "object": {
            "kind": found.kind,
            "name": str(found.ref),
            "spiffeID": status.get("spiffeID"),
            "ready": f"{ready.get('status', 'Unknown')} ({ready.get('reason', 'NoStatus')})",
            "rotations": status.get("rotations"),
        },
        "secret": {
            "name": meta.get("name"),
            "type": secret.get("type"),
            # The names only: the values are keys, certificates, tokens and passwords.
            "keys": sorted(data),
            "annotations": annotations,
        },
    }
    if "tls.crt" in data:
        serial = status.get("serialNumber") if found.kind == WORKLOAD_IDENTITY else None
        sections["x509"] = describe_certificates(_decoded(data["tls.crt"]), serial)
    if "ca.crt" in data:
        try:
            roots = len(x509.load_pem_x509_certificates(_decoded(data["ca.crt"])))
        except (ValueError, UnsupportedAlgorithm):
            roots = 0
        sections["secret"]["trustBundleRoots"] = roots
    if "token" in data:
        title = "jwtSvid" if found.kind == WORKLOAD_IDENTITY else "accessToken"
        sections[title] = describe_token(_decoded(data["token"]))
    vault = found.spec.get("vault")
    if isinstance(vault, Mapping):
        sections["vault"] = {
            "path": vault.get("path"),
            "leaseID": status.get("leaseID"),
            "leaseExpiresAt": status.get("leaseExpiresAt"),
            "renewable": status.get("leaseRenewable"),
        }
    return sections


def _decoded(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


async def inspect(kube: Kube, found: Found) -> dict[str, Any]:
    """Read ``found``'s Secret and describe it; an object not issued yet is an error."""
    name = found.status.get("secretName")
    if not name:
        raise PermanentError(f"{found.describe()} has no credential yet (no status.secretName)")
    try:
        secret = await kube.get(secret_path(found.ref.namespace, str(name)))
    except ApiNotFound as err:
        raise PermanentError(f"{found.describe()}: its Secret {name} does not exist") from err
    return describe_secret(found, secret)
