# SPDX-License-Identifier: Apache-2.0
"""wio, the Workload Identity Operator: short-lived SPIFFE identities for Kubernetes workloads."""

__version__ = "0.1.0"
