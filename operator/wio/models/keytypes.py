# SPDX-License-Identifier: Apache-2.0
"""The key types a credential may ask for, as the spec names them.

A value, not a key: the spec parser, policies and the admin configuration name key types
without generating any, so the name lives below the code that makes keys
(``wio.issuing.keys``).
"""

from __future__ import annotations

import enum

from wio.errors import ValidationError


class KeyType(enum.StrEnum):
    """Key types a WorkloadIdentity may ask for. RSA is opt-in: a 2048-bit key costs ~58 ms."""

    ECDSAP256 = "ECDSAP256"
    ECDSAP384 = "ECDSAP384"
    ED25519 = "Ed25519"
    RSA2048 = "RSA2048"
    RSA3072 = "RSA3072"

    @classmethod
    def parse(cls, value: str, *, field: str = "keyType") -> KeyType:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(k.value for k in cls)
            raise ValidationError(
                field, f"unknown key type {value!r}; allowed: {allowed}"
            ) from None

    @property
    def is_rsa(self) -> bool:
        return self in (KeyType.RSA2048, KeyType.RSA3072)
