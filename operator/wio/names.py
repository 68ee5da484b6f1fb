# SPDX-License-Identifier: Apache-2.0
"""The names wio shares with the Kubernetes API: its group, kinds, labels and annotation keys.

Every label and annotation wio reads or writes is defined here once, so a key cannot drift
between the code that writes it and the code that reads it back. The values are a stored
format: they sit on objects in users' clusters, so changing one orphans what is already there.
This module imports nothing, and every layer may import it.
"""

from __future__ import annotations

# --- the API ----------------------------------------------------------------------------------

GROUP = "identity.wio.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

WORKLOAD_IDENTITY = "WorkloadIdentity"
WORKLOAD_IDENTITIES = "workloadidentities"
SCOPED_CREDENTIAL = "ScopedCredential"
SCOPED_CREDENTIALS = "scopedcredentials"
IDENTITY_POLICY = "IdentityPolicy"
IDENTITY_POLICIES = "identitypolicies"

#: Where token introspection is served, relative to the JWT issuer URL; that URL is also the
#: audience a resource server's JWT-SVID must carry to call it.
INTROSPECTION_PATH = "/introspect"

#: Held on WorkloadIdentities and ScopedCredentials until their credential is revoked.
FINALIZER = f"{GROUP}/finalizer"

# --- labels -----------------------------------------------------------------------------------

MANAGED_BY = "app.kubernetes.io/managed-by"
#: The ``MANAGED_BY`` value on everything wio creates.
MANAGER = "wio"
#: The field manager of wio's writes: a managed-fields entry under another name is someone
#: else's edit, which is how a competing writer is told apart from wio's own echo.
FIELD_MANAGER = MANAGER
#: On a WorkloadIdentity's Secret: the name of the WorkloadIdentity that owns it.
IDENTITY_OWNER_LABEL = f"{GROUP}/workloadidentity"
#: On a ScopedCredential's Secret: the name of the ScopedCredential that owns it.
CREDENTIAL_OWNER_LABEL = f"{GROUP}/scopedcredential"

# --- annotations on WorkloadIdentities and ScopedCredentials ----------------------------------

#: Set by a user to ask for a rotation now; each new value is one request.
ROTATE_ANNOTATION = f"{GROUP}/rotate"
#: Set by an SRE to revoke without deleting: everything issued so far is listed as revoked
#: and a fresh credential issued at once; each new value (the reason) is one request.
REVOKE_ANNOTATION = f"{GROUP}/revoke"

# --- annotations on credential Secrets (facts about the credential, never key material) -------

# Both kinds of Secret.
SPIFFE_ID_ANNOTATION = f"{GROUP}/spiffe-id"
RENEW_AT_ANNOTATION = f"{GROUP}/renew-at"
SPEC_HASH_ANNOTATION = f"{GROUP}/spec-hash"

# A WorkloadIdentity's Secret.
SERIAL_ANNOTATION = f"{GROUP}/serial"
KEY_FINGERPRINT_ANNOTATION = f"{GROUP}/key-fingerprint"
NOT_AFTER_ANNOTATION = f"{GROUP}/not-after"
JWT_EXPIRES_AT_ANNOTATION = f"{GROUP}/jwt-expires-at"
JWT_RENEW_AT_ANNOTATION = f"{GROUP}/jwt-renew-at"
JWT_ID_ANNOTATION = f"{GROUP}/jwt-id"
#: The ``ROTATE_ANNOTATION`` value this credential answered.
FORCED_ROTATION_ANNOTATION = f"{GROUP}/forced-rotation"
ROTATIONS_ANNOTATION = f"{GROUP}/rotations"

# A ScopedCredential's Secret.
#: ``token`` or ``vault``: which part of the spec the credential came from.
SOURCE_ANNOTATION = f"{GROUP}/source"
JTI_ANNOTATION = f"{GROUP}/jti"
LEASE_ID_ANNOTATION = f"{GROUP}/lease-id"
EXPIRES_AT_ANNOTATION = f"{GROUP}/expires-at"
#: The comma-separated data keys a Vault secret was written with, all of which must stay.
DATA_KEYS_ANNOTATION = f"{GROUP}/data-keys"
VAULT_PATH_ANNOTATION = f"{GROUP}/vault-path"

# --- annotations on the trust bundle ConfigMap ------------------------------------------------

#: The hash of the published content, so an unchanged bundle is not written again.
CONTENT_HASH_ANNOTATION = f"{GROUP}/content-hash"

# --- annotations on the local signer's Secret: key rollover requests --------------------------

#: Publish a new CA (or JWT key) now and sign with it once verifiers have fetched it.
ROLLOVER_CA_ANNOTATION = f"{GROUP}/rollover-ca"
ROLLOVER_JWT_ANNOTATION = f"{GROUP}/rollover-jwt"
#: Emergency: a fresh CA (or JWT key) signs at once and the old one leaves the bundle.
DISTRUST_CA_ANNOTATION = f"{GROUP}/distrust-ca"
DISTRUST_JWT_ANNOTATION = f"{GROUP}/distrust-jwt"
#: A request is acknowledged under its own key plus this suffix, with the request's value.
ACK_SUFFIX = "-ack"

#: The Lease (in the operator's namespace) whose holder is the leading replica.
LEADER_LEASE = "wio-leader"
