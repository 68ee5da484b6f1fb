# SPDX-License-Identifier: Apache-2.0
"""The composition root: builds one operator instance from the admin configuration."""
