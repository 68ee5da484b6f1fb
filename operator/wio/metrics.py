# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics of the operator, on a registry of its own (no module-level globals).

Every name here is listed in README.md. Labels never carry key material, tokens or serials;
per-identity gauges are labelled by namespace and name only, and removed on delete.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.issuances = Counter(
            "wio_issuances_total",
            "Credentials issued for the first time, by kind and result.",
            ["kind", "result"],
            registry=r,
        )
        self.rotations = Counter(
            "wio_rotations_total",
            "Credentials re-issued, by kind, reason and result.",
            ["kind", "reason", "result"],
            registry=r,
        )
        self.revocations = Counter(
            "wio_revocations_total",
            "Credentials revoked on delete, by kind and result.",
            ["kind", "result"],
            registry=r,
        )
        self.issuance_seconds = Histogram(
            "wio_issuance_duration_seconds",
            "Time from deciding to issue to the Secret and status written.",
            ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.not_after = Gauge(
            "wio_credential_not_after_timestamp_seconds",
            "When the current credential of an identity expires (Unix time).",
            ["namespace", "name"],
            registry=r,
        )
        self.renewal = Gauge(
            "wio_credential_renewal_timestamp_seconds",
            "When the current credential of an identity is due for rotation (Unix time).",
            ["namespace", "name"],
            registry=r,
        )
        self.ready = Gauge(
            "wio_identity_ready",
            "1 when the identity has a valid credential in its Secret, else 0.",
            ["namespace", "name"],
            registry=r,
        )
        self.upstream_pending = Gauge(
            "wio_upstream_revocations_pending",
            "Revocations stored by wio that the signer or Vault has not confirmed yet.",
            registry=r,
        )
        self.signer_errors = Counter(
            "wio_signer_errors_total",
            "Failures of a signer, by signer name and reason.",
            ["signer", "reason"],
            registry=r,
        )
        self.policy_denials = Counter(
            "wio_policy_denials_total",
            "Requests refused by IdentityPolicy, by kind.",
            ["kind"],
            registry=r,
        )
        self.introspections = Counter(
            "wio_introspection_requests_total",
            "Token introspection requests, by result (active, inactive, unauthorized, "
            "rate_limited, bad_request).",
            ["result"],
            registry=r,
        )
        self.key_rollovers = Counter(
            "wio_key_rollovers_total",
            "Local signing-key changes, by key (ca, jwt) and step (scheduled, prepared, activated, "
            "distrusted, retired).",
            ["key", "step"],
            registry=r,
        )
        self.untrusted_credentials = Gauge(
            "wio_untrusted_credentials",
            "Credentials in Secrets whose CA or JWT key is no longer trusted, still to be "
            "re-issued after a distrust (0 when none).",
            registry=r,
        )
        self.key_activation = Gauge(
            "wio_signing_key_activation_timestamp_seconds",
            "When a scheduled rollover activates the next key (Unix time), by key.",
            ["key"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "wio_workqueue_depth", "Objects waiting for or under reconciliation.", registry=r
        )
        self.scheduled = Gauge(
            "wio_scheduled_rotations", "Objects with a pending due time.", registry=r
        )
        self.leader = Gauge(
            "wio_leader",
            "1 while this replica holds the leader Lease (reconciles and writes), else 0.",
            registry=r,
        )
        self.leader_transitions = Counter(
            "wio_leader_transitions_total",
            "Times this replica started or stopped leading.",
            registry=r,
        )

    def set_identity(
        self,
        namespace: str,
        name: str,
        *,
        not_after: dt.datetime,
        renewal: dt.datetime,
        ready: bool,
    ) -> None:
        self.not_after.labels(namespace, name).set(not_after.timestamp())
        self.renewal.labels(namespace, name).set(renewal.timestamp())
        self.ready.labels(namespace, name).set(1 if ready else 0)

    def set_ready(self, namespace: str, name: str, ready: bool) -> None:
        self.ready.labels(namespace, name).set(1 if ready else 0)

    def forget_identity(self, namespace: str, name: str) -> None:
        for gauge in (self.not_after, self.renewal, self.ready):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)

    def set_leading(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)
        self.leader_transitions.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
