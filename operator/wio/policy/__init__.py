# SPDX-License-Identifier: Apache-2.0
"""Pure decisions: renewal times, reissue checks and IdentityPolicy evaluation.

Every function takes ``now``; none does I/O.
"""
