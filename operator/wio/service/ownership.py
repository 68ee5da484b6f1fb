# SPDX-License-Identifier: Apache-2.0
"""Whose a Secret is: the only code that writes or names a credential Secret for an object.

A Secret is an object's only when its owner label names the object and its controller
ownerReference carries the object's UID (``SecretRecord``); labels alone can be written by
anyone who may write Secrets, and a name can be reused by a new object. So:

- a Secret wio does not know as this object's is created with POST, and if the name is
  taken, by anyone, the 409 becomes ``NameTaken`` and nothing is written;
- wio's own is applied or patched at the resourceVersion wio last saw, so one replaced behind
  wio's back is not overwritten either;
- a Secret name that another wio object's credential holds is a ``SecretConflict`` before
  anything is tried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from wio.errors import ApiConflict, NameTaken
from wio.k8s.client import KubeClient, secret_path
from wio.service.bodies import Owner
from wio.service.cache import WatchedCache
from wio.service.kind import Blocked, FactsT, KindHooks, SpecT, StateT, SubjectT
from wio.service.views import ObjectKey, ObjectView, SecretIndex, SecretRecord


class SecretOwnership(KindHooks[SpecT, SubjectT, StateT, FactsT]):
    """The Secret side of a controller (``wio.service.controller`` sets the attributes)."""

    kind: ClassVar[str]
    kube: KubeClient
    cache: WatchedCache
    secrets: SecretIndex[FactsT]

    def secret_name(self, spec: SpecT) -> str:
        return spec.secret_name

    def own_secret_names(self, view: ObjectView) -> list[str]:
        """The Secrets wio wrote for this very object. Status and spec only name candidates
        (status is anyone's to patch who may patch status): the ownership check decides."""
        candidates = dict.fromkeys(
            name
            for name in (
                view.status.get("secretName"),
                view.spec.get("secretName"),
                self.default_secret_name(view.key.name),
            )
            if isinstance(name, str) and name
        )
        return [name for name in candidates if self._own_record(view, name) is not None]

    def owner(self, view: ObjectView) -> Owner:
        return Owner(self.kind, view.key.namespace, view.key.name, view.uid)

    def _secret_conflict(self, view: ObjectView, secret_name: str) -> Blocked | None:
        """Another object's credential already lives in this Secret (by wio's own records;
        a Secret wio never wrote is refused when it is first written)."""
        for kind, record in self.cache.secret_records(view.key.namespace, secret_name):
            if kind == self.kind and record.belongs_to(view.key.name, view.uid):
                continue
            if kind == self.kind and record.owner == view.key.name:
                held = f"is labelled for {kind} {record.owner} but was not written for this one"
            else:
                held = f"already holds the credential of {kind} {record.owner}"
            return Blocked(
                "SecretConflict",
                f"spec.secretName: Secret {secret_name} {held}; choose another name",
            )
        return None

    async def write_secret(
        self, view: ObjectView, secret_name: str, manifest: dict[str, Any], facts: FactsT
    ) -> None:
        """Write this object's Secret, never anyone else's.

        A Secret wio does not know as this object's is created (POST): if the name is taken,
        by anyone, the API answers 409 and nothing is written (``NameTaken``). One wio
        knows as this object's is applied with the resourceVersion wio last saw, so a Secret
        replaced behind wio's back since is not overwritten either. Then its facts are
        recorded, so its echo is not judged again and a crash before the status patch finds
        it adoptable.
        """
        namespace = view.key.namespace
        record = self._own_record(view, secret_name)
        if record is None:
            try:
                answer = await self.kube.create(
                    secret_path(namespace), manifest, metadata_only=True
                )
            except ApiConflict as err:
                raise NameTaken(self._taken_message(secret_name)) from err
        else:
            if record.version is not None:
                manifest["metadata"]["resourceVersion"] = record.version
            answer = await self.kube.apply(secret_path(namespace, secret_name), manifest)
        self._record_written(view, secret_name, answer, facts)

    async def patch_secret(
        self, view: ObjectView, secret_name: str, patch: dict[str, Any], facts: FactsT
    ) -> None:
        """Merge-patch this object's Secret at the version wio last saw (a JWT-SVID refresh,
        a lease renewal); a Secret wio does not know as this object's is never touched."""
        record = self._own_record(view, secret_name)
        if record is None:
            raise NameTaken(self._taken_message(secret_name))
        if record.version is not None:
            patch.setdefault("metadata", {})["resourceVersion"] = record.version
        answer = await self.kube.merge_patch(secret_path(view.key.namespace, secret_name), patch)
        self._record_written(view, secret_name, answer, facts)

    def _own_record(self, view: ObjectView, secret_name: str) -> SecretRecord | None:
        record = self.secrets.records.get(ObjectKey(view.key.namespace, secret_name))
        return record if record is not None and record.belongs_to(view.key.name, view.uid) else None

    def _record_written(
        self, view: ObjectView, secret_name: str, answer: Mapping[str, Any], facts: FactsT
    ) -> None:
        key = ObjectKey(view.key.namespace, secret_name)
        meta = answer.get("metadata") or {}
        self.secrets.facts[key] = facts
        self.secrets.records[key] = SecretRecord(
            view.key.name, view.uid, meta.get("uid"), meta.get("resourceVersion")
        )

    def _taken_message(self, secret_name: str) -> str:
        # Who holds it is not said: wio may not read Secrets it did not create (its RBAC
        # has no get on Secrets), and it does not try.
        return (
            f"spec.secretName: Secret {secret_name} already exists and was not created by wio "
            f"for this {self.kind}; wio does not take it over: choose another name"
        )
