# SPDX-License-Identifier: Apache-2.0
"""Test-side helpers for the real control plane: clients, CRD installation, prerequisites."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def missing_prerequisite(reason: str) -> None:
    """Skip outside CI; under CI a missing control plane is a failure, never a silent skip."""
    if in_ci():
        pytest.fail(f"CI=true and the real control plane is unavailable: {reason}", pytrace=False)
    pytest.skip(f"real control plane unavailable: {reason}")


def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def install_crds(api: client.ApiClient, paths: list[Path], timeout: float = 30.0) -> list[str]:
    """Create (or replace) every CRD in ``paths`` and wait until each is Established."""
    ext = client.ApiextensionsV1Api(api)
    names: list[str] = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            name = doc["metadata"]["name"]
            try:
                ext.create_custom_resource_definition(doc)
            except ApiException as err:
                if err.status != 409:
                    raise
                current = ext.read_custom_resource_definition(name)
                doc["metadata"]["resourceVersion"] = current.metadata.resource_version
                ext.replace_custom_resource_definition(name, doc)
            names.append(name)
    for name in names:
        wait_for(
            lambda n=name: _established(ext, n), timeout=timeout, what=f"CRD {name} Established"
        )
    return names


def _established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    crd: Any = ext.read_custom_resource_definition(name)
    conditions = crd.status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def gone(read: Any, *args: Any) -> bool:
    """True when ``read(*args)`` answers 404."""
    try:
        read(*args)
    except ApiException as err:
        if err.status == 404:
            return True
        raise
    return False
