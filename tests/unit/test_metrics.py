# SPDX-License-Identifier: Apache-2.0
"""What the metrics say about the credentials wio keeps, read at scrape from its state."""

from __future__ import annotations

import datetime as dt

import pytest

from wio.clock import FakeClock
from wio.metrics import MAX_CALLERS, CredentialTiming, Metrics

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def sample(metrics: Metrics, metric: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(metric, labels)


def test_every_kind_of_credential_has_its_expiry_renewal_and_readiness() -> None:
    metrics = Metrics()
    fleet = [
        CredentialTiming("x509", "pay", "api", at(3600), at(1800), True),
        CredentialTiming("jwt", "pay", "api", at(900), at(450), True),
        CredentialTiming("token", "pay", "orders", at(600), at(300), True),
        CredentialTiming("vault", "pay", "db", at(1200), None, False),
    ]
    metrics.follow_credentials(lambda: fleet, FakeClock(NOW))
    for c in fleet:
        labels = {"kind": c.kind, "namespace": c.namespace, "name": c.name}
        assert c.expires is not None
        assert sample(metrics, "wio_credential_not_after_timestamp_seconds", **labels) == (
            c.expires.timestamp()
        )
        assert sample(metrics, "wio_credential_ready", **labels) == (1 if c.ready else 0)
    assert sample(metrics, "wio_credential_renewal_timestamp_seconds", kind="vault",
                  namespace="pay", name="db") is None  # fmt: skip
    # The least time left before any credential expires: how long wio may be down.
    assert sample(metrics, "wio_outage_budget_seconds") == 600
    assert sample(metrics, "wio_rotations_overdue") == 0
    assert sample(metrics, "wio_rotation_overdue_seconds") == 0


def test_overdue_rotations_are_counted_and_the_worst_lag_reported() -> None:
    clock = FakeClock(NOW)
    fleet = [
        CredentialTiming("x509", "a", "one", at(100), at(-40), True),
        CredentialTiming("x509", "a", "two", at(100), at(-5), True),
        CredentialTiming("x509", "a", "three", at(100), at(50), True),
    ]
    metrics = Metrics()
    metrics.follow_credentials(lambda: fleet, clock)
    assert sample(metrics, "wio_rotations_overdue") == 2
    assert sample(metrics, "wio_rotation_overdue_seconds") == 40


def test_a_deleted_credential_leaves_no_series_and_a_standby_reports_none() -> None:
    fleet = [CredentialTiming("x509", "a", "gone", at(100), at(50), True)]
    metrics = Metrics()
    metrics.follow_credentials(lambda: list(fleet), FakeClock(NOW))
    fleet.clear()
    text = metrics.exposition().decode()
    assert 'name="gone"' not in text
    assert "wio_outage_budget_seconds " not in text  # nothing to expire: no budget to report
    metrics.unfollow_credentials()
    assert "wio_credential_ready" not in metrics.exposition().decode()


def test_failed_introspection_callers_are_labelled_up_to_a_bound() -> None:
    metrics = Metrics()
    for index in range(MAX_CALLERS + 50):
        metrics.introspection_caller_failed(f"10.0.{index // 256}.{index % 256}")
    metrics.introspection_caller_failed("10.0.0.1")
    text = metrics.exposition().decode()
    series = [line for line in text.splitlines() if line.startswith("wio_introspection_auth_")]
    callers = [line for line in series if line.startswith("wio_introspection_auth_failures_total{")]
    assert len(callers) == MAX_CALLERS + 1  # every known address, and "other"
    assert sample(metrics, "wio_introspection_auth_failures_total", caller="other") == 50
    assert sample(metrics, "wio_introspection_auth_failures_total", caller="10.0.0.1") == 2
