# SPDX-License-Identifier: Apache-2.0
"""Signer backends behind small Protocols: local CA, Vault/OpenBao PKI and Transit.

The only package that imports hvac.
"""
