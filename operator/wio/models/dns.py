# SPDX-License-Identifier: Apache-2.0
"""DNS names as a certificate's DNS SANs may carry them, checked once for every layer.

The spec parser, IdentityPolicy grants, the X.509-SVID template and the signer backends all
refuse the same names with the same message, because they all call this one check.
"""

from __future__ import annotations

import ipaddress

from wio.errors import ValidationError

_MAX_DNS_NAME = 253
_MAX_DNS_LABEL = 63
_DNS_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def check_dns_name(name: str, *, field: str = "dnsNames") -> None:
    """Refuse anything but a lower-case LDH host name, optionally with a leading ``*.``."""
    if not isinstance(name, str) or not name:
        raise ValidationError(field, "DNS name must be a non-empty string")
    if len(name) > _MAX_DNS_NAME:
        raise ValidationError(
            field, f"DNS name is {len(name)} characters long; the maximum is {_MAX_DNS_NAME}"
        )
    if _is_ip_address(name):
        raise ValidationError(
            field, f"{name!r} is an IP address, not a DNS name; wio issues no IP SANs"
        )
    labels = name.split(".")
    for index, label in enumerate(labels):
        if index == 0 and label == "*" and len(labels) > 1:
            continue
        if not label:
            raise ValidationError(field, f"DNS name {name!r} has an empty label")
        if len(label) > _MAX_DNS_LABEL:
            raise ValidationError(field, f"DNS name {name!r} has a label over 63 characters")
        bad = next((c for c in label if c not in _DNS_LABEL_CHARS), None)
        if bad is not None:
            raise ValidationError(
                field,
                f"DNS name {name!r} contains {bad!r}; only lower-case a-z, 0-9 and '-' "
                "are allowed in a label",
            )
        if label.startswith("-") or label.endswith("-"):
            raise ValidationError(field, f"DNS name {name!r} has a label starting or ending in '-'")


def _is_ip_address(name: str) -> bool:
    """An IPv4 or IPv6 literal, which some clients would match as a host name."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
