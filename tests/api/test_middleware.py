"""RequestContextMiddleware on a tiny app of its own: the request id (the client's when plain, else a
new one) on every answer, one access-log line per request, the request counter and latency by
route template, and the last-resort 500 for an exception nothing else handled."""

from __future__ import annotations

import contextlib
import logging
import re

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from segserve.api.errors import install_error_handlers, request_id_of
from segserve.api.metrics import Metrics
from segserve.api.middleware import RequestContextMiddleware
from segserve.errors import InvalidImageError

NEW_ID = re.compile(r"^[0-9a-f]{32}$")  # what the middleware makes when the client's id is unusable


def _app(metrics: Metrics, started: list[str] | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if started is not None:
            started.append("lifespan")
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/ok")
    async def ok(request: Request) -> dict:
        return {"request_id": request_id_of(request)}

    @app.get("/items/{n}")
    async def items(n: int) -> dict:
        return {"n": n}

    @app.get("/bad-image")
    async def bad_image() -> None:
        raise InvalidImageError("The bytes are not an image.")

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("secret connection string in the traceback")

    @app.get("/crash-mid-stream")
    async def crash_mid_stream() -> StreamingResponse:
        async def chunks():
            yield b"first part"
            raise RuntimeError("broke after the answer started")

        return StreamingResponse(chunks())

    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def client(metrics):
    with TestClient(_app(metrics)) as c:
        yield c


def _samples(metrics: Metrics, name: str) -> dict[tuple, float]:
    """{sorted label items: value} of one sample name in the rendered metrics."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
        if s.name == name
    }


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/ok", 200),  # a success
        ("GET", "/bad-image", 422),  # a SegserveError
        ("GET", "/nowhere", 404),  # no route
        ("POST", "/ok", 405),  # wrong method
        ("GET", "/crash", 500),  # an exception nothing handled
    ],
)
def test_every_answer_carries_a_new_request_id(client, method, path, status):
    r = client.request(method, path)
    assert r.status_code == status
    assert NEW_ID.match(r.headers["x-request-id"])


def test_each_request_gets_its_own_id_and_the_route_sees_it(client):
    first, second = client.get("/ok"), client.get("/ok")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert first.json()["request_id"] == first.headers["x-request-id"]


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        ("abc-123", True),  # plain
        ("trace.id_01:span-2", True),  # dots, underscores, colons, dashes
        ("a" * 64, True),  # the longest kept
        ("a" * 65, False),  # too long
        ("bad id", False),  # a space
        ("id\twith\ttabs", False),  # control characters
        ("id;drop", False),  # punctuation outside the plain set
        ("", False),  # empty
    ],
)
def test_a_plain_client_request_id_is_echoed_and_any_other_replaced(client, sent, echoed):
    r = client.get("/ok", headers={"X-Request-ID": sent})
    rid = r.headers["x-request-id"]
    if echoed:
        assert rid == sent
    else:
        assert NEW_ID.match(rid), rid
    assert r.json()["request_id"] == rid


def test_each_request_logs_one_line_with_id_method_path_status_code_and_duration(client, caplog):
    with caplog.at_level(logging.INFO, logger="segserve.access"):
        client.get("/items/7", headers={"X-Request-ID": "r-1"})
        client.get("/bad-image", headers={"X-Request-ID": "r-2"})
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "segserve.access"]
    assert len(lines) == 2
    assert re.fullmatch(r"r-1 GET /items/7 200 - \d+\.\dms", lines[0]), lines[0]  # success: code "-"
    assert re.fullmatch(r"r-2 GET /bad-image 422 invalid_image \d+\.\dms", lines[1]), lines[1]


def test_an_unexpected_exception_is_a_generic_500_with_the_traceback_in_the_log(client, caplog):
    with caplog.at_level(logging.INFO):
        r = client.get("/crash", headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert (err["type"], err["code"], err["param"]) == ("server_error", "internal_error", None)
    assert "boom-1" in err["message"]
    assert "secret" not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text
    failures = [rec for rec in caplog.records if rec.name == "segserve.api"]
    assert len(failures) == 1 and "boom-1" in failures[0].getMessage()
    assert failures[0].exc_info is not None and "secret connection string" in str(failures[0].exc_info[1])
    access = [rec.getMessage() for rec in caplog.records if rec.name == "segserve.access"]
    assert access[0].startswith("boom-1 GET /crash 500 internal_error ")


def test_an_exception_after_the_answer_started_is_raised_not_answered_twice(metrics):
    with TestClient(_app(metrics)) as c, pytest.raises(RuntimeError, match="after the answer started"):
        c.get("/crash-mid-stream")
    # Counted with the status already sent and the code of what went wrong.
    labels = (("code", "internal_error"), ("method", "GET"), ("route", "/crash-mid-stream"), ("status", "200"))
    assert _samples(metrics, "segserve_requests_total")[labels] == 1.0


def test_requests_are_counted_by_route_template_status_and_code(client, metrics):
    for n in (1, 2, 3):
        client.get(f"/items/{n}")
    client.get("/items/x")  # a validation error
    client.get("/bad-image")
    client.get("/nowhere/1")
    client.get("/nowhere/2")
    client.get("/static/app.js")  # no static mount here: still one bounded label
    counts = _samples(metrics, "segserve_requests_total")

    def count(route: str, status: str, code: str = "") -> float:
        return counts[(("code", code), ("method", "GET"), ("route", route), ("status", status))]

    assert count("/items/{n}", "200") == 3.0  # the template, not /items/1, /items/2, ...
    assert count("/items/{n}", "400", "invalid_parameter") == 1.0
    assert count("/bad-image", "422", "invalid_image") == 1.0
    assert count("unmatched", "404", "not_found") == 2.0
    assert count("/static", "404", "not_found") == 1.0
    assert not [labels for labels in counts if "/nowhere" in str(labels)]


def test_latency_is_observed_once_per_request_by_route(client, metrics):
    client.get("/items/1")
    client.get("/items/2")
    client.get("/crash")
    observed = _samples(metrics, "segserve_request_seconds_count")
    assert observed == {(("route", "/items/{n}"),): 2.0, (("route", "/crash"),): 1.0}


def test_lifespan_passes_through_without_a_request_id_log_line_or_count(metrics, caplog):
    started: list[str] = []
    with caplog.at_level(logging.INFO, logger="segserve.access"), TestClient(_app(metrics, started)):
        pass
    assert started == ["lifespan"]
    assert not [rec for rec in caplog.records if rec.name == "segserve.access"]
    assert _samples(metrics, "segserve_requests_total") == {}


def test_every_answer_says_the_servers_time_in_server_timing(client):
    """The playground reads this to show the server's share of a request's latency."""
    for path, status in (("/ok", 200), ("/bad-image", 422), ("/nowhere", 404)):
        r = client.get(path)
        assert r.status_code == status
        match = re.fullmatch(r"app;dur=(\d+\.\d)", r.headers["server-timing"])
        assert match, r.headers["server-timing"]
        assert 0 <= float(match.group(1)) < 60_000
