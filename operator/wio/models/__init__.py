# SPDX-License-Identifier: Apache-2.0
"""Validated values and spec models: SPIFFE IDs, key types, DNS names, limits, resource specs.

The bottom of the pure layer next to ``wio.names``: nothing here imports ``wio.issuing``,
``wio.policy`` or ``wio.config``, which all build on it.
"""
