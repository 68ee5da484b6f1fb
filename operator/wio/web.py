# SPDX-License-Identifier: Apache-2.0
"""The operator's HTTP faces, on two ports.

The operations port (plain HTTP; for the kubelet and Prometheus only):

- ``/healthz`` (liveness): the process serves HTTP.
- ``/readyz`` (readiness): this replica serves the public documents (as leader, or from a
  standby's view) and its public listener is up.
- ``/metrics``: Prometheus exposition of ``wio.metrics``.

The public port (TLS unless configured otherwise):

- ``/.well-known/openid-configuration`` and ``/jwks.json``: so a stock OIDC/JWT library can
  verify wio's JWTs from the issuer URL alone.
- ``/bundle.spiffe.json``: the SPIFFE bundle (X.509 roots and JWT keys) of the trust domain.
- ``POST /introspect``: RFC 7662 token introspection of wio's access tokens, for callers that
  present a wio JWT-SVID for that endpoint (``wio.service.introspection`` decides).

Nothing served here is secret: only public keys, certificates, counters and the claims of a
token its holder already has. Tokens are accepted only in a POST body, never in a URL (URLs
end up in logs), and never echoed.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from http import HTTPStatus
from typing import Protocol

from aiohttp import web, web_protocol
from prometheus_client import CONTENT_TYPE_LATEST

from wio.issuing.ca import LocalCA
from wio.issuing.jwt import MAX_TOKEN_BYTES
from wio.metrics import Metrics
from wio.names import INTROSPECTION_PATH
from wio.service.introspection import Introspector
from wio.service.trust import PublicDocuments

#: Largest introspection request body: a form with one token of the largest size we mint.
MAX_INTROSPECTION_BODY = 4 * MAX_TOKEN_BYTES
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
log = logging.getLogger(__name__)


class Serving(Protocol):
    """What a replica serves from: the leader's runtime, or a standby's read-only view."""

    @property
    def ready(self) -> bool: ...

    @property
    def documents(self) -> PublicDocuments: ...

    @property
    def introspector(self) -> Introspector: ...

    @property
    def local_ca(self) -> LocalCA | None:
        """The local CA (the public port's certificate comes from it), once loaded."""


def build_ops_app(
    metrics: Metrics, runtime: Callable[[], Serving | None], public_up: Callable[[], bool]
) -> web.Application:
    """Probes and metrics (the operations port)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        current = runtime()
        if current is None or not current.ready or not public_up():
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ok"})

    async def prometheus(_: web.Request) -> web.Response:
        response = web.Response(body=metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus)
    return app


def build_public_app(runtime: Callable[[], Serving | None], *, issuer: str) -> web.Application:
    """Discovery, JWKS, the SPIFFE bundle and introspection (the public port)."""

    async def discovery(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": issuer,
                "jwks_uri": f"{issuer.rstrip('/')}/jwks.json",
                "id_token_signing_alg_values_supported": [
                    "ES256",
                    "ES384",
                    "EdDSA",
                    "RS256",
                    "PS256",
                ],
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "introspection_endpoint": f"{issuer.rstrip('/')}{INTROSPECTION_PATH}",
            }
        )

    def _running() -> Serving:
        current = runtime()
        if current is None or not current.ready:
            raise web.HTTPServiceUnavailable(
                text='{"error":"starting"}', content_type="application/json"
            )
        return current

    async def jwks(_: web.Request) -> web.Response:
        body = await _running().documents.jwks_json()
        return web.Response(body=body, content_type="application/jwk-set+json")

    async def spiffe_bundle(_: web.Request) -> web.Response:
        body = await _running().documents.spiffe_bundle_json()
        return web.Response(body=body, content_type="application/json")

    async def introspect(request: web.Request) -> web.Response:
        current = _running()
        if (request.content_length or 0) > MAX_INTROSPECTION_BODY:
            return web.json_response(
                {"error": "invalid_request", "error_description": "request body too large"},
                status=413,
                headers=_NO_STORE,
            )
        token: str | None = None
        if request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            values = form.getall("token", [])
            if len(values) > 1:
                # Which one would be judged is a guess a proxy and wio could make differently.
                return web.json_response(
                    {"error": "invalid_request", "error_description": "token given more than once"},
                    status=400,
                    headers=_NO_STORE,
                )
            token = values[0] if values and isinstance(values[0], str) else None
        answer = await current.introspector.answer(
            request.headers.get("Authorization"), request.remote or "", token
        )
        return web.json_response(
            dict(answer.body), status=answer.status, headers={**_NO_STORE, **answer.headers}
        )

    app = web.Application(client_max_size=MAX_INTROSPECTION_BODY)
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks.json", jwks)
    app.router.add_get("/bundle.spiffe.json", spiffe_bundle)
    app.router.add_post(INTROSPECTION_PATH, introspect)
    return app


class _QuietRequestHandler(web_protocol.RequestHandler):
    """Answers a request the HTTP parser refuses with its status only.

    aiohttp's own answer quotes the offending bytes back, in the body and in an ERROR log
    line with a traceback; for an over-long ``Authorization`` header those bytes are the
    start of a token.
    """

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 and exc is not None:
            log.error("HTTP %s from %s: %s", status, request.remote, type(exc).__name__)
        else:
            log.info("refused a malformed HTTP request from %s (%s)", request.remote, status)
        response = web.Response(status=status, text=f"{status} {HTTPStatus(status).phrase}\n")
        response.force_close()
        return response


class _QuietServer(web.Server):
    def __call__(self) -> web_protocol.RequestHandler:
        return _QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class _QuietAppRunner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _QuietServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )


async def serve(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> web.AppRunner:
    runner = _QuietAppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    return runner
