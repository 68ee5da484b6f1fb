# SPDX-License-Identifier: Apache-2.0
"""The dynamic-secrets backend: reads only under the admin's mounts, insists on a lease,
turns Vault's data into Secret data, and renews and revokes by lease ID. The Vault client is a
fake that answers like OpenBao does; the real server is exercised in the integration tests."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from wio.backends.vault_dynamic import VaultDynamicSecrets
from wio.errors import SignerRejected, SignerUnavailable

pytestmark = pytest.mark.unit

LEASE = "database/creds/orders-ro/3ZaQ1"


class FakeAdapter:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, str, Any]] = []

    def get(self, path: str) -> Any:
        self.requests.append(("GET", path, None))
        return self.answers[path]

    def put(self, path: str, json: Any) -> Any:
        self.requests.append(("PUT", path, json))
        return self.answers.get(path)


class FakeVaultClient:
    """Runs the backend's function against a fake hvac client, as VaultClient.call would."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.adapter = FakeAdapter(answers)

    async def call(self, operation: str, target: str, fn: Any) -> Any:
        return fn(self)


def _read(answer: Any, path: str = "database/creds/orders-ro") -> Any:
    client = FakeVaultClient({f"/v1/{path}": answer})
    backend = VaultDynamicSecrets(client, ("database",))  # type: ignore[arg-type]
    return asyncio.run(backend.read(path)), client


def test_a_read_yields_secret_data_and_its_lease() -> None:
    answer = {
        "lease_id": LEASE,
        "lease_duration": 3600,
        "renewable": True,
        "data": {"username": "v-orders-1", "password": "pw", "port": 5432},
    }
    secret, client = _read(answer)
    assert secret.data == {"username": b"v-orders-1", "password": b"pw", "port": b"5432"}
    assert secret.lease_id == LEASE
    assert secret.lease_duration == dt.timedelta(hours=1)
    assert secret.renewable is True
    assert "pw" not in repr(secret)
    assert client.adapter.requests == [("GET", "/v1/database/creds/orders-ro", None)]


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        ({"lease_id": "", "lease_duration": 0, "data": {"k": "v"}}, SignerRejected, "no lease"),
        ({"lease_id": LEASE, "lease_duration": 0, "data": {"k": "v"}}, SignerRejected, "duration"),
        ({"lease_id": LEASE, "lease_duration": 60, "data": {}}, SignerRejected, "no data"),
        (
            {"lease_id": LEASE, "lease_duration": 60, "data": {"bad key!": "v"}},
            SignerRejected,
            "Secret key",
        ),
        (
            {"lease_id": "x\ny", "lease_duration": 60, "data": {"k": "v"}},
            SignerUnavailable,
            "lease ID",
        ),
        ("not json", SignerUnavailable, "malformed"),
    ],
)
def test_a_read_that_is_not_a_usable_dynamic_secret_is_refused(
    answer: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        _read(answer)


@pytest.mark.parametrize(
    "path", ["kv/data/app", "databases/creds/x", "database", "sys/leases/lookup"]
)
def test_paths_outside_the_mounts_are_refused_before_vault_is_asked(path: str) -> None:
    client = FakeVaultClient({})
    backend = VaultDynamicSecrets(client, ("database",))  # type: ignore[arg-type]
    with pytest.raises(SignerRejected, match="outside the configured mounts"):
        asyncio.run(backend.read(path))
    assert client.adapter.requests == []


def test_renewal_and_revocation_go_to_the_lease_endpoints() -> None:
    client = FakeVaultClient(
        {"/v1/sys/leases/renew": {"lease_id": LEASE, "lease_duration": 40, "renewable": True}}
    )
    backend = VaultDynamicSecrets(client, ("database",))  # type: ignore[arg-type]
    renewal = asyncio.run(backend.renew(LEASE, dt.timedelta(minutes=1)))
    assert renewal.lease_duration == dt.timedelta(seconds=40)
    assert renewal.renewable is True
    asyncio.run(backend.revoke(LEASE))
    assert client.adapter.requests == [
        ("PUT", "/v1/sys/leases/renew", {"lease_id": LEASE, "increment": 60}),
        ("PUT", "/v1/sys/leases/revoke", {"lease_id": LEASE}),
    ]
    with pytest.raises(SignerRejected, match="lease ID"):
        asyncio.run(backend.revoke(""))
