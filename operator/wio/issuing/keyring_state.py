# SPDX-License-Identifier: Apache-2.0
"""A JWT key ring as bytes and back, so the local signer survives restarts.

The document holds private keys: the Kubernetes layer stores it in a Secret in the operator's
namespace, never anywhere else. Errors name the field and never echo key material.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from wio.errors import ValidationError
from wio.issuing.jwt import JwtAlgorithm, JwtKeyRing, RetiredKey, SigningKey
from wio.issuing.keys import PrivateKey

FORMAT = "wio.jwt-keyring/v1"


def _key_doc(key: SigningKey) -> dict[str, str]:
    return {"alg": key.alg.value, "key": key.private_key.to_pkcs8_pem().decode("ascii")}


def _load_key(doc: Any, where: str) -> SigningKey:
    if not isinstance(doc, dict) or not isinstance(doc.get("key"), str):
        raise ValidationError(where, "must be an object with a PEM key")
    alg = JwtAlgorithm.parse(str(doc.get("alg", "")), field=f"{where}.alg")
    return SigningKey(PrivateKey.from_pem(doc["key"].encode("ascii")), alg)


def dump_keyring(ring: JwtKeyRing) -> bytes:
    doc = {
        "format": FORMAT,
        "active": _key_doc(ring.active),
        "staged": _key_doc(ring.staged) if ring.staged else None,
        "stagedActivateAt": (
            ring.activate_staged_at.isoformat() if ring.activate_staged_at else None
        ),
        "retired": [
            {**_key_doc(r.key), "publishUntil": r.publish_until.isoformat()} for r in ring.retired
        ],
    }
    return json.dumps(doc, sort_keys=True).encode()


def load_keyring(data: bytes) -> JwtKeyRing:
    try:
        doc = json.loads(data)
    except ValueError as err:
        raise ValidationError("jwtKeyRing", "not valid JSON") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValidationError("jwtKeyRing.format", f"must be {FORMAT}")
    retired = []
    for i, item in enumerate(doc.get("retired") or []):
        where = f"jwtKeyRing.retired[{i}]"
        if not isinstance(item, dict):
            raise ValidationError(where, "must be an object with a PEM key")
        until = _load_time(item.get("publishUntil"), f"{where}.publishUntil")
        retired.append(RetiredKey(_load_key(item, where), until))
    staged = doc.get("staged")
    activate = doc.get("stagedActivateAt")
    return JwtKeyRing(
        _load_key(doc.get("active"), "jwtKeyRing.active"),
        tuple(retired),
        _load_key(staged, "jwtKeyRing.staged") if staged else None,
        _load_time(activate, "jwtKeyRing.stagedActivateAt") if activate else None,
    )


def _load_time(value: object, where: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError as err:
        raise ValidationError(where, "must be an ISO 8601 time") from err
    if when.utcoffset() is None:
        raise ValidationError(where, "must carry a UTC offset")
    return when
