# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics of the operator, on a registry of its own (no module-level globals).

Every name here is listed in README.md, with its labels. Labels never carry key material,
tokens or serials, and their values are bounded: per-credential series carry the kind (four
values), namespace and name, one series per credential the cluster holds; an introspection
caller is an address, at most ``MAX_CALLERS`` of them (the rest count as ``other``).

The per-credential gauges are not kept up to date by hand: they are read from the
controllers' watched state at each scrape (``follow_credentials``), so a deleted object's
series disappear with it, and nothing is counted twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from wio.clock import Clock

#: Distinct introspection callers labelled one by one; beyond, they count as "other".
MAX_CALLERS = 256


@dataclass(frozen=True)
class CredentialTiming:
    """One credential wio keeps fresh, as its object's status says."""

    kind: str  # x509, jwt, token, vault
    namespace: str
    name: str
    expires: dt.datetime | None
    renews: dt.datetime | None
    ready: bool


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
            "Token introspection requests, by result (active, inactive_expired, "
            "inactive_revoked, inactive_invalid, unauthenticated, rate_limited, bad_request).",
            ["result"],
            registry=r,
        )
        self.introspection_auth_failures = Counter(
            "wio_introspection_auth_failures_total",
            "Introspection requests whose caller failed to authenticate, by caller address.",
            ["caller"],
            registry=r,
        )
        self._callers: set[str] = set()
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
        self._credentials: _CredentialCollector | None = None
        self.leader_transitions = Counter(
            "wio_leader_transitions_total",
            "Times this replica started or stopped leading.",
            registry=r,
        )

    def introspection_caller_failed(self, address: str) -> None:
        """A failed authentication at the introspection endpoint from ``address``."""
        if address not in self._callers and len(self._callers) >= MAX_CALLERS:
            address = "other"
        self._callers.add(address)
        self.introspection_auth_failures.labels(address).inc()

    def follow_credentials(
        self, source: Callable[[], Iterable[CredentialTiming]], clock: Clock
    ) -> None:
        """Report the credentials ``source`` yields at every scrape (the leader's)."""
        self.unfollow_credentials()
        self._credentials = _CredentialCollector(source, clock)
        self.registry.register(self._credentials)

    def unfollow_credentials(self) -> None:
        if self._credentials is not None:
            self.registry.unregister(self._credentials)
            self._credentials = None

    def set_leading(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)
        self.leader_transitions.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _CredentialCollector(Collector):
    """Per-credential expiry, renewal and readiness, and what they add up to, at scrape."""

    def __init__(self, source: Callable[[], Iterable[CredentialTiming]], clock: Clock) -> None:
        self._source = source
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["kind", "namespace", "name"]
        expiry = GaugeMetricFamily(
            "wio_credential_not_after_timestamp_seconds",
            "When a credential expires (Unix time), by kind (x509, jwt, token, vault).",
            labels=labels,
        )
        renewal = GaugeMetricFamily(
            "wio_credential_renewal_timestamp_seconds",
            "When a credential is due for rotation (Unix time), by kind.",
            labels=labels,
        )
        ready = GaugeMetricFamily(
            "wio_credential_ready",
            "1 when the object's credential is valid and in its Secret, else 0.",
            labels=labels,
        )
        now = self._clock.now()
        soonest: dt.datetime | None = None
        overdue, lag = 0, 0.0
        for c in self._source():
            values = [c.kind, c.namespace, c.name]
            ready.add_metric(values, 1 if c.ready else 0)
            if c.expires is not None:
                expiry.add_metric(values, c.expires.timestamp())
                soonest = c.expires if soonest is None else min(soonest, c.expires)
            if c.renews is not None:
                renewal.add_metric(values, c.renews.timestamp())
                if c.renews < now:
                    overdue += 1
                    lag = max(lag, (now - c.renews).total_seconds())
        yield from (expiry, renewal, ready)
        if soonest is not None:
            yield GaugeMetricFamily(
                "wio_outage_budget_seconds",
                "Seconds until the first credential wio keeps fresh expires: how long wio "
                "may be down before a workload holds an expired credential.",
                value=(soonest - now).total_seconds(),
            )
        yield GaugeMetricFamily(
            "wio_rotations_overdue",
            "Credentials past their rotation time and not yet rotated.",
            value=overdue,
        )
        yield GaugeMetricFamily(
            "wio_rotation_overdue_seconds",
            "How far past its rotation time the most overdue credential is (0: none).",
            value=lag,
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # computed at scrape; nothing to check at registration
