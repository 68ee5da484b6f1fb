# SPDX-License-Identifier: Apache-2.0
"""The SRE command line without a cluster: references, health, order, output formats, what
inspect shows (and never shows), the annotation requests, and verify's decisions."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.certs import NOW, Authority, LeafSpec, make_ca, make_leaf, pem
from wio.cli import main
from wio.clock import FakeClock, rfc3339
from wio.errors import ValidationError
from wio.issuing.jwt import SigningKey, mint_access_token, mint_jwt_svid
from wio.issuing.keys import public_key_fingerprint
from wio.names import REVOKE_ANNOTATION, ROTATE_ANNOTATION, WORKLOAD_IDENTITY
from wio.sre import render
from wio.sre.commands import Console, verdict_text, verify_command
from wio.sre.inspect import describe_secret
from wio.sre.objects import Found, ObjectRef
from wio.sre.requests import revocation_request, rotation_request, submit
from wio.sre.status import (
    OVERDUE_GRACE,
    CredentialRow,
    health,
    rows_of,
    sort_rows,
    to_cells,
    to_record,
)
from wio.sre.verify import TrustMaterial, bundle_namespace, decide, read_presented

pytestmark = pytest.mark.unit

TD = "example.org"
APP_ID = f"spiffe://{TD}/ns/shop/sa/app"
ISSUER = "https://wio.example.org"


def ts(when: dt.datetime) -> str:
    return rfc3339(when)


# --- NAMESPACE/NAME -----------------------------------------------------------------------


def test_a_reference_names_a_namespace_and_an_object() -> None:
    assert ObjectRef.parse("shop/payments") == ObjectRef("shop", "payments")


@pytest.mark.parametrize(
    "text", ["payments", "shop/", "/payments", "Shop/payments", "shop/pay/ments", "shop/Pay"]
)
def test_a_bad_reference_is_a_usage_error_naming_the_argument(text: str) -> None:
    with pytest.raises(ValidationError, match="NAMESPACE/NAME"):
        ObjectRef.parse(text)


# --- status: rows, health, order ----------------------------------------------------------


def identity_body(
    name: str = "app",
    *,
    ready: str = "True",
    reason: str = "Issued",
    not_after: dt.datetime | None = NOW + dt.timedelta(minutes=30),
    renew_at: dt.datetime | None = NOW + dt.timedelta(minutes=10),
    jwt: bool = False,
    issuing: tuple[str, str, str] = ("False", "Idle", ""),
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "spiffeID": f"spiffe://{TD}/ns/shop/sa/{name}",
        "secretName": f"{name}-identity",
        "conditions": [
            {"type": "Ready", "status": ready, "reason": reason, "message": f"{reason} msg"},
            {"type": "Issuing", "status": issuing[0], "reason": issuing[1], "message": issuing[2]},
        ],
    }
    if not_after:
        status["notAfter"] = ts(not_after)
    if renew_at:
        status["renewalTime"] = ts(renew_at)
    if jwt:
        status["jwtExpiresAt"] = ts(NOW + dt.timedelta(minutes=20))
        status["jwtRenewalTime"] = ts(NOW + dt.timedelta(minutes=5))
    spec: dict[str, Any] = {"serviceAccountName": name}
    if jwt:
        spec["jwt"] = {"audiences": ["orders"]}
    return {"metadata": {"namespace": "shop", "name": name}, "spec": spec, "status": status}


def row(**changes: Any) -> CredentialRow:
    return rows_of("workloadidentities", identity_body(**changes))[0]


def test_an_identity_with_a_jwt_svid_is_two_credentials_and_a_vault_credential_one() -> None:
    rows = rows_of("workloadidentities", identity_body(jwt=True))
    assert [(r.kind, r.expires_at) for r in rows] == [
        ("x509-svid", NOW + dt.timedelta(minutes=30)),
        ("jwt-svid", NOW + dt.timedelta(minutes=20)),
    ]
    scoped = {
        "metadata": {"namespace": "shop", "name": "db"},
        "spec": {"identityRef": "app", "vault": {"path": "database/creds/ro"}},
        "status": {"expiresAt": ts(NOW), "renewalTime": ts(NOW)},
    }
    (vault,) = rows_of("scopedcredentials", scoped)
    assert (vault.kind, vault.ready, vault.expires_at) == ("vault", "Unknown", NOW)


def test_a_valid_ready_credential_is_ok() -> None:
    assert str(health(row(), NOW)) == "OK"


def test_an_expired_credential_says_expired_before_not_ready() -> None:
    found = health(row(ready="False", reason="Expired", not_after=NOW), NOW)
    assert (found.reason, found.message) == ("Expired", "expired 0s ago")


def test_a_credential_that_is_not_ready_names_the_ready_reason() -> None:
    found = health(row(ready="False", reason="PolicyDenied", not_after=None, renew_at=None), NOW)
    assert str(found) == "NotReady (PolicyDenied)"
    assert found.message == "PolicyDenied msg"


def test_a_renewal_late_past_the_grace_is_overdue_and_says_why() -> None:
    late = row(
        renew_at=NOW - OVERDUE_GRACE - dt.timedelta(seconds=1),
        issuing=("False", "Failed", "signer default unavailable"),
    )
    found = health(late, NOW)
    assert found.reason == "RenewalOverdue"
    assert "due 1m1s ago" in found.message
    assert "signer default unavailable" in found.message
    assert str(health(row(renew_at=NOW - OVERDUE_GRACE), NOW)) == "OK"


def test_rows_sort_by_expiry_soonest_first_and_unknown_last() -> None:
    rows = [
        row(name="late", not_after=NOW + dt.timedelta(hours=2)),
        row(name="never", not_after=None),
        row(name="soon", not_after=NOW + dt.timedelta(minutes=1)),
    ]
    assert [r.name for r in sort_rows(rows, "expiry")] == ["soon", "late", "never"]
    assert [r.name for r in sort_rows(rows, "name")] == ["late", "never", "soon"]
    by_renewal = [
        row(name="a", renew_at=NOW + dt.timedelta(hours=1)),
        row(name="b", renew_at=NOW),
    ]
    assert [r.name for r in sort_rows(by_renewal, "renewal")] == ["b", "a"]


def test_the_table_shows_absolute_and_relative_times_and_json_rfc3339() -> None:
    cells = to_cells(row(), NOW)
    assert cells[5] == f"{ts(NOW + dt.timedelta(minutes=30))} (in 30m)"
    assert cells[-1] == "OK"
    record = to_record(row(ready="False", reason="NotIssued"), NOW)
    assert record["health"] == "NotReady"
    assert record["readyReason"] == "NotIssued"
    assert record["expiresAt"] == ts(NOW + dt.timedelta(minutes=30))


# --- render ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (60, "1m"), (3725, "1h2m"), (7200, "2h"), (90000, "1d1h")],
)
def test_durations_show_the_two_largest_units(seconds: int, text: str) -> None:
    assert render.duration(seconds) == text


def test_relative_times_say_in_or_ago() -> None:
    assert render.relative(NOW + dt.timedelta(minutes=5), NOW) == "in 5m"
    assert render.relative(NOW - dt.timedelta(hours=3), NOW) == "3h ago"


def test_a_table_aligns_its_columns() -> None:
    text = render.table(("A", "LONG"), [("xxxx", "y"), ("z", "w")])
    assert text.splitlines() == ["A      LONG", "xxxx   y", "z      w"]


def test_structured_output_is_valid_json_and_yaml() -> None:
    value = [{"kind": "x509-svid", "expiresAt": None, "n": 1}]
    assert json.loads(render.structured(value, "json")) == value
    assert yaml.safe_load(render.structured(value, "yaml")) == value


# --- inspect ------------------------------------------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_inspect_shows_the_facts_of_a_secret_and_never_its_material() -> None:
    ca = make_ca(trust_domain=TD)
    leaf = make_leaf(ca, LeafSpec(uris=(APP_ID,), serial=0xABC123))
    key_pem = _pem_key(ec.generate_private_key(ec.SECP256R1()))
    jwt_key = SigningKey.generate()
    token = mint_jwt_svid(jwt_key, APP_ID, ["orders"], dt.timedelta(minutes=5), NOW).token
    data = {
        "tls.crt": _b64(pem(leaf)),
        "tls.key": _b64(key_pem),
        "ca.crt": _b64(pem(ca.cert)),
        "credential-bundle.private-key.pem": _b64(key_pem + pem(leaf)),
        "token": _b64(token.encode()),
    }
    secret = {
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": "app-identity",
            "annotations": {"identity.wio.dev/serial": "abc123", "other/thing": "x"},
        },
        "data": data,
    }
    found = Found(
        WORKLOAD_IDENTITY,
        "workloadidentities",
        ObjectRef("shop", "app"),
        identity_body() | {"status": {"serialNumber": "abc123", "spiffeID": APP_ID}},
    )
    sections = describe_secret(found, secret)
    x509_facts = sections["x509"]
    assert x509_facts["spiffeID"] == APP_ID
    assert x509_facts["serial"] == "abc123"
    assert x509_facts["matchesStatus"] is True
    assert x509_facts["keyType"] == "ECDSAP256"
    assert x509_facts["keyFingerprint"] == public_key_fingerprint(leaf.public_key())  # type: ignore[arg-type]
    assert x509_facts["chainLength"] == 1
    assert sections["jwtSvid"]["claims"]["sub"] == APP_ID
    assert sections["jwtSvid"]["header"]["kid"] == jwt_key.kid
    assert sections["secret"]["annotations"] == {"identity.wio.dev/serial": "abc123"}
    assert sections["secret"]["trustBundleRoots"] == 1
    for text in (
        render.blocks(sections),
        render.structured(sections, "json"),
        render.structured(sections, "yaml"),
    ):
        assert "PRIVATE KEY" not in text
        assert "BEGIN CERTIFICATE" not in text
        assert token not in text
        assert token.split(".")[2] not in text
        for value in data.values():
            assert value not in text


# --- renew / revoke -----------------------------------------------------------------------


class AckingKube:
    """Answers the merge patch, then acknowledges the request after ``after`` reads."""

    def __init__(self, body: dict[str, Any], ack_field: str | None, after: int = 1) -> None:
        self.body = body
        self.ack_field = ack_field
        self.after = after
        self.patches: list[tuple[str, Mapping[str, Any]]] = []
        self.reads = 0

    async def get(self, path: str) -> dict[str, Any]:
        self.reads += 1
        if self.ack_field and self.reads >= self.after:
            value = next(iter(self.patches[-1][1]["metadata"]["annotations"].values()))
            self.body["status"] = {
                **self.body["status"],
                self.ack_field: value,
                "serialNumber": "new",
            }
        return self.body

    async def list(
        self, path: str, *, label_selector: str | None = None, metadata_only: bool = False
    ) -> list[dict[str, Any]]:
        raise AssertionError("not used")

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.patches.append((path, body))
        return self.body


def _found(body: dict[str, Any]) -> Found:
    return Found(WORKLOAD_IDENTITY, "workloadidentities", ObjectRef("shop", "app"), body)


def test_each_rotation_request_is_a_new_value() -> None:
    first, second = rotation_request(NOW), rotation_request(NOW)
    assert first.annotation == ROTATE_ANNOTATION
    assert first.value != second.value
    assert first.value.startswith(ts(NOW))


def test_a_revocation_carries_the_reason_and_the_time_so_a_repeat_is_a_new_request() -> None:
    request = revocation_request(" key-leak ", NOW)
    assert (request.annotation, request.ack_field) == (REVOKE_ANNOTATION, "lastRevocation")
    assert request.value == f"key-leak @ {ts(NOW)}"
    assert revocation_request("key-leak", NOW + dt.timedelta(seconds=1)).value != request.value
    for bad in ("", "tab\there", "x" * 201):
        with pytest.raises(ValidationError, match="--reason"):
            revocation_request(bad, NOW)


@pytest.mark.asyncio
async def test_renew_sets_the_annotation_and_reports_the_new_serial_once_acknowledged() -> None:
    body = identity_body() | {"status": {"serialNumber": "old"}}
    kube = AckingKube(body, "lastForcedRotation", after=2)
    clock = FakeClock(NOW)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    request = rotation_request(NOW, "abc")
    outcome = await submit(kube, _found(dict(body)), request, clock=clock, wait=10, sleep=sleep)
    assert kube.patches == [
        (
            "/apis/identity.wio.dev/v1alpha1/namespaces/shop/workloadidentities/app",
            {"metadata": {"annotations": {ROTATE_ANNOTATION: request.value}}},
        )
    ]
    assert outcome.acknowledged
    record = outcome.to_record()
    assert (record["before"], record["after"]) == ({"x509": "old"}, {"x509": "new"})


@pytest.mark.asyncio
async def test_a_request_not_acknowledged_in_time_says_what_the_object_reports() -> None:
    body = identity_body(ready="False", reason="PolicyDenied") | {}
    kube = AckingKube(body, None)
    clock = FakeClock(NOW)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    outcome = await submit(
        kube, _found(body), revocation_request("leak", NOW), clock=clock, wait=3, sleep=sleep
    )
    assert not outcome.acknowledged
    assert outcome.waited
    assert "Ready=False PolicyDenied: PolicyDenied msg" in outcome.conditions()
    assert clock.now() >= NOW + dt.timedelta(seconds=3)


# --- verify ---------------------------------------------------------------------------------


def trust(
    ca: Authority,
    jwt_key: SigningKey,
    *,
    namespace: str = "shop",
    expires: Mapping[str, Mapping[str, int]] | None = None,
) -> TrustMaterial:
    listed: dict[str, Mapping[str, int]] = {"x509": {}, "jwt": {}, "token": {}}
    listed.update(expires or {})
    return TrustMaterial.from_configmap(
        namespace,
        {
            "ca.crt": pem(ca.cert).decode(),
            "jwks.json": json.dumps({"keys": [jwt_key.public_jwk()]}),
            "revocations.json": json.dumps(
                {"version": 2, "namespace": namespace, "expires": listed}
            ),
        },
    )


@pytest.fixture
def ca() -> Authority:
    return make_ca(trust_domain=TD)


@pytest.fixture
def jwt_key() -> SigningKey:
    return SigningKey.generate()


def _svid(ca: Authority, serial: int = 0x1234) -> bytes:
    return pem(make_leaf(ca, LeafSpec(uris=(APP_ID,), serial=serial)))


def test_a_current_svid_is_valid(ca: Authority, jwt_key: SigningKey) -> None:
    verdict = decide(read_presented(_svid(ca)), trust(ca, jwt_key), NOW)
    assert (verdict.valid, verdict.reason, verdict.form) == (True, "valid", "x509-svid")
    assert verdict.facts["serial"] == "1234"
    assert verdict.facts["spiffeID"] == APP_ID
    assert verdict_text(verdict, "shop").startswith("valid x509-svid: spiffeID " + APP_ID)


def test_a_revoked_svid_is_invalid_with_reason_revoked(ca: Authority, jwt_key: SigningKey) -> None:
    listed = {"x509": {"1234": int(NOW.timestamp()) + 3600}}
    verdict = decide(read_presented(_svid(ca)), trust(ca, jwt_key, expires=listed), NOW)
    assert (verdict.valid, verdict.reason) == (False, "revoked")
    assert verdict_text(verdict, "shop").startswith("invalid x509-svid (revoked):")


def test_another_namespaces_list_is_not_held_against_an_svid_and_that_is_said(
    ca: Authority, jwt_key: SigningKey
) -> None:
    listed = {"x509": {"1234": int(NOW.timestamp()) + 3600}}
    other = trust(ca, jwt_key, namespace="other", expires=listed)
    verdict = decide(read_presented(_svid(ca)), other, NOW)
    assert verdict.valid
    assert any("revocation not checked" in note for note in verdict.notes)


def test_an_svid_of_another_ca_or_out_of_date_is_invalid(
    ca: Authority, jwt_key: SigningKey
) -> None:
    foreign = make_ca("someone else", trust_domain=TD)
    assert decide(read_presented(_svid(foreign)), trust(ca, jwt_key), NOW).reason == (
        "untrusted-chain"
    )
    later = NOW + dt.timedelta(days=1)
    assert decide(read_presented(_svid(ca)), trust(ca, jwt_key), later).reason == "expired"


def test_a_private_key_in_the_input_is_ignored_and_mentioned(
    ca: Authority, jwt_key: SigningKey
) -> None:
    bundle = _pem_key(ec.generate_private_key(ec.SECP256R1())) + _svid(ca)
    presented = read_presented(bundle)
    assert b"PRIVATE KEY" not in presented.material
    verdict = decide(presented, trust(ca, jwt_key), NOW)
    assert verdict.valid
    assert "the input also held a private key; it was ignored" in verdict.notes


def test_a_jwt_svid_is_valid_until_its_jti_is_revoked(ca: Authority, jwt_key: SigningKey) -> None:
    minted = mint_jwt_svid(jwt_key, APP_ID, ["orders"], dt.timedelta(minutes=5), NOW)
    presented = read_presented(minted.token.encode())
    verdict = decide(presented, trust(ca, jwt_key), NOW, audience="orders")
    assert (verdict.valid, verdict.form, verdict.facts["jti"]) == (True, "jwt-svid", minted.jti)
    assert verdict.notes == ()
    listed = {"jwt": {minted.jti: int(minted.exp.timestamp())}}
    revoked = decide(presented, trust(ca, jwt_key, expires=listed), NOW, audience="orders")
    assert (revoked.valid, revoked.reason) == (False, "revoked")
    wrong = decide(presented, trust(ca, jwt_key), NOW, audience="billing")
    assert wrong.reason == "wrong-audience"


def test_without_an_audience_the_token_is_checked_for_signature_and_revocation_only(
    ca: Authority, jwt_key: SigningKey
) -> None:
    minted = mint_jwt_svid(jwt_key, APP_ID, ["orders"], dt.timedelta(minutes=5), NOW)
    verdict = decide(read_presented(minted.token.encode()), trust(ca, jwt_key), NOW)
    assert verdict.valid
    assert "audience not checked (pass --audience to check it)" in verdict.notes


def test_an_access_token_is_checked_against_the_token_revocations(
    ca: Authority, jwt_key: SigningKey
) -> None:
    minted = mint_access_token(
        jwt_key, ISSUER, APP_ID, "orders", ["orders:read"], APP_ID, dt.timedelta(minutes=5), NOW
    )
    presented = read_presented(minted.token.encode())
    valid = decide(presented, trust(ca, jwt_key), NOW, audience="orders", issuer=ISSUER)
    assert (valid.valid, valid.form) == (True, "access-token")
    listed = {"token": {minted.jti: int(minted.exp.timestamp())}}
    revoked = decide(presented, trust(ca, jwt_key, expires=listed), NOW, audience="orders")
    assert revoked.reason == "revoked"
    other_issuer = decide(presented, trust(ca, jwt_key), NOW, issuer="https://evil.example")
    assert other_issuer.reason == "wrong-issuer"


def test_a_token_signed_by_another_key_is_invalid(ca: Authority, jwt_key: SigningKey) -> None:
    minted = mint_jwt_svid(SigningKey.generate(), APP_ID, ["o"], dt.timedelta(minutes=5), NOW)
    verdict = decide(read_presented(minted.token.encode()), trust(ca, jwt_key), NOW)
    assert (verdict.valid, verdict.reason) == (False, "unknown-kid")


def test_input_that_is_neither_a_chain_nor_a_jwt_is_a_usage_error() -> None:
    with pytest.raises(ValidationError, match="neither a PEM certificate chain nor a compact JWT"):
        read_presented(b"hello world")


def test_a_credential_naming_no_namespace_needs_bundle_from(ca: Authority) -> None:
    leaf = pem(make_leaf(ca, LeafSpec(uris=(f"spiffe://{TD}/payments",))))
    presented = read_presented(leaf)
    with pytest.raises(ValidationError, match="--bundle-from"):
        bundle_namespace(presented, None)
    assert bundle_namespace(presented, "shop") == "shop"


def test_a_garbled_trust_configmap_names_the_key() -> None:
    with pytest.raises(ValidationError, match=r"has no jwks\.json"):
        TrustMaterial.from_configmap("shop", {"ca.crt": "x", "revocations.json": "{}"})


# --- the command line ---------------------------------------------------------------------


def _unreachable_kubeconfig(tmp_path: Path) -> str:
    """A kubeconfig whose server nobody answers at: a test fails if a request is sent."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "-A", "-n", "shop"],
        ["status", "--sort", "age"],
        ["revoke", "shop/app"],
        ["inspect", "shop/app", "--kind", "pod"],
        ["verify"],
        ["renew", "shop/app", "-o", "xml"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2


@pytest.mark.parametrize("command", ["inspect", "renew"])
def test_a_bad_reference_exits_2_naming_it_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code = main([command, "payments", "--kubeconfig", _unreachable_kubeconfig(tmp_path)])
    assert code == 2
    assert "expected NAMESPACE/NAME, got 'payments'" in capsys.readouterr().err


def test_verify_of_unreadable_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["verify", str(tmp_path / "missing.pem")])
    assert code == 2
    assert "cannot read" in capsys.readouterr().err
    console = Console(out=io.StringIO(), err=io.StringIO())
    code = verify_command(
        None,
        "-",
        bundle_from=None,
        configmap="wio-trust-bundle",
        audience=None,
        trust_domain=None,
        issuer=None,
        output="table",
        console=console,
        stdin=io.BytesIO(b"not a credential"),
    )
    assert code == 2
    assert isinstance(console.err, io.StringIO)
    assert "neither a PEM certificate chain nor a compact JWT" in console.err.getvalue()


def test_the_kubectl_plugin_names_itself_kubectl_wio(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["status", "--help"], prog="kubectl wio")
    assert "usage: kubectl wio status" in capsys.readouterr().out
