# SPDX-License-Identifier: Apache-2.0
"""The API names wio stores on objects keep their values, and only ``wio.names`` spells them.

Labels and annotations sit on objects in users' clusters: a changed value would orphan what
is already there, so the values are pinned here and any change must be made on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from wio import names

pytestmark = pytest.mark.unit

PACKAGE = Path(names.__file__).resolve().parent

STORED = {
    "REVOKE_ANNOTATION": "identity.wio.dev/revoke",
    "LEADER_LEASE": "wio-leader",
    "INTROSPECTION_PATH": "/introspect",
    "GROUP": "identity.wio.dev",
    "VERSION": "v1alpha1",
    "API_VERSION": "identity.wio.dev/v1alpha1",
    "WORKLOAD_IDENTITY": "WorkloadIdentity",
    "WORKLOAD_IDENTITIES": "workloadidentities",
    "SCOPED_CREDENTIAL": "ScopedCredential",
    "SCOPED_CREDENTIALS": "scopedcredentials",
    "IDENTITY_POLICY": "IdentityPolicy",
    "IDENTITY_POLICIES": "identitypolicies",
    "FINALIZER": "identity.wio.dev/finalizer",
    "MANAGED_BY": "app.kubernetes.io/managed-by",
    "MANAGER": "wio",
    "FIELD_MANAGER": "wio",
    "IDENTITY_OWNER_LABEL": "identity.wio.dev/workloadidentity",
    "CREDENTIAL_OWNER_LABEL": "identity.wio.dev/scopedcredential",
    "ROTATE_ANNOTATION": "identity.wio.dev/rotate",
    "SPIFFE_ID_ANNOTATION": "identity.wio.dev/spiffe-id",
    "RENEW_AT_ANNOTATION": "identity.wio.dev/renew-at",
    "SPEC_HASH_ANNOTATION": "identity.wio.dev/spec-hash",
    "SERIAL_ANNOTATION": "identity.wio.dev/serial",
    "KEY_FINGERPRINT_ANNOTATION": "identity.wio.dev/key-fingerprint",
    "NOT_AFTER_ANNOTATION": "identity.wio.dev/not-after",
    "JWT_EXPIRES_AT_ANNOTATION": "identity.wio.dev/jwt-expires-at",
    "JWT_RENEW_AT_ANNOTATION": "identity.wio.dev/jwt-renew-at",
    "JWT_ID_ANNOTATION": "identity.wio.dev/jwt-id",
    "FORCED_ROTATION_ANNOTATION": "identity.wio.dev/forced-rotation",
    "ROTATIONS_ANNOTATION": "identity.wio.dev/rotations",
    "SOURCE_ANNOTATION": "identity.wio.dev/source",
    "JTI_ANNOTATION": "identity.wio.dev/jti",
    "LEASE_ID_ANNOTATION": "identity.wio.dev/lease-id",
    "EXPIRES_AT_ANNOTATION": "identity.wio.dev/expires-at",
    "DATA_KEYS_ANNOTATION": "identity.wio.dev/data-keys",
    "VAULT_PATH_ANNOTATION": "identity.wio.dev/vault-path",
    "CONTENT_HASH_ANNOTATION": "identity.wio.dev/content-hash",
    "ROLLOVER_CA_ANNOTATION": "identity.wio.dev/rollover-ca",
    "ROLLOVER_JWT_ANNOTATION": "identity.wio.dev/rollover-jwt",
    "DISTRUST_CA_ANNOTATION": "identity.wio.dev/distrust-ca",
    "DISTRUST_JWT_ANNOTATION": "identity.wio.dev/distrust-jwt",
    "ACK_SUFFIX": "-ack",
}


def _public_names() -> dict[str, object]:
    return {k: v for k, v in vars(names).items() if k.isupper() and not k.startswith("_")}


def test_every_stored_name_keeps_its_value() -> None:
    assert _public_names() == STORED


def test_annotations_and_labels_are_distinct_keys() -> None:
    keys = [v for k, v in STORED.items() if k.endswith(("_ANNOTATION", "_LABEL"))]
    assert len(keys) == len(set(keys))
    assert all(key.startswith("identity.wio.dev/") for key in keys)


def _string_literals(tree: ast.Module) -> list[str]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_other_module_spells_the_api_group() -> None:
    spelled = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "names.py"
        and any("identity.wio.dev" in s for s in _string_literals(ast.parse(path.read_text())))
    ]
    assert spelled == []
