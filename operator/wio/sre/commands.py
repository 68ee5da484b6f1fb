# SPDX-License-Identifier: Apache-2.0
"""The SRE commands as the CLI runs them: kubeconfig in, text out, an exit code back.

Each command reads and writes through one ``KubeClient`` made from the SRE's kubeconfig, calls
the pure parts of ``wio.sre`` and prints with ``wio.sre.render``. Exit codes: 0 done (or,
for ``verify``, valid), 1 failed (``verify``: invalid; ``renew``/``revoke``: not acknowledged
in time; a refused or failed API request), 2 a usage or configuration error (a bad
``NAMESPACE/NAME``, an object that does not exist, no kubeconfig; for ``verify`` anything
that prevents a verdict). Messages go to stderr and name what is wrong; nothing printed
carries key material, a certificate body or a token.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from wio.clock import Clock, SystemClock
from wio.errors import ApiUnavailable, ConfigError, ValidationError, WioError
from wio.k8s.access import ClusterAccess, discover
from wio.k8s.client import KubeClient
from wio.sre import render
from wio.sre.inspect import inspect
from wio.sre.objects import Kube, ObjectRef, check_namespace, find
from wio.sre.requests import Outcome, Request, current_ids, live_ids, submit
from wio.sre.status import TABLE_HEADERS, collect, sort_rows, to_cells, to_record
from wio.sre.verify import Verdict, bundle_namespace, decide, fetch_trust, read_presented

OK, FAILED, USAGE = 0, 1, 2


@dataclass(frozen=True)
class Console:
    """Where a command prints, and the clock it reads: injected so tests capture both."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    clock: Clock = field(default_factory=SystemClock)

    def print(self, text: str) -> None:
        print(text, file=self.out)

    def fail(self, text: str, code: int) -> int:
        print(f"wio: {text}", file=self.err)
        return code


Action = Callable[[Kube, ClusterAccess], Awaitable[int]]


def run(kubeconfig: str | None, action: Action, console: Console, *, failure: int = FAILED) -> int:
    """Run ``action`` with a client for ``kubeconfig``; wio's errors become a message and an
    exit code (``failure`` for errors of the API or the cluster's content)."""
    try:
        access = discover(kubeconfig)
    except ConfigError as err:
        return console.fail(str(err), USAGE)

    async def session() -> int:
        # Few attempts: a person is waiting, and the message says what failed.
        kube = KubeClient(access, attempts=2)
        try:
            return await action(kube, access)
        finally:
            await kube.close()

    try:
        return asyncio.run(session())
    except ValidationError as err:
        return console.fail(str(err), USAGE)
    except ApiUnavailable as err:
        return console.fail(f"the API server at {access.server} did not answer: {err}", failure)
    except WioError as err:
        return console.fail(str(err), failure)


def status(
    kubeconfig: str | None,
    *,
    namespace: str | None,
    all_namespaces: bool,
    sort: str,
    output: str,
    console: Console,
) -> int:
    """``wio status``: every credential in a namespace (or all), with its health."""

    async def action(kube: Kube, access: ClusterAccess) -> int:
        where = None if all_namespaces else check_namespace(namespace or _default_ns(access))
        rows = sort_rows(await collect(kube, where), sort)
        now = console.clock.now()
        if output != "table":
            console.print(render.structured([to_record(r, now) for r in rows], output))
        elif not rows:
            print(f"No credentials found in {where or 'any namespace'}.", file=console.err)
        else:
            console.print(render.table(TABLE_HEADERS, [to_cells(r, now) for r in rows]))
        return OK

    return run(kubeconfig, action, console)


def inspect_command(
    kubeconfig: str | None, target: str, *, kind: str | None, output: str, console: Console
) -> int:
    """``wio inspect``: the decoded metadata of what an object's Secret holds."""

    async def action(kube: Kube, _: ClusterAccess) -> int:
        found = await find(kube, ObjectRef.parse(target), kind)
        sections = await inspect(kube, found)
        text = render.blocks(sections) if output == "table" else render.structured(sections, output)
        console.print(text)
        return OK

    return run(kubeconfig, action, console)


def request(
    kubeconfig: str | None,
    target: str,
    make: Callable[[Clock], Request],
    *,
    kind: str | None,
    wait: float | None,
    output: str,
    console: Console,
) -> int:
    """``wio renew`` and ``wio revoke``: annotate, and wait for status to acknowledge."""

    async def action(kube: Kube, _: ClusterAccess) -> int:
        found = await find(kube, ObjectRef.parse(target), kind)
        outcome = await submit(kube, found, make(console.clock), clock=console.clock, wait=wait)
        if output != "table":
            console.print(render.structured(outcome.to_record(), output))
        else:
            console.print(_request_text(outcome))
        if outcome.waited and not outcome.acknowledged:
            return console.fail(
                f"{found.describe()} did not acknowledge {outcome.request.value!r} within "
                f"{wait:.0f}s ({outcome.conditions()}); the request stays on the object and "
                "the operator still acts on it",
                FAILED,
            )
        return OK

    return run(kubeconfig, action, console)


def _request_text(outcome: Outcome) -> str:
    what = outcome.before.describe()
    req = outcome.request
    lines = [f"requested {req.verb} of {what}: {req.annotation}={req.value}"]
    if req.verb == "revoke":
        listed = ", ".join(live_ids(outcome.before)) or "nothing issued yet"
        lines.append(f"revokes: {listed}")
    if not outcome.waited:
        lines.append(f"not waiting; status.{req.ack_field} says when it is done")
    elif outcome.acknowledged:
        before, after = current_ids(outcome.before), current_ids(outcome.latest)
        changes = [f"{k} {before.get(k, '-')} -> {v}" for k, v in after.items()]
        lines.append("done: " + ("; ".join(changes) or "no credential recorded"))
    return "\n".join(lines)


def verify_command(
    kubeconfig: str | None,
    source: str,
    *,
    bundle_from: str | None,
    configmap: str,
    audience: str | None,
    trust_domain: str | None,
    issuer: str | None,
    output: str,
    console: Console,
    stdin: BinaryIO | None = None,
) -> int:
    """``wio verify``: exit 0 valid, 1 invalid, 2 when no verdict could be reached."""
    try:
        raw = (stdin or sys.stdin.buffer).read() if source == "-" else Path(source).read_bytes()
        presented = read_presented(raw)
        namespace = check_namespace(bundle_namespace(presented, bundle_from))
    except OSError as err:
        return console.fail(f"cannot read {source}: {err.strerror}", USAGE)
    except ValidationError as err:
        return console.fail(str(err), USAGE)

    async def action(kube: Kube, _: ClusterAccess) -> int:
        trust = await fetch_trust(kube, namespace, configmap)
        verdict = decide(
            presented,
            trust,
            console.clock.now(),
            audience=audience,
            trust_domain=trust_domain,
            issuer=issuer,
        )
        if output != "table":
            console.print(render.structured(verdict.to_record(), output))
        else:
            console.print(verdict_text(verdict, namespace))
        return OK if verdict.valid else FAILED

    # Anything that keeps the trust material from us (403, an unreachable API) is not a
    # verdict: 1 must only ever mean "invalid".
    return run(kubeconfig, action, console, failure=USAGE)


def verdict_text(verdict: Verdict, namespace: str) -> str:
    """``valid``/``invalid (reason)``, the facts, and any notes, one per line."""
    if verdict.valid:
        facts = ", ".join(f"{k} {v}" for k, v in verdict.facts.items())
        head = f"valid {verdict.form}: {facts}"
    else:
        head = f"invalid {verdict.form} ({verdict.reason}): {verdict.message}"
    lines = [head, f"checked against the trust bundle of namespace {namespace}"]
    lines.extend(f"note: {n}" for n in verdict.notes)
    return "\n".join(lines)


def _default_ns(access: ClusterAccess) -> str:
    """The kubeconfig context's namespace, else ``default``, as kubectl chooses."""
    return access.namespace or "default"
