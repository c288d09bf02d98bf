"""Per-request context as a pure ASGI middleware (no BaseHTTPMiddleware: it would buffer and hide
client disconnects from the routes).

For every HTTP request: an id (the client's `X-Request-ID` if it is short and plain, else a new
one) returned as `X-Request-ID`; the time to the answer's headers as `Server-Timing: app;dur=<ms>`;
one log line `id method path status code ms`; the request counter
and latency histogram; and the last-resort handler that turns an unknown exception into a generic
500 `internal_error` naming the id, with the traceback in the log only.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segserve.api.errors import internal_error_body
from segserve.api.metrics import Metrics

access_log = logging.getLogger("segserve.access")
log = logging.getLogger("segserve.api")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _route_label(scope: Scope) -> str:
    """A bounded label for metrics: the route template, never the raw path (unbounded cardinality)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return str(path)
    return "/static" if scope.get("path", "").startswith("/static/") else "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _CLIENT_ID.match(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 0
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                elapsed = time.perf_counter() - start
                # The server's share of the latency (upload read, queue, inference), so a client (the
                # playground) can tell it from the network's: https://www.w3.org/TR/server-timing/
                headers.append((b"server-timing", f"app;dur={elapsed * 1000:.1f}".encode()))
                message = {**message, "headers": headers}
                self.metrics.latency.labels(_route_label(scope)).observe(elapsed)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("request %s %s %s failed", request_id, scope.get("method"), scope.get("path"))
            state["error_code"] = "internal_error"
            if started:  # the answer is already on its way: nothing left to tell the client
                raise
            body = json.dumps(internal_error_body(request_id)).encode()
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send_with_id({"type": "http.response.body", "body": body})
        finally:
            code = state.get("error_code", "")
            self.metrics.requests.labels(scope.get("method", ""), _route_label(scope), str(status), code).inc()
            access_log.info(
                "%s %s %s %d %s %.1fms",
                request_id,
                scope.get("method"),
                scope.get("path"),
                status,
                code or "-",
                (time.perf_counter() - start) * 1000,
            )
