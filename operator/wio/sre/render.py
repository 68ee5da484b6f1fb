# SPDX-License-Identifier: Apache-2.0
"""Output of the SRE commands: aligned tables and key/value blocks for people, JSON and YAML
for scripts. Pure: values in, text out, so every format is unit-tested without a cluster."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

FORMATS = ("table", "json", "yaml")


def relative(when: dt.datetime, now: dt.datetime) -> str:
    """``in 31m`` or ``5m ago``: the two largest units, as kubectl shows ages."""
    seconds = int((when - now).total_seconds())
    text = duration(abs(seconds))
    return f"in {text}" if seconds > 0 else f"{text} ago"


def duration(seconds: int) -> str:
    """Whole seconds as ``45s``, ``31m``, ``2h5m``, ``3d4h``."""
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    parts: list[str] = []
    for name, size in units:
        if seconds >= size or (name == "s" and not parts):
            parts.append(f"{seconds // size}{name}")
            seconds %= size
        if len(parts) == 2:
            break
    # "2h0m" says nothing "2h" does not.
    return "".join(p for i, p in enumerate(parts) if i == 0 or not p.startswith("0"))


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns left-aligned and separated by three spaces, as ``kubectl get`` prints them."""
    body = [tuple(headers), *(tuple(r) for r in rows)]
    widths = [max(len(r[i]) for r in body) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return "\n".join(lines)


def blocks(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """Titled blocks of aligned ``key: value`` lines; lists are joined, nested maps indented."""
    out: list[str] = []
    for title, fields in sections.items():
        if out:
            out.append("")
        out.append(f"{title}:")
        out.extend(_fields(fields, "  "))
    return "\n".join(out)


def _fields(fields: Mapping[str, Any], indent: str) -> list[str]:
    width = max((len(k) for k in fields), default=0) + 1
    lines = []
    for key, value in fields.items():
        label = f"{key}:".ljust(width)
        if isinstance(value, Mapping):
            lines.append(f"{indent}{key}:")
            lines.extend(_fields(value, indent + "  "))
        else:
            lines.append(f"{indent}{label} {_scalar(value)}")
    return lines


def _scalar(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(_scalar(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def structured(value: Any, fmt: str) -> str:
    """``value`` (plain dicts, lists and scalars) as JSON or YAML."""
    if fmt == "json":
        return json.dumps(value, indent=2)
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip("\n")
