"""uvicorn's HTTP/1.1 protocol with what it lacks against slow and numerous clients, both answered
with the contract's JSON error body. `serve.py` hands the class to `uvicorn.Config(http=...)`.

- Header timeout. uvicorn times out idle keep-alive connections, but a connection that has sent
  nothing yet, or part of a request's headers, is held for ever. Here a request's headers must be
  complete within `header_timeout` seconds of the connection opening (or, on a kept-alive
  connection, of the next request's first byte). It is a total, not a gap: trickling a byte a second
  does not extend it. Then the connection is closed, after a 408 `request_timeout` when part of a
  request arrived, silently when none did (as uvicorn ends an idle keep-alive connection).
- Connection cap. A request on a connection beyond `max_connections` open ones is answered 503
  `too_many_connections` with `Retry-After` and that connection closed, as soon as its headers are
  in; `/healthz` is exempt, so a liveness probe does not restart a server that is only crowded.
  (uvicorn's own `limit_concurrency` answers plain text, and counts the asking connection against
  the limit, so a limit of N serves N - 1.) A connection past the cap still holds its socket until
  its headers arrive or `header_timeout` ends it.

The body's timeouts live in the app (api/body.py), where the body is read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

from segserve.errors import ClientTimeoutError, SegserveError, TooManyConnectionsError
from segserve.settings import Settings

log = logging.getLogger("segserve.serve")

# Paths answered whatever the connection count: "alive" must not turn into "dead" under a crowd.
_UNCAPPED_PATHS = frozenset({"/healthz"})


def _json_head(status: int, reason: str, body: bytes, extra: list[tuple[bytes, bytes]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}".encode()]
    headers = [
        *extra,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


class _SlowClientGuard:
    """Mixed in before uvicorn's H11Protocol or HttpToolsProtocol; relies only on what both share:
    `transport`, `cycle` (set once a request's headers are parsed), `connections`, `app`,
    `server_state`, and the asyncio.Protocol callbacks."""

    header_timeout: ClassVar[float]
    max_connections: ClassVar[int]
    retry_after: ClassVar[int]

    # From uvicorn's protocol classes (the other base).
    transport: asyncio.Transport
    cycle: Any
    connections: set[Any]
    app: Any
    server_state: Any
    loop: asyncio.AbstractEventLoop

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._partial_request = False  # bytes of a request whose headers are not complete arrived
        self._inner_app = self.app
        self.app = self._capped_app  # what uvicorn starts for each request on this connection

    # --- header timeout ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and data:  # bytes of the next request (the previous one, if any, is answered)
            self._partial_request = True
            if self._header_timer is None:
                self._arm()
        before = self.cycle
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not before:  # a request's headers are complete: the app takes it from here
            self._disarm()
            self._partial_request = False

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport.is_closing() or transport.get_protocol() is not self:  # closed, or upgraded
            return
        # Leftover body of a request already answered (say a 401 before the upload ended) gets no
        # answer of its own: the client is reading the first one.
        leftover = self.cycle is not None and self.cycle.more_body
        if self._partial_request and not leftover:
            err = ClientTimeoutError(
                f"The request's headers did not all arrive within {self.header_timeout:g} seconds. "
                "Send the request without pausing."
            )
            transport.write(self._error_bytes(err, "Request Timeout"))
        log.info("closed a connection: no complete request headers within %g s", self.header_timeout)
        transport.close()

    def _error_bytes(self, err: SegserveError, reason: str) -> bytes:
        body = json.dumps(err.to_body()).encode()
        return _json_head(err.status, reason, body, list(self.server_state.default_headers)) + body

    # --- connection cap ------------------------------------------------------------------------
    async def _capped_app(self, scope: Any, receive: Any, send: Any) -> None:
        if len(self.connections) <= self.max_connections or scope.get("path") in _UNCAPPED_PATHS:
            await self._inner_app(scope, receive, send)
            return
        log.warning(
            "%d connections open (max_connections %d): refused one", len(self.connections), self.max_connections
        )
        err = TooManyConnectionsError(
            f"The server has too many open connections. Retry in {self.retry_after} seconds.",
            headers={"Retry-After": str(self.retry_after)},
        )
        body = json.dumps(err.to_body()).encode()
        headers = [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # frees the place at once; the unread body is not wanted
        ]
        await send({"type": "http.response.start", "status": err.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def protocol_class(settings: Settings, impl: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol `impl` ("httptools", "h11", or "auto": httptools when installed,
    as uvicorn chooses) with the header timeout and connection cap of `settings`."""
    if impl == "auto":
        try:
            import httptools  # noqa: F401
        except ImportError:
            impl = "h11"
        else:
            impl = "httptools"
    if impl == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    elif impl == "h11":
        from uvicorn.protocols.http.h11_impl import H11Protocol as base  # type: ignore[assignment]
    else:
        raise ValueError(f"unknown HTTP implementation {impl!r}: use 'auto', 'httptools' or 'h11'")
    attrs = {
        "header_timeout": settings.header_timeout,
        "max_connections": settings.max_connections,
        "retry_after": settings.retry_after,
    }
    return type(f"Segserve{base.__name__}", (_SlowClientGuard, base), attrs)
