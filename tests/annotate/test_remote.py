"""`--server`: the same run through a segserve server (the real app, in-process, with the tiny
model) gives the same journal and exports as the local run; 429s are waited out, not failures."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import httpx
import pytest
from annotate_support import FORMATS, OPTIONS, PROMPT, exports

from segserve.annotate.remote import RemoteBackend
from segserve.annotate.runner import run
from segserve.errors import error_body
from segserve.settings import Settings
from segserve.types import SegmentRequest

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
from api_support import API_KEY, app_client


class BusyAtFirst(httpx.BaseTransport):
    """The server's transport, answering the first `n` segmentation requests with a 429 as a full
    queue does (Retry-After: 0), and counting the requests in flight at once."""

    def __init__(self, inner: httpx.BaseTransport, n: int) -> None:
        self.inner, self.left, self.refused, self.sent = inner, n, 0, 0
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.sent += 1
            if self.left > 0:
                self.left -= 1
                self.refused += 1
                body = error_body("The server is busy.", "rate_limit_error", "server_busy")
                return httpx.Response(429, json=body, headers={"Retry-After": "0"})
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            response = self.inner.handle_request(request)
            # Starlette's test transport answers with a stream httpx.Client rejects: hand over the bytes.
            return httpx.Response(response.status_code, headers=response.headers, content=response.read())
        finally:
            with self._lock:
                self.in_flight -= 1


@pytest.fixture(scope="module")
def server(tiny_segmenter):
    with app_client(tiny_segmenter) as client:
        yield client


def _backend(server, settings, transport):
    request = SegmentRequest.resolve(settings, prompt=PROMPT, mask_format="rle", **OPTIONS)
    backend = RemoteBackend("http://testserver", API_KEY, PROMPT, request, settings, transport=transport)
    return backend, request


def test_a_run_through_the_server_waits_out_429s_and_matches_the_local_run(
    server, reference_run, photo_folder, tmp_path
):
    settings = Settings.defaults().replace(annotate_concurrency=2, annotate_retries=5)
    transport = BusyAtFirst(server._transport, n=3)
    backend, request = _backend(server, settings, transport)
    summary = run(backend, photo_folder, tmp_path / "out", request, settings, formats=FORMATS, quiet=True)
    assert transport.refused == 3 and summary.failures_by_reason == {"invalid_image": 1}
    assert summary.done == 6 and summary.instances == reference_run[1].instances
    assert 1 <= transport.most_in_flight <= 2  # bounded by annotate_concurrency
    ours, reference = exports(tmp_path / "out"), exports(reference_run[0])
    assert ours.keys() == reference.keys()
    assert ours["coco.json"] == reference["coco.json"]


def test_an_image_still_refused_after_the_retries_is_a_failure(server, photo_folder, tmp_path):
    settings = Settings.defaults().replace(annotate_concurrency=1, annotate_retries=1)
    transport = BusyAtFirst(server._transport, n=2)  # the first image: refused, retried once, refused again
    backend, request = _backend(server, settings, transport)
    summary = run(backend, photo_folder, tmp_path / "out", request, settings, quiet=True)
    assert summary.failures_by_reason == {"server_busy": 1, "invalid_image": 1}
    assert summary.done == 5
