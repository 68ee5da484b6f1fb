# SPDX-License-Identifier: Apache-2.0
"""A leak scanner: does credential material show up where it must never be?

Needles come from the credentials themselves, never from what the code under test says it
writes. For each credential: the exact value, its base64 and base64url forms (padded and not),
and for PEM material the DER in base64url too. A partial dump counts as a leak as well, so every
base64 form is also cut into 32-character windows (24 bytes) at an 8-character stride: any run of
39 or more characters of a form contains a whole window, so one line of a PEM body, a truncated
Secret ``data`` field or half a JWT signature is caught. Windows are looked up in a set, after
line breaks are removed from the haystack (a chunk that spans two PEM lines is still one chunk)
and base64url is folded into the standard alphabet.

Some bytes of a credential are not secret: the PKCS#8 header every P-256 key shares, the issuer
name a leaf repeats from its CA, the public-key header of a curve, a signing key's public half
that a JWKS publishes. A window is dropped when the 24 bytes it encodes also occur in a reference
known to be public (the CA certificates and JWKS the caller passes, a freshly made key or public
key of the same type, PEM armour), so that publishing a CA certificate or a JWKS is not reported
as leaking a leaf or a signing key.

Shape detectors catch what nobody handed us: a PEM private key or certificate header, a JWT.
Findings name the haystack and the kind of needle, and show only a short prefix of what matched.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

PRIVATE_KEY = "private-key"
CERTIFICATE = "certificate"
TOKEN = "token"
OPAQUE = "secret"

WINDOW = 32  # base64 characters, i.e. 24 bytes
STRIDE = 8  # base64 characters, i.e. 6 bytes: windows stay aligned to whole base64 quanta
MIN_SEGMENT = 20  # JWT segments shorter than this are not needles on their own
PREVIEW = 10

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----[\r\n]+(.*?)[\r\n]+-----END \1-----", re.S)
_LINE_BREAKS = re.compile(r"(?:\r?\n[ \t]*|\\+[rn])+")
_BASE64_RUN = re.compile(rf"[A-Za-z0-9+/]{{{WINDOW},}}")
_TO_STANDARD = str.maketrans("-_", "+/")


@dataclass(frozen=True)
class Credential:
    """One secret value and where it came from (``source`` may be printed; ``value`` never)."""

    source: str
    kind: str  # PRIVATE_KEY | CERTIFICATE | TOKEN | OPAQUE
    value: bytes = field(repr=False)
    leaf: bool = True  # False for CA certificates, which public trust documents may carry


@dataclass(frozen=True)
class Shape:
    name: str
    pattern: re.Pattern[str]


PRIVATE_KEY_PEM = Shape("shape:private-key-pem", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"))
CERTIFICATE_PEM = Shape("shape:certificate-pem", re.compile(r"-----BEGIN CERTIFICATE-----"))
JWT_SHAPE = Shape(
    "shape:jwt", re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}")
)
SHAPES = (PRIVATE_KEY_PEM, CERTIFICATE_PEM, JWT_SHAPE)


@dataclass(frozen=True, order=True)
class Finding:
    haystack: str  # "log", "events", "status:ns/name", "annotations:ns/name", "metrics", ...
    kind: str  # "private-key:raw", "certificate:der-base64-chunk", "shape:jwt", ...
    source: str  # which credential, or "-" for a shape
    preview: str  # a short prefix of what matched, never the whole needle

    def __str__(self) -> str:
        return f"{self.haystack}: {self.kind} of {self.source} (starts {self.preview!r}…)"


def _preview(text: str) -> str:
    return text[:PREVIEW]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# -- where credentials come from ---------------------------------------------------------------


def pem_blocks(blob: bytes | str) -> list[tuple[str, bytes]]:
    """``(label, block)`` for every PEM block in ``blob``, also inside JSON string values."""
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    texts = [text]
    with contextlib.suppress(ValueError):
        texts.extend(_json_strings(json.loads(text)))
    found: dict[bytes, str] = {}
    for item in texts:
        for match in _PEM_BLOCK.finditer(item):
            found.setdefault(match.group(0).encode() + b"\n", match.group(1))
    return [(label, block) for block, label in found.items()]


def _json_strings(doc: object) -> Iterator[str]:
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for value in doc.values():
            yield from _json_strings(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _json_strings(value)


def _is_ca(cert_pem: bytes) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (ValueError, x509.ExtensionNotFound):
        return False  # unparseable or no constraints: treat it as a leaf, the stricter choice


def pem_credentials(source: str, blob: bytes | str) -> list[Credential]:
    """Private keys and certificates found in ``blob``; CA certificates are marked not leaf."""
    blocks = pem_blocks(blob)
    out = []
    for number, (label, block) in enumerate(blocks, 1):
        where = f"{source}[{number}]" if len(blocks) > 1 else source
        if label.endswith("PRIVATE KEY"):
            out.append(Credential(where, PRIVATE_KEY, block))
        elif label == "CERTIFICATE":
            out.append(Credential(where, CERTIFICATE, block, leaf=not _is_ca(block)))
    return out


# Keys of an identity Secret that hold public trust material, not credentials (README, "What
# lands in the Secret").
PUBLIC_SECRET_KEYS = ("ca.crt", "bundle.spiffe.json")
PUBLIC_SECRET_SUFFIXES = (".spiffe-trust-bundle.pem",)


def secret_credentials(source: str, data: Mapping[str, bytes]) -> list[Credential]:
    """The credentials of a Secret's decoded ``data``: keys, leaf and chain, token, the rest.

    Trust-bundle keys are skipped (public). Any other key that holds no PEM is treated as an
    opaque secret, so a field nobody thought of is a needle too.
    """
    out: list[Credential] = []
    # The canonical keys first, so a value repeated elsewhere is reported under their name.
    first = ("tls.key", "tls.crt", "token")
    for key, value in sorted(data.items(), key=lambda kv: (kv[0] not in first, kv[0])):
        if key in PUBLIC_SECRET_KEYS or key.endswith(PUBLIC_SECRET_SUFFIXES):
            continue
        where = f"{source} {key}"
        if key == "token":
            out.append(Credential(where, TOKEN, value.strip()))
            continue
        found = pem_credentials(where, value)
        out.extend(found or [Credential(where, OPAQUE, value)])
    return out


# -- what is known to be public ----------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _fresh_key(kind: str, size: int) -> object:
    """A throwaway key of the same type as a credential: its encodings are pure structure."""
    if kind == "ec":
        return ec.generate_private_key(_CURVES[size]())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ed448.Ed448PrivateKey.generate()


_CURVES: dict[int, type[ec.EllipticCurve]] = {
    256: ec.SECP256R1,
    384: ec.SECP384R1,
    521: ec.SECP521R1,
}


def _key_shape(key: object) -> tuple[str, int] | None:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return ("ec", key.curve.key_size) if key.curve.key_size in _CURVES else None
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "rsa", key.key_size
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519", 0
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "ed448", 0
    return None


def _structure_of(credential: Credential) -> list[bytes]:
    """Encodings of a same-typed throwaway: bytes any credential of this type shares."""
    refs = [b"-----BEGIN CERTIFICATE-----\n", b"\n-----END CERTIFICATE-----\n"]
    try:
        if credential.kind == TOKEN:
            refs.append(credential.value.split(b".")[0] + b".")
        elif credential.kind == PRIVATE_KEY:
            label = credential.value.split(b"-----")[1].decode("ascii")
            key = serialization.load_pem_private_key(credential.value, password=None)
            shape = _key_shape(key)
            if shape is None:
                return refs
            fresh = _fresh_key(*shape)
            # A PKCS#8 label names no algorithm ("PRIVATE KEY"); the traditional ones do.
            pkcs8 = label.split()[1:] == ["PRIVATE", "KEY"]
            fmt = (
                serialization.PrivateFormat.PKCS8
                if pkcs8
                else serialization.PrivateFormat.TraditionalOpenSSL
            )
            for encoding in (serialization.Encoding.DER, serialization.Encoding.PEM):
                refs.append(
                    fresh.private_bytes(encoding, fmt, serialization.NoEncryption())  # type: ignore[attr-defined]
                )
        elif credential.kind == CERTIFICATE:
            public = x509.load_pem_x509_certificate(credential.value).public_key()
            shape = _key_shape(public)
            if shape is not None:
                refs.append(
                    _fresh_key(*shape)
                    .public_key()  # type: ignore[attr-defined]
                    .public_bytes(
                        serialization.Encoding.DER,
                        serialization.PublicFormat.SubjectPublicKeyInfo,
                    )
                )
    except ValueError:
        pass  # not parseable: no structure to subtract, every window stays a needle
    return refs


def public_references(blobs: Iterable[bytes | str]) -> list[bytes]:
    """What ``blobs`` publish: PEM and DER of every certificate (CA bundles, ``x5c``) and the
    public numbers of every JWK (JWKS, SPIFFE bundles)."""
    refs: list[bytes] = []
    for blob in blobs:
        for _, block in pem_blocks(blob):
            refs.append(block)
            try:
                refs.append(
                    x509.load_pem_x509_certificate(block).public_bytes(serialization.Encoding.DER)
                )
            except ValueError:
                continue
        text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        for key in doc.get("keys", []) if isinstance(doc, dict) else []:
            if not isinstance(key, dict):
                continue
            refs += [base64.b64decode(der) for der in key.get("x5c", [])]
            # A published public key: its coordinates or modulus are inside the private key's
            # encoding too, and are no secret.
            refs += [_unb64url(key[m]) for m in ("x", "y", "n") if isinstance(key.get(m), str)]
    return refs


# -- needles -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Form:
    """One base64 form of a credential: ``text`` (standard alphabet) encodes ``raw``."""

    variant: str
    raw: bytes
    text: str
    # The public key inside a private key's encoding: windows that only cover it are still
    # needles (nobody dumps part of a key on purpose) but say so in their variant.
    public_half: bytes = b""


def _forms(credential: Credential) -> tuple[list[tuple[str, str]], list[_Form]]:
    """Exact needles ``(variant, text)`` and base64 forms to cut into windows."""
    value = credential.value
    exact: list[tuple[str, str]] = []
    forms: list[_Form] = []
    b64, b64url = _b64(value), _b64url(value)
    exact += [
        ("base64", b64),
        ("base64", b64.rstrip("=")),
        ("base64url", b64url),
        ("base64url", b64url.rstrip("=")),
    ]
    forms.append(_Form("base64-chunk", value, b64))
    if credential.kind in (PRIVATE_KEY, CERTIFICATE):
        exact.append(("raw", value.decode("ascii").strip()))
        body = "".join(_PEM_BLOCK.search(value.decode("ascii")).group(2).split())  # type: ignore[union-attr]
        der = base64.b64decode(body)
        exact += [
            ("der-base64", body),
            ("der-base64url", _b64url(der)),
            ("der-base64url", _b64url(der).rstrip("=")),
        ]
        forms.append(_Form("der-base64-chunk", der, body, _public_half(value)))
        # The secret numbers on their own, as a JWK's "d", "p", "q" would carry them.
        for number in _private_numbers(value) if credential.kind == PRIVATE_KEY else []:
            exact.append(("jwk-private", _b64url(number).rstrip("=")))
            forms.append(_Form("private-number-chunk", number, _b64(number)))
    elif credential.kind == TOKEN:
        token = value.decode("ascii")
        exact.append(("raw", token))
        # The header is shared by every token of one signer key and carries nothing secret.
        for segment in token.split(".")[1:]:
            if len(segment) > MIN_SEGMENT:
                exact.append(("segment", segment))
                forms.append(_Form("segment-chunk", _unb64url(segment), segment))
    else:
        raw = value.decode("utf-8", "replace").strip()
        exact.append(("raw", raw))
        if _BASE64_RUN.fullmatch(raw.translate(_TO_STANDARD)):
            forms.append(_Form("raw-chunk", b"", raw.translate(_TO_STANDARD)))
    return [(v, t) for v, t in exact if len(t) >= MIN_SEGMENT], forms


def _private_numbers(pem: bytes) -> list[bytes]:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return []
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        return [key.private_numbers().private_value.to_bytes(size, "big")]
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        return [_int_bytes(n) for n in (numbers.d, numbers.p, numbers.q)]
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return [key.private_bytes_raw()]
    return []


def _int_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def _public_half(pem: bytes) -> bytes:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return b""
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _windows(form: _Form, references: Sequence[bytes]) -> Iterator[tuple[str, str]]:
    """``(window, variant)`` for every window of ``form`` that encodes something not public."""
    text = form.text.rstrip("=").translate(_TO_STANDARD)  # haystacks are folded the same way
    for start in range(0, len(text) - WINDOW + 1, STRIDE):
        window = text[start : start + WINDOW]
        if not form.raw:
            yield window, form.variant
            continue
        covered = form.raw[start // 4 * 3 : start // 4 * 3 + WINDOW // 4 * 3]
        if any(covered in ref for ref in references):
            continue  # these bytes are public or pure structure
        if form.public_half and covered in form.public_half:
            yield window, f"{form.variant}(public-half)"
        else:
            yield window, form.variant


def _normalised(haystack: str) -> str:
    return _LINE_BREAKS.sub("", haystack).translate(_TO_STANDARD)


class LeakScanner:
    """Needles from ``credentials``; ``public`` CA material is never itself a finding."""

    def __init__(
        self,
        credentials: Iterable[Credential],
        *,
        public: Iterable[bytes | str] = (),
        shapes: Sequence[Shape] = SHAPES,
    ) -> None:
        unique: dict[bytes, Credential] = {}
        for credential in credentials:
            unique.setdefault(credential.value, credential)
        self.credentials = list(unique.values())
        self.shapes = tuple(shapes)
        self._public = list(public)
        public_refs = public_references(self._public)
        ca_refs = public_references(c.value for c in self.credentials if not c.leaf)
        self._exact: list[list[tuple[str, str]]] = []
        self._windowed: set[int] = set()
        self._windows: dict[str, list[tuple[int, str]]] = {}
        for index, credential in enumerate(self.credentials):
            exact, forms = _forms(credential)
            self._exact.append(exact)
            own = set(public_references([credential.value])) if not credential.leaf else set()
            refs = [r for r in public_refs + ca_refs if r not in own] + _structure_of(credential)
            for form in forms:
                for window, variant in _windows(form, refs):
                    self._windows.setdefault(window, []).append((index, variant))
                    self._windowed.add(index)

    @property
    def needle_count(self) -> int:
        return sum(len(e) for e in self._exact) + len(self._windows)

    def for_public_documents(self) -> LeakScanner:
        """A scanner for trust documents: CA certificates are allowed there, leaves are not."""
        return LeakScanner(
            (c for c in self.credentials if c.leaf),
            public=self._public,
            shapes=tuple(s for s in self.shapes if s is not CERTIFICATE_PEM),
        )

    def scan(self, haystacks: Mapping[str, str]) -> list[Finding]:
        findings: set[Finding] = set()
        for name, text in haystacks.items():
            findings.update(self._scan_one(name, text))
        return sorted(findings)

    def _scan_one(self, name: str, text: str) -> Iterator[Finding]:
        for shape in self.shapes:
            for match in shape.pattern.finditer(text):
                yield Finding(name, shape.name, "-", _preview(match.group(0)))
        chunks: dict[int, dict[str, str]] = {}
        for run in _BASE64_RUN.finditer(_normalised(text)):
            found = run.group(0)
            for start in range(len(found) - WINDOW + 1):
                for index, variant in self._windows.get(found[start : start + WINDOW], ()):
                    chunks.setdefault(index, {}).setdefault(variant, found[start:])
        for index, credential in enumerate(self.credentials):
            if index in self._windowed and index not in chunks:
                continue  # every exact needle of a windowed credential contains a window
            exact = [(v, t) for v, t in self._exact[index] if t in text]
            # An exact match says more than the chunks it contains; report those alone.
            for variant, needle in exact:
                yield Finding(
                    name, f"{credential.kind}:{variant}", credential.source, _preview(needle)
                )
            if not exact:
                for variant, matched in chunks.get(index, {}).items():
                    yield Finding(
                        name, f"{credential.kind}:{variant}", credential.source, _preview(matched)
                    )


def report(findings: Sequence[Finding], limit: int = 40) -> str:
    """A readable summary for an assertion message."""
    lines = [f"{len(findings)} leak finding(s):"]
    lines += [f"  {f}" for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"  … and {len(findings) - limit} more")
    return "\n".join(lines)
