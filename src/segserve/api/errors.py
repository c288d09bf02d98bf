"""Exception handlers: every answer that is not a 200 carries the error body of api-contract.md.

- `SegserveError` -> its own status, type, code, message (and headers such as Retry-After).
- Starlette's `HTTPException` (404, 405, form-parser 400s) -> the same body shape.
- FastAPI's `RequestValidationError` -> 400 `invalid_parameter`.
- Anything else -> a generic 500 `internal_error` naming the request id; the traceback goes to the
  log only. That one is produced by `RequestContextMiddleware` (middleware.py), which sits outside
  the routing and so also catches what escapes an exception handler.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from segserve.errors import AuthenticationError, InvalidParameterError, SegserveError, error_body

log = logging.getLogger("segserve.api")

# HTTP statuses Starlette raises itself -> a code in the contract's spirit (snake_case, stable).
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "invalid_parameter"}


def request_id_of(request: Request) -> str:
    """The id RequestContextMiddleware gave this request ("-" outside that middleware)."""
    return str(request.scope.get("state", {}).get("request_id", "-"))


def _mark(request: Request, code: str) -> None:
    # The middleware reads this back for the log line and the metrics' `code` label.
    request.scope.setdefault("state", {})["error_code"] = code


def internal_error_body(request_id: str) -> dict:
    """The generic 500 body: names the request id, says nothing of what went wrong (that is in the log)."""
    return SegserveError(
        f"The server hit an unexpected error (request id {request_id}). "
        "Retry; if it persists, report this id to the operator."
    ).to_body()


async def segserve_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SegserveError)
    _mark(request, exc.code)
    headers = dict(exc.headers)
    if isinstance(exc, AuthenticationError):
        headers.setdefault("WWW-Authenticate", "Bearer")
    if type(exc) is SegserveError or exc.status == 500:
        # The base class carries an internal message: log it, answer the generic body.
        rid = request_id_of(request)
        log.error("request %s: internal error: %s", rid, exc.message)
        return JSONResponse(internal_error_body(rid), status_code=500, headers=headers)
    return JSONResponse(exc.to_body(), status_code=exc.status, headers=headers)


async def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "invalid_request")
    _mark(request, code)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404:
        detail = f"No such endpoint: {request.method} {request.url.path}. See /docs for the API."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}. See /docs for the API."
    type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return JSONResponse(
        error_body(detail, type_, code), status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "header", "path", "form")]
    param = ".".join(loc) or None
    err = InvalidParameterError(f"Invalid `{param or 'request'}`: {first.get('msg', 'invalid value')}.", param=param)
    return await segserve_error_handler(request, err)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SegserveError, segserve_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
