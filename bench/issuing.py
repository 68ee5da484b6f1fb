# SPDX-License-Identifier: Apache-2.0
"""Issuance throughput of every signer backend, against its own ceiling, in one run.

    .venv/bin/python bench/issuing.py [--seconds 1.0] [--repeats 5] [--remote-seconds 3.0]

Measures, each for a bounded time:

- the raw ceiling: P-256 key generation, certificate build, ECDSA signature and PEM for
  key and certificate, with ``cryptography`` alone in a tight loop (no wio code);
- wio's local path doing the same job: ``generate_private_key``, ``SvidRequest``,
  ``LocalAuthority.issue`` (validated template, signature) and the PEM of the result;
- ``LocalJwtSigner``: JWT-SVID claims plus an ES256 signature;
- OpenBao PKI (``VaultPkiAuthority``: CSR, sign over loopback, validation of the result)
  and OpenBao Transit (``VaultTransitSigner``) with 8 requests in flight, against a
  dev server started here.

Raw and local runs alternate ``--repeats`` times and the medians are reported, with the
ratio local/raw (target: at least 0.8). The local and raw figures are per second of this
process's CPU time (they are single-threaded loops, so on an idle machine that equals
wall-clock time), which keeps the ratio honest when other work shares the two cores; the
OpenBao figures are wall-clock, since the server's own CPU is part of what they measure.
Results go to ``bench/results/issuing.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import hvac
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wio.backends.local import LocalAuthority, LocalJwtSigner
from wio.backends.protocols import Capability, SvidRequest
from wio.backends.vault import TokenAuth, VaultClient, VaultConnection
from wio.backends.vault_pki import PkiRole, VaultPkiAuthority
from wio.backends.vault_transit import TransitKey, VaultTransitSigner
from wio.devcluster import OpenBao, find_binaries
from wio.issuing.ca import CAConfig, LocalCA
from wio.issuing.jwt import JwtAlgorithm, JwtKeyRing, SigningKey, jwt_svid_claims, new_jti
from wio.issuing.keys import KeyType, generate_private_key
from wio.models.spiffe import SpiffeID, TrustDomain

RESULTS = Path(__file__).resolve().parent / "results" / "issuing.json"
TD = TrustDomain("example.org")
WORKLOAD = SpiffeID.for_workload(TD, "bench", "app")
TTL = dt.timedelta(hours=1)
IN_FLIGHT = 8


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------- raw ceiling


def raw_svid_rate(seconds: float) -> float:
    """SVIDs/s with cryptography alone: the profile wio issues, nothing else."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(WORKLOAD))])
    bc = x509.BasicConstraints(ca=False, path_length=None)
    ku = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    count = 0
    deadline = time.perf_counter() + seconds
    start = time.process_time()
    while time.perf_counter() < deadline:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(seconds=30))
            .not_valid_after(now + TTL)
            .add_extension(san, critical=True)
            .add_extension(bc, critical=True)
            .add_extension(ku, critical=True)
            .add_extension(eku, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(aki, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        cert.public_bytes(serialization.Encoding.PEM)
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        count += 1
    return count / (time.process_time() - start)


# ---------------------------------------------------------------- wio, local


async def local_svid_rate(authority: LocalAuthority, seconds: float) -> float:
    count = 0
    deadline = time.perf_counter() + seconds
    start = time.process_time()
    while time.perf_counter() < deadline:
        key = generate_private_key(KeyType.ECDSAP256)
        request = SvidRequest.for_key(key, WORKLOAD, ttl=TTL, now=_now())
        issued = await authority.issue(request)
        issued.cert_chain_pem()
        key.to_pkcs8_pem()
        count += 1
    return count / (time.process_time() - start)


async def local_jwt_rate(signer: LocalJwtSigner, seconds: float) -> float:
    count = 0
    deadline = time.perf_counter() + seconds
    start = time.process_time()
    while time.perf_counter() < deadline:
        claims = jwt_svid_claims(str(WORKLOAD), ["orders"], TTL, _now(), new_jti())
        await signer.sign(claims)
        count += 1
    return count / (time.process_time() - start)


# ---------------------------------------------------------------- wio, OpenBao


async def concurrent_rate(one: Callable[[], Awaitable[object]], seconds: float) -> float:
    """Operations/s with ``IN_FLIGHT`` workers each looping until the deadline."""
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await one()
            count += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return count / (time.perf_counter() - start)


def setup_openbao(bao: OpenBao) -> None:
    root = hvac.Client(url=bao.address, token=bao.root_token)
    root.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "87600h"})
    root.adapter.post(
        "/v1/pki/root/generate/internal",
        json={"common_name": "bench root", "ttl": "720h", "key_type": "ec"},
    )
    root.adapter.post(
        "/v1/pki/roles/svid",
        json={
            "allowed_uri_sans": "spiffe://example.org/ns/*",
            "require_cn": False,
            "use_csr_sans": False,
            "use_csr_common_name": False,
            "allow_any_name": False,
            "key_type": "any",
            "key_usage": ["DigitalSignature"],
            "max_ttl": "24h",
        },
    )
    root.sys.enable_secrets_engine("transit", path="transit")
    root.adapter.post("/v1/transit/keys/jwt", json={"type": "ecdsa-p256"})


async def remote_rates(bao: OpenBao, seconds: float) -> tuple[float, float]:
    connection = VaultConnection(bao.address, TokenAuth(bao.root_token), max_concurrency=IN_FLIGHT)
    async with VaultClient(connection) as client:
        authority = VaultPkiAuthority(client, PkiRole("svid", TD, mount="pki"))
        signer = VaultTransitSigner(client, TransitKey("jwt", mount="transit"))
        assert Capability.REQUIRES_CSR in authority.capabilities

        async def one_svid() -> None:
            key = generate_private_key(KeyType.ECDSAP256)
            request = SvidRequest.for_key(key, WORKLOAD, ttl=TTL, now=_now(), with_csr=True)
            issued = await authority.issue(request)
            issued.cert_chain_pem()
            key.to_pkcs8_pem()

        async def one_jwt() -> None:
            await signer.sign(jwt_svid_claims(str(WORKLOAD), ["orders"], TTL, _now(), new_jti()))

        await one_svid()  # warm caches (bundle, key versions) and connections
        await one_jwt()
        svid = await concurrent_rate(one_svid, seconds)
        jwt = await concurrent_rate(one_jwt, seconds)
        return svid, jwt


# ---------------------------------------------------------------- main


async def run(seconds: float, repeats: int, remote_seconds: float) -> dict[str, object]:
    authority = LocalAuthority(LocalCA.bootstrap(CAConfig(TD), _now()))
    jwt_signer = LocalJwtSigner(JwtKeyRing(SigningKey.generate(JwtAlgorithm.ES256)))
    # Warm up imports, caches and the allocator before anything is timed.
    raw_svid_rate(0.2)
    await local_svid_rate(authority, 0.2)
    await local_jwt_rate(jwt_signer, 0.2)

    raw, local, jwt = [], [], []
    for index in range(repeats):
        # Alternate, so drift (thermal, a noisy neighbour) hits both sides alike.
        raw.append(raw_svid_rate(seconds))
        local.append(await local_svid_rate(authority, seconds))
        jwt.append(await local_jwt_rate(jwt_signer, seconds))
        print(
            f"  round {index + 1}/{repeats}: raw {raw[-1]:,.0f}/s  local {local[-1]:,.0f}/s  "
            f"jwt {jwt[-1]:,.0f}/s",
            flush=True,
        )

    binaries = find_binaries(build=False)
    with OpenBao(binaries.bao) as bao:
        setup_openbao(bao)
        openbao_svid, transit_jwt = await remote_rates(bao, remote_seconds)

    raw_median = statistics.median(raw)
    local_median = statistics.median(local)
    return {
        "raw_svid_per_s": round(raw_median, 1),
        "local_svid_per_s": round(local_median, 1),
        "local_jwt_per_s": round(statistics.median(jwt), 1),
        "openbao_svid_per_s": round(openbao_svid, 1),
        "transit_jwt_per_s": round(transit_jwt, 1),
        "local_to_raw_ratio": round(local_median / raw_median, 3),
        "runs": {"raw_svid": raw, "local_svid": local, "local_jwt": jwt},
        "settings": {
            "seconds_per_run": seconds,
            "repeats": repeats,
            "remote_seconds": remote_seconds,
            "remote_in_flight": IN_FLIGHT,
        },
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "measured_at": _now().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per local/raw run")
    parser.add_argument("--repeats", type=int, default=5, help="local/raw runs (median)")
    parser.add_argument("--remote-seconds", type=float, default=3.0, help="per OpenBao run")
    args = parser.parse_args()
    print(
        f"issuing benchmark: {args.repeats} x {args.seconds}s local/raw, "
        f"{args.remote_seconds}s per OpenBao figure, {IN_FLIGHT} in flight"
    )
    result = asyncio.run(run(args.seconds, args.repeats, args.remote_seconds))
    print()
    print(f"raw cryptography ceiling   {result['raw_svid_per_s']:>10,.0f} SVIDs/s")
    print(f"wio LocalAuthority         {result['local_svid_per_s']:>10,.0f} SVIDs/s")
    print(f"wio LocalJwtSigner         {result['local_jwt_per_s']:>10,.0f} JWTs/s")
    print(f"OpenBao PKI (loopback)     {result['openbao_svid_per_s']:>10,.0f} SVIDs/s")
    print(f"OpenBao Transit (loopback) {result['transit_jwt_per_s']:>10,.0f} JWTs/s")
    ratio = result["local_to_raw_ratio"]
    print(f"local / raw                {ratio:>10.1%}  (target >= 80%)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
