"""AdmissionMiddleware: the queue place is taken (or refused) before FastAPI routes the request,
without changing what any request is answered."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from api_support import AUTH, PATH, app_client, png, upload
from prometheus_client.parser import text_string_to_metric_families

from segserve.api.admission import AdmissionMiddleware


def _refusals(client) -> float:
    """The requests counter's sample for refused segmentation requests."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_total") and labels.get("code") == "server_busy":
                assert labels["route"] == PATH  # labelled like the route, not "unmatched"
                return sample.value
    return 0.0


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        (AUTH, 429, "server_busy"),  # a good key and a full queue: refused before routing
        ({"Authorization": "Bearer wrong"}, 401, "invalid_api_key"),  # the key is checked first, as before
        ({}, 401, "invalid_api_key"),  # no key at all
        ({"Authorization": "Basic " + AUTH["Authorization"].split()[1]}, 401, "invalid_api_key"),  # wrong scheme
    ],
)
def test_a_full_queue_refuses_only_requests_the_route_would_accept(headers, status, code):
    with app_client(workers=1, max_queue=0, retry_after=9) as client:
        with client.app.state.segserve.worker.admit():  # the only place is taken
            r = client.post(PATH, headers=headers, files={"image": ("x.png", png(), "image/png")}, data={"model": "x"})
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code
        assert r.headers["x-request-id"]
        if status == 429:
            assert r.headers["retry-after"] == "9"
            assert _refusals(client) == 1


def test_a_request_that_fails_its_checks_hands_its_place_back():
    with app_client(workers=1, max_queue=0) as client:
        worker = client.app.state.segserve.worker
        assert upload(client, png(), model="not-sam3").status_code == 400  # took the place, then failed
        assert (worker.waiting, worker.running) == (0, 0)
        assert upload(client, png()).status_code == 200  # the one place is free again


def _call(middleware, headers: dict[str, str]) -> list[dict]:
    """One POST to the segmentation path through `middleware` alone; the messages it sent."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    sent: list[dict] = []

    async def receive() -> dict:
        raise AssertionError("the body is never read here")

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    return sent


@pytest.mark.parametrize(
    ("headers", "queue_full", "reaches_app"),
    [
        (AUTH, False, True),  # admitted: the app runs, holding the place
        (AUTH, True, False),  # refused here: the app never runs
        ({"Authorization": "Bearer wrong"}, True, True),  # not ours to refuse: the route answers 401
    ],
)
def test_the_middleware_alone(headers, queue_full, reaches_app):
    with app_client(workers=1, max_queue=0) as client:
        state = client.app.state.segserve
        calls: list[object] = []

        async def app(scope, receive, send):
            calls.append(scope.get("state", {}).get("queue_ticket"))
            assert state.worker.waiting == 1  # a place is held while the app runs (ours, or the test's)

        middleware = AdmissionMiddleware(app, state)
        with contextlib.ExitStack() as stack:
            if queue_full:
                stack.enter_context(state.worker.admit())
            sent = _call(middleware, headers)
        assert bool(calls) == reaches_app
        if not reaches_app:
            assert sent[0]["status"] == 429
        elif not queue_full:
            assert calls[0] is not None  # the route finds its place in scope["state"]
        assert state.worker.waiting == 0  # unused places are handed back
