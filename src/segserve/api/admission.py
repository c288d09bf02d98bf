"""Admission as a pure ASGI middleware: a segmentation request takes its queue place, or gets its
429, before FastAPI routes it.

Under overload most requests are refusals. Through FastAPI's routing, dependency solving and
exception handlers one refusal cost ~0.45 ms of event-loop time; here it costs a fraction of that,
and in an opening burst of 64 requests at once the last refusal waits for all the others
(bench/README.md, Overload). Only a request that would pass the route's first checks is refused
here (a valid key, the server ready and not draining): anything else goes through untouched, so the
route still answers its 401/503 itself. The place taken is the route's, in
`scope["state"]["queue_ticket"]`, and is handed back when the request ends without using it.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Receive, Scope, Send

from segserve.api.state import AppState
from segserve.errors import ServerBusyError

SEGMENT_PATH = "/v1/images/segmentation"


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, state: AppState, route: Any = None):
        self.app = app
        self.state = state
        self.route = route  # the endpoint's route, so metrics label a refusal as they label the route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        if (
            scope["type"] != "http"
            or scope["path"] != SEGMENT_PATH
            or scope["method"] != "POST"
            or state.draining
            or not state.ready
            or not self._authorized(scope)
        ):
            await self.app(scope, receive, send)
            return
        with contextlib.ExitStack() as place:
            try:
                ticket = place.enter_context(state.worker.admit())
            except ServerBusyError as err:
                await self._refuse(scope, send, err)
                return
            scope.setdefault("state", {})["queue_ticket"] = ticket
            await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        keys = self.state.keys
        if not keys.enabled:
            return True
        header = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
        scheme, token = get_authorization_scheme_param(header)
        return scheme.lower() == "bearer" and bool(token) and keys.check(token)

    async def _refuse(self, scope: Scope, send: Send, err: ServerBusyError) -> None:
        scope.setdefault("state", {})["error_code"] = err.code  # for the access log and the metrics
        if self.route is not None:
            scope["route"] = self.route
        body = json.dumps(err.to_body()).encode()
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items()]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": err.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
