# SPDX-License-Identifier: Apache-2.0
"""Orchestration: observe → decide → sign → write → status, for every custom resource.

Imports adapters (``wio.k8s``, ``wio.backends``) and pure logic, never Kopf.
"""
