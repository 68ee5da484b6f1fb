# SPDX-License-Identifier: Apache-2.0
"""The Kubernetes adapter: the only code that talks to the Kubernetes API (Kopf's watches aside)."""
