# SPDX-License-Identifier: Apache-2.0
"""Limits every layer agrees on: the CA-lifetime ratio and the built-in IdentityPolicy defaults.

``PolicyDefaults`` is what IdentityPolicy evaluation (``wio.policy``) falls back on, and what
the admin configuration (``wio.config``) sets; it lives here, below both, so that neither
has to import the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from wio.errors import ConfigError
from wio.models.keytypes import KeyType
from wio.models.resources import DEFAULT_SIGNER

LIFETIME_TO_MAX_LEAF_TTL = 6
"""A CA must live at least this many maximum leaf TTLs: the last sixth of its life, after its
successor starts signing, then covers a full-length leaf issued just before the switch, so no
leaf is cut short by CA rotation (``wio.issuing.ca``)."""


@dataclass(frozen=True, kw_only=True)
class PolicyDefaults:
    """The built-in limits: all of them with no matching policy, and per field otherwise.

    ``AdminConfig.policy_defaults()`` builds them from the admin configuration; the class
    defaults equal the configuration's defaults. A value handed to the policy evaluation, so
    that policy never depends on how the operator is configured.
    """

    #: Shortest X.509-SVID: the admin's production minimum (10m unless configured). Shorter
    #: lifetimes are for tests and demos, granted through an IdentityPolicy.
    x509_min_ttl: timedelta = timedelta(minutes=10)
    #: Longest X.509-SVID (24h): a stolen key is useful for a day at most.
    x509_max_ttl: timedelta = timedelta(hours=24)
    #: Longest X.509-SVID any policy may allow: the CA lifetime / 6, so CA rotation never
    #: cuts a certificate short (365 days / 6 by default).
    x509_ttl_ceiling: timedelta = timedelta(days=365) // LIFETIME_TO_MAX_LEAF_TTL
    #: Key types (EC and Ed25519). RSA is opt-in through a policy: an RSA-2048 key costs
    #: ~58 ms to generate, so a fleet of them needs a deliberate choice.
    key_types: tuple[KeyType, ...] = (KeyType.ECDSAP256, KeyType.ECDSAP384, KeyType.ED25519)
    #: DNS SANs: none. A DNS name claims a host; which workload may claim which host is
    #: exactly what a policy is for.
    dns_names: tuple[str, ...] = ()
    #: JWT-SVID lifetime bounds: the production minimum, and 1h at most because a JWT is a
    #: bearer token usable by whoever holds it.
    jwt_min_ttl: timedelta = timedelta(minutes=10)
    jwt_max_ttl: timedelta = timedelta(hours=1)
    #: JWT-SVID audiences: ``None`` means any. The audience names the verifier, and a
    #: JWT-SVID asserts only the workload's own SPIFFE ID, which it may show to anyone.
    jwt_audiences: tuple[str, ...] | None = None
    #: JWT-SVID audiences no default grants: each must be listed by a matching policy's
    #: ``jwt.audiences``. The introspection endpoint is one: a JWT-SVID for it lets a workload
    #: read the claims of every access token it is shown.
    reserved_audiences: tuple[str, ...] = ()
    #: Access-token lifetime bounds, as for JWT-SVIDs.
    token_min_ttl: timedelta = timedelta(minutes=10)
    token_max_ttl: timedelta = timedelta(hours=1)
    #: Access-token audiences: ``None`` means any; the scopes are what a policy must grant.
    token_audiences: tuple[str, ...] | None = None
    #: Signers: only ``default``. Other signers (another CA, Vault) are opt-in per policy.
    signers: tuple[str, ...] = (DEFAULT_SIGNER,)

    def __post_init__(self) -> None:
        for low, high, name in (
            (self.x509_min_ttl, self.x509_max_ttl, "x509"),
            (self.jwt_min_ttl, self.jwt_max_ttl, "jwt"),
            (self.token_min_ttl, self.token_max_ttl, "token"),
        ):
            for which, value in (("min", low), ("max", high)):
                if not isinstance(value, timedelta) or value <= timedelta(0):
                    raise ConfigError(f"{name}_{which}_ttl", "must be a positive duration")
            if low > high:
                raise ConfigError(f"{name}_min_ttl", f"must not exceed {name}_max_ttl")
        if not isinstance(self.x509_ttl_ceiling, timedelta) or self.x509_ttl_ceiling <= timedelta(
            0
        ):
            raise ConfigError("x509_ttl_ceiling", "must be a positive duration")
        for key_type in self.key_types:
            if not isinstance(key_type, KeyType):
                raise ConfigError("key_types", "must be KeyType values")
        named: tuple[tuple[str, object], ...] = (
            ("dns_names", self.dns_names),
            ("jwt_audiences", self.jwt_audiences),
            ("token_audiences", self.token_audiences),
            ("signers", self.signers),
        )
        for name, values in named:
            if values is not None and (
                not isinstance(values, tuple | list) or not all(isinstance(v, str) for v in values)
            ):
                raise ConfigError(name, "must be a tuple of strings")
        object.__setattr__(self, "key_types", tuple(self.key_types))
        object.__setattr__(self, "dns_names", tuple(self.dns_names))
        object.__setattr__(self, "signers", tuple(self.signers))
