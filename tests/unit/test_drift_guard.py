# SPDX-License-Identifier: Apache-2.0
"""The guard against a competing writer: a bounded number of repairs per hour, then a pause."""

from __future__ import annotations

import datetime as dt

import pytest

from wio.policy.reconcile import DRIFT_WINDOW, MAX_DRIFT_REPAIRS, drift_repairs_exhausted
from wio.service.views import last_foreign_writer

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def test_repairs_below_the_budget_go_ahead() -> None:
    repairs = [NOW - dt.timedelta(minutes=i) for i in range(MAX_DRIFT_REPAIRS - 1)]
    assert drift_repairs_exhausted(repairs, NOW) is None


def test_a_full_budget_pauses_until_the_oldest_counted_repair_leaves_the_window() -> None:
    repairs = [NOW - dt.timedelta(minutes=i) for i in range(MAX_DRIFT_REPAIRS)]
    resume = drift_repairs_exhausted(repairs, NOW)
    assert resume == repairs[-1] + DRIFT_WINDOW
    assert drift_repairs_exhausted(repairs, resume) is None  # type: ignore[arg-type]


def test_repairs_older_than_the_window_do_not_count() -> None:
    old = [NOW - DRIFT_WINDOW - dt.timedelta(seconds=i) for i in range(50)]
    assert drift_repairs_exhausted(old, NOW) is None


def test_the_competing_writer_is_the_latest_manager_other_than_wio() -> None:
    fields = [
        {"manager": "wio", "time": "2026-01-01T12:05:00Z"},
        {"manager": "argocd-controller", "time": "2026-01-01T12:01:00Z"},
        {"manager": "kubectl-edit", "time": "2026-01-01T12:03:00Z"},
    ]
    assert last_foreign_writer(fields) == "kubectl-edit"
    assert last_foreign_writer([{"manager": "wio", "time": "x"}]) is None
    assert last_foreign_writer([]) is None
