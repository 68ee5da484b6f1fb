# SPDX-License-Identifier: Apache-2.0
"""The claim names no tenant may set on an access token, shared by the spec and the minter.

The spec parser refuses them up front (``wio.models.resources``) and the minter refuses them
again when it builds the claims (``wio.issuing.jwt``); one list keeps the two in agreement.
"""

from __future__ import annotations

#: Claim names an access token's ``extra_claims`` may not set, compared case-insensitively
#: (a lax resource server that folds case must not be fooled either). They are the JWT
#: registered claims (RFC 7519), those RFC 9068/8693/7800 give meaning to, the OIDC ID-token
#: claims (a token that looks like an ID token could be replayed as one), and the claims
#: resource servers commonly authorise on (RFC 9068 §2.2.3.1 ``roles``/``groups``/
#: ``entitlements``, Azure/Okta ``scp``, verified e-mail and phone): a tenant setting any of
#: these could widen what the token grants beyond the policy-checked ``scope``.
RESERVED_CLAIMS: frozenset[str] = frozenset(
    {
        # RFC 7519 registered claims
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        # RFC 9068 / RFC 8693 / RFC 7800
        "client_id",
        "scope",
        "cnf",
        "act",
        "may_act",
        # OpenID Connect Core ID-token claims
        "azp",
        "auth_time",
        "acr",
        "amr",
        "nonce",
        "at_hash",
        "c_hash",
        "s_hash",
        "sid",
        "sub_jwk",
        # header-ish names some libraries read from claims
        "typ",
        "cty",
        # authorisation claims resource servers act on
        "scp",
        "roles",
        "groups",
        "entitlements",
        "permissions",
        "email",
        "email_verified",
        "phone_number",
        "phone_number_verified",
        "preferred_username",
    }
)
