# SPDX-License-Identifier: Apache-2.0
"""One conformance suite for every signer backend (ARCHITECTURE.md §8), against a real OpenBao.

``X509Authority``: the local CA, the test fake, and OpenBao PKI. ``JwtSigner``: the local
key ring, the test fake, and OpenBao Transit with ES256, EdDSA and PS256 keys. The same
assertions run against each; independent oracles judge the output:

- SVIDs: ``cryptography.x509.verification`` builds the path from the trust bundle, the
  SPIFFE X509-SVID rules are read off the extensions here, and wio's own ``verify_svid``
  must agree;
- JWTs: PyJWT with an explicit algorithm list and the key picked by ``kid`` from
  ``public_jwks()``, plus wio's ``JwtVerifier``.

Backend-specific behaviour (Transit's activation delay and retirement, PKI's CRL and
``sign-verbatim``) follows at the end.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import hvac
import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification

from tests.support.fakes import FakeAuthority, FakeJwtSigner
from wio.backends.local import LocalAuthority, LocalJwtSigner
from wio.backends.protocols import (
    Capability,
    JwtSigner,
    JwtType,
    SvidRequest,
    Unsupported,
    X509Authority,
)
from wio.backends.vault import TokenAuth, VaultClient, VaultConnection
from wio.backends.vault_pki import PkiRole, VaultPkiAuthority
from wio.backends.vault_transit import TransitKey, VaultTransitSigner
from wio.clock import FakeClock
from wio.devcluster import OpenBao
from wio.errors import ForeignCredential, SignerRejected, SignerUnavailable, ValidationError
from wio.issuing.ca import CAConfig, LocalCA
from wio.issuing.jwt import (
    JwtAlgorithm,
    JwtKeyRing,
    SigningKey,
    access_token_claims,
    jwt_svid_claims,
    new_jti,
)
from wio.issuing.keys import KeyType, PrivateKey, generate_private_key
from wio.issuing.verify_jwt import JwtVerifier, TokenProfile
from wio.issuing.verify_x509 import verify_svid
from wio.issuing.x509svid import Issued
from wio.models.spiffe import SpiffeID, TrustDomain

TD = TrustDomain("example.org")
WORKLOAD = SpiffeID.for_workload(TD, "payments", "api")
DNS = "api.payments.svc.cluster.local"
TOLERANCE = dt.timedelta(seconds=60)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ================================================================ X.509 harnesses


@dataclass
class X509Harness:
    """An authority plus what the suite needs to know about it to judge its output."""

    authority: X509Authority
    max_ttl: dt.timedelta  # a longer TTL is refused
    forbidden_id: SpiffeID  # an ID in our trust domain setup that this signer must refuse
    capped: X509Authority  # same signer kind, whose issuer expires before ``capped_ttl``
    capped_ttl: dt.timedelta
    revoked_upstream: Callable[[], Awaitable[set[int]]] | None = None


@dataclass(frozen=True)
class PkiMounts:
    mount: str
    capped_mount: str
    role: str = "svid"


def _pki_role(max_ttl: str) -> dict[str, Any]:
    return {
        "allowed_uri_sans": "spiffe://example.org/ns/*",
        "basic_constraints_valid_for_non_ca": True,
        "allowed_domains": "svc.cluster.local",
        "allow_subdomains": True,
        "allow_bare_domains": False,
        "allow_any_name": False,
        "allow_ip_sans": False,
        "enforce_hostnames": True,
        "require_cn": False,
        "use_csr_sans": False,
        "use_csr_common_name": False,
        "key_type": "any",
        "key_usage": ["DigitalSignature"],
        "ext_key_usage": ["ServerAuth", "ClientAuth"],
        "max_ttl": max_ttl,
        "not_before_duration": "30s",
    }


def _setup_pki(root: hvac.Client, mount: str, root_ttl: str, role_max_ttl: str) -> None:
    root.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "87600h"})
    root.adapter.post(
        f"/v1/{mount}/root/generate/internal",
        json={
            "common_name": f"wio conformance {mount}",
            "uri_sans": "spiffe://example.org",
            "ttl": root_ttl,
            "key_type": "ec",
            "key_bits": 256,
        },
    )
    # Leaves that would outlive the issuer are cut to its notAfter rather than refused:
    # an issuer-level setting in current Vault and OpenBao.
    root.adapter.post(f"/v1/{mount}/issuer/default", json={"leaf_not_after_behavior": "truncate"})
    root.adapter.post(f"/v1/{mount}/roles/svid", json=_pki_role(role_max_ttl))


@pytest.fixture(scope="session")
def vault_root(openbao: OpenBao) -> hvac.Client:
    return hvac.Client(url=openbao.address, token=openbao.root_token)


@pytest.fixture(scope="session")
def pki_mounts(vault_root: hvac.Client) -> PkiMounts:
    suffix = uuid.uuid4().hex[:8]
    mounts = PkiMounts(mount=f"pki-conf-{suffix}", capped_mount=f"pki-capped-{suffix}")
    _setup_pki(vault_root, mounts.mount, root_ttl="720h", role_max_ttl="24h")
    # A root that expires in 90 minutes, and a role that allows 24 h leaves truncated to it.
    _setup_pki(vault_root, mounts.capped_mount, root_ttl="90m", role_max_ttl="24h")
    return mounts


@pytest.fixture
def vault_client(openbao: OpenBao) -> Iterator[VaultClient]:
    client = VaultClient(VaultConnection(openbao.address, TokenAuth(openbao.root_token)))
    yield client
    client.close()


def _old_local_ca(remaining: dt.timedelta) -> LocalCA:
    """A local CA whose root expires ``remaining`` from now (and is not rotated)."""
    config = CAConfig(TD, lifetime=dt.timedelta(hours=6), max_leaf_ttl=dt.timedelta(hours=1))
    return LocalCA.bootstrap(config, _now() - config.lifetime + remaining)


async def _vault_revoked(root: hvac.Client, mount: str) -> set[int]:
    try:
        listing = root.adapter.list(f"/v1/{mount}/certs/revoked")
    except hvac.exceptions.InvalidPath:  # Vault answers an empty LIST with 404
        return set()
    keys = listing["data"]["keys"]
    return {int(serial.replace(":", ""), 16) for serial in keys}


@pytest.fixture(params=["local", "fake", "openbao-pki"])
def x509_backend(request: pytest.FixtureRequest) -> X509Harness:
    config = CAConfig(TD, max_leaf_ttl=dt.timedelta(days=1))
    foreign = SpiffeID.parse("spiffe://other.org/ns/payments/sa/api")
    capped_ttl = dt.timedelta(hours=1)
    if request.param == "local":
        return X509Harness(
            authority=LocalAuthority(LocalCA.bootstrap(config, _now())),
            max_ttl=config.max_leaf_ttl,
            forbidden_id=foreign,
            capped=LocalAuthority(_old_local_ca(dt.timedelta(minutes=30)), auto_rotate=False),
            capped_ttl=capped_ttl,
        )
    if request.param == "fake":
        fake = FakeAuthority(LocalCA.bootstrap(config, _now()))

        async def fake_revoked() -> set[int]:
            return {int(serial, 16) for serial in fake.revoked}

        return X509Harness(
            authority=fake,
            max_ttl=config.max_leaf_ttl,
            forbidden_id=foreign,
            capped=FakeAuthority(_old_local_ca(dt.timedelta(minutes=30))),
            capped_ttl=capped_ttl,
            revoked_upstream=fake_revoked,
        )
    mounts: PkiMounts = request.getfixturevalue("pki_mounts")
    client: VaultClient = request.getfixturevalue("vault_client")
    root: hvac.Client = request.getfixturevalue("vault_root")

    async def vault_revoked() -> set[int]:
        return await _vault_revoked(root, mounts.mount)

    return X509Harness(
        authority=VaultPkiAuthority(client, PkiRole(mounts.role, TD, mount=mounts.mount)),
        max_ttl=dt.timedelta(hours=24),
        # In our trust domain, but outside the role's allowed_uri_sans (spiffe://example.org/ns/*).
        forbidden_id=SpiffeID.parse("spiffe://example.org/admin/root"),
        capped=VaultPkiAuthority(client, PkiRole(mounts.role, TD, mount=mounts.capped_mount)),
        capped_ttl=dt.timedelta(hours=3),
        revoked_upstream=vault_revoked,
    )


def _request(
    authority: X509Authority,
    key: PrivateKey,
    *,
    spiffe_id: SpiffeID = WORKLOAD,
    ttl: dt.timedelta = dt.timedelta(hours=1),
    dns_names: tuple[str, ...] = (),
    now: dt.datetime | None = None,
) -> SvidRequest:
    return SvidRequest.for_key(
        key,
        spiffe_id,
        ttl=ttl,
        now=now or _now(),
        dns_names=dns_names,
        with_csr=Capability.REQUIRES_CSR in authority.capabilities,
    )


def assert_valid_svid(
    issued: Issued,
    key: PrivateKey,
    spiffe_id: SpiffeID,
    bundle: list[x509.Certificate],
    now: dt.datetime,
    dns_names: tuple[str, ...] = (),
) -> None:
    """The SPIFFE X509-SVID MUSTs, judged by cryptography's verifier and by reading
    the extensions ourselves; then wio's own verifier must agree."""
    leaf = issued.cert
    # A path to a bundle root, RFC 5280 / CABF rules (cryptography's own implementation).
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(bundle))
        .time(max(now, leaf.not_valid_before_utc))
        .build_client_verifier()
    )
    verified = verifier.verify(leaf, list(issued.chain))
    assert verified.chain[-1] in bundle
    assert all(c not in bundle for c in issued.chain), "tls.crt must not carry a root"
    # X509-SVID 2: exactly one URI SAN, the SPIFFE ID.
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [str(spiffe_id)]
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(dns_names)
    # X509-SVID 4.1: a leaf is not a CA.
    try:
        bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert bc.ca is False
    except x509.ExtensionNotFound:
        pass
    # X509-SVID 4.3: keyUsage critical, digitalSignature, never keyCertSign or cRLSign.
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert not ku.value.key_cert_sign
    assert not ku.value.crl_sign
    # X509-SVID 4.4: if EKU is present, serverAuth and/or clientAuth.
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {
        x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
        x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH,
    } & set(eku)
    # Signing certificates (X509-SVID 4.1/4.3): cA=true and keyCertSign.
    for ca in bundle:
        ca_bc = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert ca_bc.ca
        assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    # The certificate is for the workload's key, which wio generated and kept.
    assert leaf.public_key() == key.public_key
    # RFC 5280 4.1.2.2: positive serial, at most 20 octets.
    assert 0 < leaf.serial_number < 2**160
    ours = verify_svid(issued.cert_chain_pem(), bundle, TD, max(now, leaf.not_valid_before_utc))
    assert ours.spiffe_id == spiffe_id


# ================================================================ X.509 conformance


def test_authority_implements_the_protocol_and_declares_its_capabilities(
    x509_backend: X509Harness,
) -> None:
    authority = x509_backend.authority
    assert isinstance(authority, X509Authority)
    assert authority.name
    assert isinstance(authority.capabilities, frozenset)
    assert all(isinstance(c, Capability) for c in authority.capabilities)


@pytest.mark.asyncio
async def test_issued_svid_satisfies_the_spiffe_profile_by_independent_oracles(
    x509_backend: X509Harness,
) -> None:
    authority = x509_backend.authority
    key = generate_private_key(KeyType.ECDSAP256)
    request = _request(authority, key)
    issued = await authority.issue(request)
    assert_valid_svid(issued, key, WORKLOAD, await authority.trust_bundle(), request.now)


@pytest.mark.asyncio
async def test_dns_names_asked_for_are_in_the_svid(x509_backend: X509Harness) -> None:
    authority = x509_backend.authority
    key = generate_private_key(KeyType.ECDSAP256)
    request = _request(authority, key, dns_names=(DNS,))
    issued = await authority.issue(request)
    bundle = await authority.trust_bundle()
    assert_valid_svid(issued, key, WORKLOAD, bundle, request.now, dns_names=(DNS,))


@pytest.mark.asyncio
@pytest.mark.parametrize("key_type", [KeyType.ECDSAP384, KeyType.ED25519])
async def test_other_key_types_are_certified_for_their_own_key(
    x509_backend: X509Harness, key_type: KeyType
) -> None:
    authority = x509_backend.authority
    key = generate_private_key(key_type)
    request = _request(authority, key)
    issued = await authority.issue(request)
    assert_valid_svid(issued, key, WORKLOAD, await authority.trust_bundle(), request.now)


@pytest.mark.asyncio
async def test_every_issuance_certifies_the_new_key_with_a_new_serial(
    x509_backend: X509Harness,
) -> None:
    authority = x509_backend.authority
    keys = [generate_private_key(KeyType.ECDSAP256) for _ in range(3)]
    issued = [await authority.issue(_request(authority, k)) for k in keys]
    assert len({i.serial_number for i in issued}) == 3
    for key, svid in zip(keys, issued, strict=True):
        assert svid.cert.public_key() == key.public_key
    assert len({k.fingerprint for k in keys}) == 3


@pytest.mark.asyncio
async def test_lifetime_is_as_asked(x509_backend: X509Harness) -> None:
    authority = x509_backend.authority
    ttl = dt.timedelta(minutes=20)
    request = _request(authority, generate_private_key(KeyType.ECDSAP256), ttl=ttl)
    issued = await authority.issue(request)
    assert abs(issued.not_after - (request.now + ttl)) <= TOLERANCE
    # Backdated a little for clock skew, never by more than a minute, never in the future.
    assert request.now - TOLERANCE <= issued.not_before <= request.now


@pytest.mark.asyncio
async def test_lifetime_is_capped_at_the_issuers_not_after(x509_backend: X509Harness) -> None:
    capped = x509_backend.capped
    request = _request(capped, generate_private_key(KeyType.ECDSAP256), ttl=x509_backend.capped_ttl)
    issued = await capped.issue(request)
    bundle = await capped.trust_bundle()
    issuer = next(c for c in bundle if c.subject == issued.cert.issuer)
    assert issued.not_after <= issuer.not_valid_after_utc
    assert issued.not_after < request.now + request.ttl - TOLERANCE
    assert abs(issued.not_after - issuer.not_valid_after_utc) <= dt.timedelta(seconds=1)


@pytest.mark.asyncio
async def test_a_ttl_beyond_the_signers_maximum_is_rejected(x509_backend: X509Harness) -> None:
    authority = x509_backend.authority
    ttl = x509_backend.max_ttl + dt.timedelta(hours=1)
    with pytest.raises(SignerRejected):
        await authority.issue(_request(authority, generate_private_key(KeyType.ECDSAP256), ttl=ttl))


@pytest.mark.asyncio
async def test_an_identity_the_signer_does_not_allow_is_rejected(
    x509_backend: X509Harness,
) -> None:
    authority = x509_backend.authority
    key = generate_private_key(KeyType.ECDSAP256)
    with pytest.raises(SignerRejected) as caught:
        await authority.issue(_request(authority, key, spiffe_id=x509_backend.forbidden_id))
    # The refusal names the signer's endpoint or trust domain, never the request's body.
    assert "BEGIN" not in str(caught.value)


@pytest.mark.asyncio
async def test_revoke_reaches_upstream_where_declared_and_is_refused_where_not(
    x509_backend: X509Harness,
) -> None:
    authority = x509_backend.authority
    issued = await authority.issue(_request(authority, generate_private_key(KeyType.ECDSAP256)))
    namespace = WORKLOAD.segments[1]
    if Capability.REVOKE not in authority.capabilities:
        with pytest.raises(Unsupported):
            await authority.revoke(issued.serial_hex, namespace=namespace)
        return
    assert x509_backend.revoked_upstream is not None
    assert issued.serial_number not in await x509_backend.revoked_upstream()
    # A serial copied into another namespace's object revokes nothing upstream.
    with pytest.raises(ForeignCredential):
        await authority.revoke(issued.serial_hex, namespace="someone-else")
    assert issued.serial_number not in await x509_backend.revoked_upstream()
    await authority.revoke(issued.serial_hex, namespace=namespace)
    assert issued.serial_number in await x509_backend.revoked_upstream()


@pytest.mark.asyncio
async def test_a_csr_is_required_exactly_where_declared(x509_backend: X509Harness) -> None:
    authority = x509_backend.authority
    key = generate_private_key(KeyType.ECDSAP256)
    bare = SvidRequest.for_key(key, WORKLOAD, ttl=dt.timedelta(hours=1), now=_now())
    if Capability.REQUIRES_CSR in authority.capabilities:
        with pytest.raises(SignerRejected):
            await authority.issue(bare)
    else:
        assert (await authority.issue(bare)).cert.public_key() == key.public_key


@pytest.mark.asyncio
async def test_trust_bundle_holds_only_self_signed_ca_roots(x509_backend: X509Harness) -> None:
    bundle = await x509_backend.authority.trust_bundle()
    assert bundle
    for cert in bundle:
        assert cert.subject == cert.issuer
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert cert.not_valid_after_utc > _now()


@pytest.mark.asyncio
async def test_concurrent_issuance_gives_distinct_valid_svids(x509_backend: X509Harness) -> None:
    authority = x509_backend.authority
    keys = [generate_private_key(KeyType.ECDSAP256) for _ in range(12)]
    requests = [_request(authority, k) for k in keys]
    issued = await asyncio.gather(*(authority.issue(r) for r in requests))
    bundle = await authority.trust_bundle()
    assert len({i.serial_number for i in issued}) == len(keys)
    for key, svid, request in zip(keys, issued, requests, strict=True):
        assert_valid_svid(svid, key, WORKLOAD, bundle, request.now)


# ================================================================ JWT harnesses


@dataclass
class JwtHarness:
    signer: JwtSigner
    alg: str
    rotate: Callable[[], Awaitable[None]]


@pytest.fixture(scope="session")
def transit_mount(vault_root: hvac.Client) -> str:
    mount = f"transit-conf-{uuid.uuid4().hex[:8]}"
    vault_root.sys.enable_secrets_engine("transit", path=mount)
    return mount


def _new_transit_key(root: hvac.Client, mount: str, key_type: str) -> str:
    name = f"jwt-{key_type}-{uuid.uuid4().hex[:8]}"
    root.adapter.post(f"/v1/{mount}/keys/{name}", json={"type": key_type})
    return name


_TRANSIT = {
    "transit-es256": ("ecdsa-p256", JwtAlgorithm.ES256),
    "transit-eddsa": ("ed25519", JwtAlgorithm.EDDSA),
    "transit-ps256": ("rsa-2048", JwtAlgorithm.PS256),
}


@pytest.fixture(params=["local", "fake", *_TRANSIT])
def jwt_backend(request: pytest.FixtureRequest) -> JwtHarness:
    if request.param == "local":
        local = LocalJwtSigner(JwtKeyRing(SigningKey.generate(JwtAlgorithm.ES256)))

        async def rotate_local() -> None:
            await local.rotate(
                SigningKey.generate(JwtAlgorithm.ES256), _now(), dt.timedelta(hours=1)
            )

        return JwtHarness(local, "ES256", rotate_local)
    if request.param == "fake":
        fake = FakeJwtSigner(alg=JwtAlgorithm.EDDSA)

        async def rotate_fake() -> None:
            fake.rotate(_now())

        return JwtHarness(fake, "EdDSA", rotate_fake)
    key_type, alg = _TRANSIT[request.param]
    root: hvac.Client = request.getfixturevalue("vault_root")
    mount: str = request.getfixturevalue("transit_mount")
    client: VaultClient = request.getfixturevalue("vault_client")
    name = _new_transit_key(root, mount, key_type)
    # No activation delay and no cache here, so a rotation is visible at once; the
    # delay has its own test below.
    signer = VaultTransitSigner(
        client,
        TransitKey(
            name,
            mount=mount,
            algorithm=alg,
            activation_delay=dt.timedelta(0),
            cache_ttl=dt.timedelta(0),
        ),
    )

    async def rotate_transit() -> None:
        root.adapter.post(f"/v1/{mount}/keys/{name}/rotate")

    return JwtHarness(signer, alg.value, rotate_transit)


def _jwk_for(jwks: list[dict[str, Any]], kid: str) -> dict[str, Any]:
    matches = [k for k in jwks if k.get("kid") == kid]
    assert len(matches) == 1, f"kid {kid} published {len(matches)} times"
    return matches[0]


def _pyjwt_decode(token: str, jwks: list[dict[str, Any]], alg: str, audience: str) -> Any:
    kid = pyjwt.get_unverified_header(token)["kid"]
    key = pyjwt.PyJWK(_jwk_for(jwks, kid), algorithm=alg)
    return pyjwt.decode(token, key=key, algorithms=[alg], audience=audience)


def _rfc7638(jwk: dict[str, Any]) -> str:
    required = {
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
        "RSA": ("e", "kty", "n"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


# ================================================================ JWT conformance


def test_signer_implements_the_protocol(jwt_backend: JwtHarness) -> None:
    assert isinstance(jwt_backend.signer, JwtSigner)
    assert jwt_backend.signer.name


@pytest.mark.asyncio
async def test_jwt_svid_verifies_with_pyjwt_and_the_published_keys(jwt_backend: JwtHarness) -> None:
    now = _now()
    claims = jwt_svid_claims(str(WORKLOAD), ["orders"], dt.timedelta(minutes=5), now, new_jti())
    signed = await jwt_backend.signer.sign(claims)
    header = pyjwt.get_unverified_header(signed.token)
    assert header == {"alg": jwt_backend.alg, "kid": signed.kid, "typ": "JWT"}
    assert signed.alg.value == jwt_backend.alg
    jwks = await jwt_backend.signer.public_jwks()
    assert _pyjwt_decode(signed.token, jwks, jwt_backend.alg, "orders") == claims
    # And the verifier wio ships agrees.
    verifier = JwtVerifier(
        jwks, audience="orders", profile=TokenProfile.JWT_SVID, trust_domain=TD.name
    )
    assert verifier.verify(signed.token, now).subject == str(WORKLOAD)


@pytest.mark.asyncio
async def test_access_token_carries_at_jwt_and_verifies(jwt_backend: JwtHarness) -> None:
    now = _now()
    claims = access_token_claims(
        "https://wio.example.org",
        str(WORKLOAD),
        "orders-api",
        ["orders:read"],
        "payments",
        dt.timedelta(minutes=5),
        now,
        new_jti(),
    )
    signed = await jwt_backend.signer.sign(claims, typ=JwtType.ACCESS_TOKEN)
    assert pyjwt.get_unverified_header(signed.token)["typ"] == "at+jwt"
    jwks = await jwt_backend.signer.public_jwks()
    verifier = JwtVerifier(
        jwks,
        audience="orders-api",
        issuer="https://wio.example.org",
        profile=TokenProfile.ACCESS_TOKEN,
    )
    assert verifier.verify(signed.token, now).claims["scope"] == "orders:read"


@pytest.mark.asyncio
async def test_a_verifier_pinned_to_another_algorithm_refuses_the_token(
    jwt_backend: JwtHarness,
) -> None:
    claims = jwt_svid_claims(str(WORKLOAD), ["orders"], dt.timedelta(minutes=5), _now(), new_jti())
    signed = await jwt_backend.signer.sign(claims)
    jwk = _jwk_for(await jwt_backend.signer.public_jwks(), signed.kid)
    other = "RS256" if jwt_backend.alg != "RS256" else "ES256"
    with pytest.raises(pyjwt.InvalidAlgorithmError):
        pyjwt.decode(
            signed.token,
            key=pyjwt.PyJWK(jwk, algorithm=jwt_backend.alg),
            algorithms=[other],
            audience="orders",
        )


@pytest.mark.asyncio
async def test_published_keys_are_public_pinned_and_named_by_thumbprint(
    jwt_backend: JwtHarness,
) -> None:
    jwks = await jwt_backend.signer.public_jwks()
    assert jwks
    assert len({k["kid"] for k in jwks}) == len(jwks)
    for jwk in jwks:
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(jwk)
        assert jwk["use"] == "sig"
        assert jwk["alg"] == jwt_backend.alg
        assert jwk["kid"] == _rfc7638(jwk)


@pytest.mark.asyncio
async def test_rotation_publishes_a_new_kid_and_keeps_the_old_one(jwt_backend: JwtHarness) -> None:
    signer = jwt_backend.signer
    now = _now()
    before = await signer.sign(
        jwt_svid_claims(str(WORKLOAD), ["orders"], dt.timedelta(minutes=5), now, new_jti())
    )
    kids_before = {k["kid"] for k in await signer.public_jwks()}
    await jwt_backend.rotate()
    after = await signer.sign(
        jwt_svid_claims(str(WORKLOAD), ["orders"], dt.timedelta(minutes=5), now, new_jti())
    )
    jwks = await signer.public_jwks()
    kids_after = {k["kid"] for k in jwks}
    assert kids_before < kids_after, "the new key is published and nothing was dropped"
    assert after.kid != before.kid
    # A token signed before the rotation still verifies against the new JWKS.
    for signed in (before, after):
        assert _pyjwt_decode(signed.token, jwks, jwt_backend.alg, "orders")["sub"] == str(WORKLOAD)


@pytest.mark.asyncio
async def test_concurrent_signing_gives_valid_distinct_tokens(jwt_backend: JwtHarness) -> None:
    now = _now()
    claims = [
        jwt_svid_claims(str(WORKLOAD), ["orders"], dt.timedelta(minutes=5), now, new_jti())
        for _ in range(16)
    ]
    signed = await asyncio.gather(*(jwt_backend.signer.sign(c) for c in claims))
    jwks = await jwt_backend.signer.public_jwks()
    assert len({s.token for s in signed}) == 16
    for token, claim in zip(signed, claims, strict=True):
        assert _pyjwt_decode(token.token, jwks, jwt_backend.alg, "orders") == claim


@pytest.mark.asyncio
async def test_oversized_claims_are_refused_before_signing(jwt_backend: JwtHarness) -> None:
    claims = jwt_svid_claims(str(WORKLOAD), ["orders"], dt.timedelta(minutes=5), _now(), new_jti())
    claims["padding"] = "x" * 20_000
    with pytest.raises(ValidationError):
        await jwt_backend.signer.sign(claims)


# ================================================================ Transit specifics


@pytest.mark.asyncio
async def test_transit_signs_with_a_new_version_only_after_the_activation_delay(
    vault_root: hvac.Client, transit_mount: str, vault_client: VaultClient
) -> None:
    name = _new_transit_key(vault_root, transit_mount, "ecdsa-p256")
    clock = FakeClock(_now())
    key = TransitKey(
        name,
        mount=transit_mount,
        activation_delay=dt.timedelta(minutes=5),
        cache_ttl=dt.timedelta(0),
    )
    signer = VaultTransitSigner(vault_client, key, clock=clock)
    claims = jwt_svid_claims(str(WORKLOAD), ["orders"], dt.timedelta(minutes=5), _now(), new_jti())
    first = await signer.sign(claims)  # a brand-new key signs at once: nothing else exists
    vault_root.adapter.post(f"/v1/{transit_mount}/keys/{name}/rotate")
    jwks = await signer.public_jwks()
    assert len(jwks) == 2, "the new version is published at once"
    assert (await signer.sign(claims)).kid == first.kid, "but does not sign yet"
    clock.advance(6 * 60)
    second = await signer.sign(claims)
    assert second.kid != first.kid
    assert second.kid in {k["kid"] for k in jwks}


@pytest.mark.asyncio
async def test_transit_stops_publishing_versions_below_min_decryption_version(
    vault_root: hvac.Client, transit_mount: str, vault_client: VaultClient
) -> None:
    name = _new_transit_key(vault_root, transit_mount, "ed25519")
    key = TransitKey(
        name, mount=transit_mount, activation_delay=dt.timedelta(0), cache_ttl=dt.timedelta(0)
    )
    signer = VaultTransitSigner(vault_client, key)
    old = await signer.sign(
        jwt_svid_claims(str(WORKLOAD), ["orders"], dt.timedelta(minutes=5), _now(), new_jti())
    )
    vault_root.adapter.post(f"/v1/{transit_mount}/keys/{name}/rotate")
    vault_root.adapter.post(
        f"/v1/{transit_mount}/keys/{name}/config", json={"min_decryption_version": 2}
    )
    kids = {k["kid"] for k in await signer.public_jwks()}
    assert old.kid not in kids
    assert len(kids) == 1


@pytest.mark.asyncio
async def test_transit_rsa_defaults_to_rs256(
    vault_root: hvac.Client, transit_mount: str, vault_client: VaultClient
) -> None:
    name = _new_transit_key(vault_root, transit_mount, "rsa-2048")
    signer = VaultTransitSigner(vault_client, TransitKey(name, mount=transit_mount))
    claims = jwt_svid_claims(str(WORKLOAD), ["orders"], dt.timedelta(minutes=5), _now(), new_jti())
    signed = await signer.sign(claims)
    assert signed.alg is JwtAlgorithm.RS256
    assert _pyjwt_decode(signed.token, await signer.public_jwks(), "RS256", "orders") == claims


# ================================================================ PKI specifics


@pytest.mark.asyncio
async def test_pki_revocation_is_on_the_published_crl(
    vault_root: hvac.Client, pki_mounts: PkiMounts, vault_client: VaultClient
) -> None:
    authority = VaultPkiAuthority(
        vault_client, PkiRole(pki_mounts.role, TD, mount=pki_mounts.mount)
    )
    issued = await authority.issue(_request(authority, generate_private_key(KeyType.ECDSAP256)))
    await authority.revoke(issued.serial_hex, namespace=WORKLOAD.segments[1])
    response = vault_root.adapter.get(f"/v1/{pki_mounts.mount}/crl")
    crl = x509.load_der_x509_crl(response.content)
    assert crl.get_revoked_certificate_by_serial_number(issued.serial_number) is not None
    issuer = next(c for c in await authority.trust_bundle() if c.subject == issued.cert.issuer)
    assert crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_pki_role_max_ttl_shortening_the_lifetime_is_caught(
    vault_root: hvac.Client, pki_mounts: PkiMounts, vault_client: VaultClient
) -> None:
    # Vault caps a TTL above the role's max_ttl with only a warning; wio must notice.
    vault_root.adapter.post(f"/v1/{pki_mounts.mount}/roles/short", json=_pki_role("10m"))
    authority = VaultPkiAuthority(vault_client, PkiRole("short", TD, mount=pki_mounts.mount))
    request = _request(
        authority, generate_private_key(KeyType.ECDSAP256), ttl=dt.timedelta(hours=1)
    )
    with pytest.raises(SignerRejected, match="max_ttl"):
        await authority.issue(request)


@pytest.mark.asyncio
async def test_pki_sign_verbatim_takes_the_identity_from_the_csr(
    vault_root: hvac.Client, pki_mounts: PkiMounts, vault_client: VaultClient
) -> None:
    role = _pki_role("24h")
    vault_root.adapter.post(f"/v1/{pki_mounts.mount}/roles/verbatim", json=role)
    authority = VaultPkiAuthority(
        vault_client, PkiRole("verbatim", TD, mount=pki_mounts.mount, verbatim=True)
    )
    key = generate_private_key(KeyType.ECDSAP256)
    request = _request(authority, key, dns_names=(DNS,))
    issued = await authority.issue(request)
    bundle = await authority.trust_bundle()
    assert_valid_svid(issued, key, WORKLOAD, bundle, request.now, dns_names=(DNS,))


@pytest.mark.asyncio
async def test_pki_bundle_publishes_a_root_rotated_in_vault_after_the_cache_expires(
    vault_root: hvac.Client, vault_client: VaultClient
) -> None:
    mount = f"pki-rot-{uuid.uuid4().hex[:8]}"
    _setup_pki(vault_root, mount, root_ttl="720h", role_max_ttl="24h")
    clock = FakeClock(_now())
    role = PkiRole("svid", TD, mount=mount, bundle_cache_ttl=dt.timedelta(minutes=1))
    authority = VaultPkiAuthority(vault_client, role, clock=clock)
    assert len(await authority.trust_bundle()) == 1
    # A second root, not yet the default issuer: published ahead of signing anything.
    vault_root.adapter.post(
        f"/v1/{mount}/root/rotate/internal", json={"common_name": "next root", "key_type": "ec"}
    )
    assert len(await authority.trust_bundle()) == 1, "cached for a minute"
    clock.advance(61)
    bundle = await authority.trust_bundle()
    assert len(bundle) == 2
    assert len({c.public_bytes(serialization.Encoding.DER) for c in bundle}) == 2


# ================================================================ local specifics


@pytest.mark.asyncio
async def test_local_authority_rotates_its_ca_on_schedule_and_persists_before_use() -> None:
    start = _now()
    config = CAConfig(TD, lifetime=dt.timedelta(hours=6), max_leaf_ttl=dt.timedelta(hours=1))
    saved: list[bytes] = []

    async def save(state: bytes) -> None:
        saved.append(state)

    authority = LocalAuthority(LocalCA.bootstrap(config, start), on_change=save)
    first_root = (await authority.trust_bundle())[0]

    def request_at(offset: dt.timedelta) -> SvidRequest:
        key = generate_private_key(KeyType.ECDSAP256)
        return SvidRequest.for_key(key, WORKLOAD, ttl=dt.timedelta(minutes=30), now=start + offset)

    await authority.issue(request_at(dt.timedelta(hours=1)))
    assert saved == [], "nothing is due in the first half of the CA's life"

    # Past half-life: a successor is prepared and published, but the old root still signs.
    issued = await authority.issue(request_at(dt.timedelta(hours=3, minutes=1)))
    assert len(saved) == 1
    assert LocalCA.load(saved[-1], config).state.prepared is not None
    bundle = await authority.trust_bundle()
    assert len(bundle) == 2
    assert issued.cert.issuer == first_root.subject

    # Past five sixths: the successor signs, the old root stays published.
    issued = await authority.issue(request_at(dt.timedelta(hours=5, minutes=1)))
    assert len(saved) == 2
    assert issued.cert.issuer == bundle[1].subject
    assert first_root in await authority.trust_bundle()


@pytest.mark.asyncio
async def test_local_authority_keeps_its_ca_when_persisting_a_rotation_fails() -> None:
    start = _now()
    config = CAConfig(TD, lifetime=dt.timedelta(hours=6), max_leaf_ttl=dt.timedelta(hours=1))

    async def broken(state: bytes) -> None:
        raise SignerUnavailable("state store is down")

    ca = LocalCA.bootstrap(config, start)
    authority = LocalAuthority(ca, on_change=broken)
    key = generate_private_key(KeyType.ECDSAP256)
    later = start + dt.timedelta(hours=3, minutes=1)
    with pytest.raises(SignerUnavailable):
        await authority.issue(
            SvidRequest.for_key(key, WORKLOAD, ttl=dt.timedelta(minutes=30), now=later)
        )
    assert authority.ca is ca
    assert authority.state_bytes() == ca.dump()


@pytest.mark.asyncio
async def test_local_jwt_signer_publishes_a_staged_key_before_signing_with_it() -> None:
    rings: list[JwtKeyRing] = []

    async def save(ring: JwtKeyRing) -> None:
        rings.append(ring)

    first = SigningKey.generate(JwtAlgorithm.ES256)
    signer = LocalJwtSigner(JwtKeyRing(first), on_change=save)
    following = SigningKey.generate(JwtAlgorithm.ES256)
    await signer.stage(following)
    claims = jwt_svid_claims(str(WORKLOAD), ["orders"], dt.timedelta(minutes=5), _now(), new_jti())
    assert {k["kid"] for k in await signer.public_jwks()} == {first.kid, following.kid}
    assert (await signer.sign(claims)).kid == first.kid
    now = _now()
    await signer.rotate(following, now, dt.timedelta(minutes=10))
    assert (await signer.sign(claims)).kid == following.kid
    await signer.prune(now + dt.timedelta(minutes=11))
    assert {k["kid"] for k in await signer.public_jwks()} == {following.kid}
    assert len(rings) == 3
