# SPDX-License-Identifier: Apache-2.0
"""Validated values and spec models: SPIFFE IDs, trust domains, key types, resource specs."""
