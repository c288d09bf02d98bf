"""Overload over real sockets: 64 clients at once against a uvicorn on 127.0.0.1 whose model is held.

Outcomes only, no timing: every request ends with 200 or 429 (no 5xx, no connection error); each
429 is the contract's `server_busy` body with Retry-After and was decided before its upload was
read; exactly as many requests are answered 200 as the queue admits (`workers + max_queue`), and
the server answers normally afterwards. The model is held by a gate until every refusal has
arrived, so which requests are admitted may vary but how many may not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import requests
import uvicorn
from api_support import AUTH, PATH, GatedSegmenter, encode, make_settings

from segserve.api import create_app

CLIENTS = 64
WORKERS, MAX_QUEUE = 1, 4
ADMITTED = WORKERS + MAX_QUEUE
RETRY_AFTER = 7


class BodyReads:
    """ASGI wrapper recording, per request, its response status and whether the app read its body."""

    def __init__(self, app: Any):
        self.app = app
        self.seen: list[tuple[int, bool]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        read, status = False, 0

        async def receive_watched() -> dict:
            nonlocal read
            message = await receive()
            read = read or message["type"] == "http.request"
            return message

        async def send_watched(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive_watched, send_watched)
        finally:
            with self._lock:
                self.seen.append((status, read))


def _photo(width: int = 800, height: int = 600) -> bytes:
    """A JPEG of a few hundred KB (gradient + noise compresses like a photo, not like a flat test card)."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    pixels = (x + y) / 2 + rng.normal(0, 40, (height, width, 3))
    return encode(np.clip(pixels, 0, 255).astype(np.uint8), "JPEG", quality=90)


@pytest.fixture
def server() -> Iterator[tuple[str, GatedSegmenter, BodyReads]]:
    """The app (one worker, a queue of 4, a gated model) under uvicorn on a free port of 127.0.0.1."""
    gated = GatedSegmenter()
    app = BodyReads(create_app(make_settings(workers=WORKERS, max_queue=MAX_QUEUE, retry_after=RETRY_AFTER), gated))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not runner.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        port = runner.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        while requests.get(f"{base}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "/readyz did not turn 200"
            time.sleep(0.02)
        yield base, gated, app
    finally:
        gated.gate.set()
        runner.should_exit = True
        thread.join(30)


def test_64_clients_get_200_or_429_and_the_queue_admits_exactly_its_size(server):
    base, gated, app = server
    photo = _photo()
    start = threading.Barrier(CLIENTS)
    refused = threading.Semaphore(0)

    def one_client(i: int) -> requests.Response | Exception:
        start.wait(30)  # all 64 send at once
        try:
            response = requests.post(
                base + PATH,
                headers=AUTH,
                data={"model": "sam3", "prompt": "thing"},
                files={"image": (f"photo-{i}.jpg", photo, "image/jpeg")},
                timeout=60,
            )
        except requests.RequestException as exc:  # a connection error is a failure, reported below
            return exc
        if response.status_code == 429:
            refused.release()
        return response

    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(one_client, i) for i in range(CLIENTS)]
        # The admitted requests hold the queue until every other one has been refused.
        deadline = time.monotonic() + 60
        for _ in range(CLIENTS - ADMITTED):
            if not refused.acquire(timeout=max(0.0, deadline - time.monotonic())):
                break
        gated.gate.set()
        outcomes = [f.result(timeout=90) for f in futures]

    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert not errors, errors[:3]
    statuses = [o.status_code for o in outcomes]
    assert sorted(set(statuses)) == [200, 429], statuses
    assert statuses.count(200) == ADMITTED
    assert len(gated.calls) == ADMITTED  # the model ran once per admitted request, never for a refused one
    for response in outcomes:
        if response.status_code == 429:
            error = response.json()["error"]
            assert (error["type"], error["code"]) == ("rate_limit_error", "server_busy")
            assert response.headers["Retry-After"] == str(RETRY_AFTER)
        else:
            assert response.json()["num_segments"] >= 1  # BrightSegmenter: the pixels over 128

    # The app's own view of the same requests: no refusal read its upload; every admitted one did.
    assert sorted(app.seen) == [(200, True)] * ADMITTED + [(429, False)] * (CLIENTS - ADMITTED)

    # Afterwards the queue is empty again and the server answers normally.
    after = requests.post(
        base + PATH, headers=AUTH, data={"model": "sam3"}, files={"image": ("p.jpg", photo, "image/jpeg")}, timeout=60
    )
    assert after.status_code == 200, after.text
    assert requests.get(base + "/readyz", timeout=10).status_code == 200
