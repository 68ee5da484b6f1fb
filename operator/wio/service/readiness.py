# SPDX-License-Identifier: Apache-2.0
"""Readiness: pure functions from an object's situation to its conditions, per kind.

Every outcome of a reconcile (issued, still valid, denied by policy, blocked, failed) maps
to one set of conditions here, so the two kinds cannot drift in what ``Ready``, ``Issuing``,
``SignerAvailable`` and ``PolicyDenied`` say. The decision whether a write is needed at all
(``ready_is_current``, ``denial_is_current``, ``block_is_current``) is pure too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wio.service.status import Condition, condition


@dataclass(frozen=True)
class Readiness:
    """What one kind says in its conditions."""

    #: The reason of ``Ready`` when a reconcile found the credential still valid.
    valid_reason: str
    #: The message of ``PolicyDenied=False``.
    allowed_message: str

    def issued(self, reason: str, message: str) -> list[Condition]:
        """A credential is in place: just issued, rotated, adopted or renewed."""
        return [
            Condition("Ready", True, reason, message),
            Condition("Issuing", False, "Idle", "no issuance in progress"),
            Condition("SignerAvailable", True, "Available", "the signer answered"),
            Condition("PolicyDenied", False, "Allowed", self.allowed_message),
        ]

    def valid(self) -> list[Condition]:
        """Nothing to issue: the credential recorded in status is valid."""
        return self.issued(self.valid_reason, "credential is valid")


IDENTITY = Readiness(
    valid_reason="Issued",
    allowed_message="an IdentityPolicy or the defaults allow this identity",
)
CREDENTIAL = Readiness(
    valid_reason="Valid",
    allowed_message="an IdentityPolicy allows this credential",
)


def denied(message: str) -> list[Condition]:
    """Policy denies the request: nothing is minted."""
    return [
        Condition("Ready", False, "PolicyDenied", message),
        Condition("Issuing", False, "PolicyDenied", "nothing is minted while policy denies it"),
        Condition("PolicyDenied", True, "PolicyDenied", message),
    ]


def blocked(reason: str, message: str) -> list[Condition]:
    """Nothing can be issued: an invalid spec, a missing identity, a Secret name in use."""
    return [
        Condition("Ready", False, reason, message),
        Condition("Issuing", False, reason, "nothing is minted"),
    ]


def ready_is_current(status: Mapping[str, Any], generation: int) -> bool:
    """Status already says Ready for this generation, and no denial is left standing."""
    ready = condition(status, "Ready")
    return (
        ready is not None
        and ready.get("status") == "True"
        and ready.get("observedGeneration") == generation
        and (condition(status, "PolicyDenied") or {}).get("status") != "True"
    )


def denial_is_current(status: Mapping[str, Any], generation: int, message: str) -> bool:
    denial = condition(status, "PolicyDenied")
    return (
        denial is not None
        and denial.get("status") == "True"
        and denial.get("message") == message
        and denial.get("observedGeneration") == generation
    )


def block_is_current(status: Mapping[str, Any], generation: int, reason: str) -> bool:
    ready = condition(status, "Ready")
    return (
        ready is not None
        and ready.get("status") == "False"
        and ready.get("reason") == reason
        and ready.get("observedGeneration") == generation
    )
