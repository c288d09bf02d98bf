"""The exception handlers on a tiny app of their own: a SegserveError keeps its status, body and
headers; Starlette's 404/405/400 and FastAPI's validation errors get the same body shape; an
internal error is a generic 500 naming the request id, its detail only in the log."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from segserve.api.errors import install_error_handlers
from segserve.api.metrics import Metrics
from segserve.api.middleware import RequestContextMiddleware
from segserve.errors import (
    AuthenticationError,
    ImageTooLargeError,
    MissingFieldError,
    ModelLoadError,
    SegserveError,
    ServerBusyError,
)


class _DatabaseDown(SegserveError):
    """A 500 of the server's own making: its message is internal, like the base class's."""

    code = "database_down"


RAISED = {
    "missing": MissingFieldError("Send an `image`.", param="image"),
    "too-large": ImageTooLargeError("The image has 64 megapixels; the limit is 50."),
    "busy": ServerBusyError("The server is busy. Retry in 2 seconds.", headers={"Retry-After": "2"}),
    "auth": AuthenticationError("Send `Authorization: Bearer <key>`."),
    "loading": ModelLoadError("The checkpoint needs `hf auth login`."),
    "internal": SegserveError("password=hunter2 rejected by db-7.internal"),
    "internal-subclass": _DatabaseDown("db-7.internal refused the connection"),
}


class _Box(BaseModel):
    x: int


class _Body(BaseModel):
    box: _Box


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/raise/{name}")
    async def raise_(name: str) -> None:
        raise RAISED[name]

    @app.get("/http/{status}")
    async def http(status: int, detail: str | None = None) -> None:
        raise StarletteHTTPException(status, detail=detail, headers={"X-Hint": "kept"})

    @app.get("/items/{n}")
    async def items(n: int, limit: int = Query(1, ge=1)) -> dict:
        return {"n": n, "limit": limit}

    @app.post("/boxes")
    async def boxes(body: _Body) -> dict:
        return body.model_dump()

    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=Metrics())
    return app


@pytest.fixture(scope="module")
def client():
    with TestClient(_app()) as c:
        yield c


@pytest.mark.parametrize(
    "name",
    [
        "missing",  # 400 with the field it names
        "too-large",  # 413: its own status, type invalid_request_error
        "busy",  # 429 with Retry-After
        "auth",  # 401
        "loading",  # 503: a server state the client can wait out, message kept
    ],
)
def test_a_segserve_error_answers_its_own_status_and_body(client, name):
    err = RAISED[name]
    r = client.get(f"/raise/{name}")
    assert r.status_code == err.status
    assert r.json() == err.to_body()


def test_a_segserve_error_keeps_its_headers(client):
    assert client.get("/raise/busy").headers["retry-after"] == "2"


def test_an_authentication_error_asks_for_a_bearer_token(client):
    assert client.get("/raise/auth").headers["www-authenticate"] == "Bearer"
    assert "www-authenticate" not in client.get("/raise/missing").headers


@pytest.mark.parametrize(
    "name",
    [
        "internal",  # the base class: its message is internal
        "internal-subclass",  # any error whose status is 500
    ],
)
def test_an_internal_error_is_a_generic_500_naming_the_request_id(client, caplog, name):
    with caplog.at_level(logging.ERROR, logger="segserve.api"):
        r = client.get(f"/raise/{name}", headers={"X-Request-ID": "req-42"})
    assert r.status_code == 500
    err = r.json()["error"]
    assert (err["type"], err["code"], err["param"]) == ("server_error", "internal_error", None)
    assert "req-42" in err["message"]
    assert "db-7" not in r.text and "hunter2" not in r.text  # the detail stays on the server
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "segserve.api"]
    assert any("req-42" in line and RAISED[name].message in line for line in logged), logged


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "message"),
    [
        ("GET", "/no/such/thing", 404, "not_found", "No such endpoint: GET /no/such/thing"),  # unknown path
        ("DELETE", "/items/1", 405, "method_not_allowed", "DELETE is not allowed on /items/1"),  # wrong method
        ("GET", "/http/400?detail=Malformed%20form", 400, "invalid_parameter", "Malformed form"),  # a parser's 400
        ("GET", "/http/403", 403, "invalid_request", "Forbidden"),  # no detail: the status phrase
    ],
)
def test_starlette_http_errors_use_the_error_body(client, method, path, status, code, message):
    r = client.request(method, path)
    assert r.status_code == status
    err = r.json()["error"]
    assert (err["type"], err["code"], err["param"]) == ("invalid_request_error", code, None)
    assert err["message"].startswith(message)


def test_starlette_http_errors_keep_their_headers(client):
    assert client.delete("/items/1").headers["allow"] == "GET"
    assert client.get("/http/403").headers["x-hint"] == "kept"


@pytest.mark.parametrize(
    ("method", "path", "json", "param"),
    [
        ("GET", "/items/abc", None, "n"),  # a path parameter of the wrong type
        ("GET", "/items/1?limit=0", None, "limit"),  # a query parameter out of range
        ("POST", "/boxes", {"box": {"x": "left"}}, "box.x"),  # a nested JSON field: a dotted name
        ("POST", "/boxes", {}, "box"),  # a missing JSON field
    ],
)
def test_a_validation_error_is_400_invalid_parameter_naming_the_field(client, method, path, json, param):
    r = client.request(method, path, json=json)
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["type"], err["code"], err["param"]) == ("invalid_request_error", "invalid_parameter", param)
    assert err["message"].startswith(f"Invalid `{param}`: ")


def test_the_handled_code_reaches_the_access_log(client, caplog):
    # The handlers mark the code on the request; the middleware's log line reports it.
    with caplog.at_level(logging.INFO, logger="segserve.access"):
        client.get("/items/abc", headers={"X-Request-ID": "v-1"})
        client.get("/nowhere", headers={"X-Request-ID": "v-2"})
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "segserve.access"]
    assert lines[0].startswith("v-1 GET /items/abc 400 invalid_parameter ")
    assert lines[1].startswith("v-2 GET /nowhere 404 not_found ")
