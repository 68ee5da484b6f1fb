# SPDX-License-Identifier: Apache-2.0
"""Making credentials: keys, X.509-SVIDs, JWTs, the local CA and bundles.

Only cryptography and PyJWT: no Kubernetes, no Vault, no I/O.
"""
