# SPDX-License-Identifier: Apache-2.0
"""``NAMESPACE/NAME`` references, the API seam of the SRE commands, and finding an object.

A reference is checked before it reaches a URL path: a name with a slash or an upper-case
letter is a usage error that names the argument, never a request to some other path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from wio.errors import ApiNotFound, ValidationError
from wio.k8s.client import custom_path
from wio.names import (
    SCOPED_CREDENTIAL,
    SCOPED_CREDENTIALS,
    WORKLOAD_IDENTITIES,
    WORKLOAD_IDENTITY,
)

#: The ``--kind`` choices, lower-cased as kubectl spells resources, to (Kind, plural).
KINDS: Mapping[str, tuple[str, str]] = {
    "workloadidentity": (WORKLOAD_IDENTITY, WORKLOAD_IDENTITIES),
    "scopedcredential": (SCOPED_CREDENTIAL, SCOPED_CREDENTIALS),
}
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class Kube(Protocol):
    """What the SRE commands need of ``wio.k8s.client.KubeClient``."""

    async def get(self, path: str) -> dict[str, Any]: ...

    async def list(
        self, path: str, *, label_selector: str | None = None, metadata_only: bool = False
    ) -> list[dict[str, Any]]: ...

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ObjectRef:
    """A namespaced object named on the command line."""

    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str) -> ObjectRef:
        """``NAMESPACE/NAME``, each a valid Kubernetes name; anything else is a usage error."""
        namespace, slash, name = text.partition("/")
        if not slash or not namespace or not name:
            raise ValidationError("NAMESPACE/NAME", f"expected NAMESPACE/NAME, got {text!r}")
        if not _LABEL.fullmatch(namespace):
            raise ValidationError(
                "NAMESPACE/NAME", f"{namespace!r} is not a namespace name (lower-case DNS label)"
            )
        if not _SUBDOMAIN.fullmatch(name):
            raise ValidationError(
                "NAMESPACE/NAME", f"{name!r} is not an object name (lower-case DNS subdomain)"
            )
        return cls(namespace, name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def check_namespace(namespace: str) -> str:
    """A ``-n`` or ``--bundle-from`` argument, checked like the namespace of a reference."""
    if not _LABEL.fullmatch(namespace):
        raise ValidationError("namespace", f"{namespace!r} is not a namespace name")
    return namespace


@dataclass(frozen=True)
class Found:
    """A WorkloadIdentity or ScopedCredential as read from the API."""

    kind: str  # WORKLOAD_IDENTITY or SCOPED_CREDENTIAL
    plural: str
    ref: ObjectRef
    body: Mapping[str, Any]

    @property
    def path(self) -> str:
        return custom_path(self.plural, self.ref.namespace, self.ref.name)

    @property
    def status(self) -> Mapping[str, Any]:
        return self.body.get("status") or {}

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.body.get("spec") or {}

    def describe(self) -> str:
        return f"{self.kind} {self.ref}"


async def find(kube: Kube, ref: ObjectRef, kind: str | None = None) -> Found:
    """The object ``ref`` names: of ``kind`` (a ``KINDS`` key) when given, else whichever of
    the two kinds exists; both existing is ambiguous and needs ``--kind``."""
    candidates = [KINDS[kind]] if kind else list(KINDS.values())
    found = []
    for kind_name, plural in candidates:
        try:
            body = await kube.get(custom_path(plural, ref.namespace, ref.name))
        except ApiNotFound:
            continue
        found.append(Found(kind_name, plural, ref, body))
    if not found:
        what = " or ".join(k for k, _ in candidates)
        raise ValidationError(
            "NAMESPACE/NAME", f"no {what} {ref.name} in namespace {ref.namespace}"
        )
    if len(found) > 1:
        raise ValidationError(
            "NAMESPACE/NAME",
            f"both a WorkloadIdentity and a ScopedCredential are named {ref}; "
            "choose one with --kind",
        )
    return found[0]


def condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    """The condition of type ``kind`` in a status, if any."""
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return None
