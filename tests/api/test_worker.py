"""Load and faults: the bounded queue (429 at once), timeouts (504), readiness (503), and clients
that leave while queued (their work is dropped). No timing is asserted: only outcomes, each test
bounded by generous timeouts so nothing can hang the suite.
"""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from api_support import (
    AUTH,
    PATH,
    BrightSegmenter,
    GatedSegmenter,
    SlowSegmenter,
    app_client,
    assert_good_request_works,
    make_settings,
    png,
    upload,
)

from segserve.api import create_app
from segserve.api.worker import ClientDisconnected, InferenceWorker
from segserve.errors import RequestTimeoutError, ServerBusyError


def _multipart() -> tuple[bytes, str]:
    request = httpx.Request(
        "POST", "http://t", files={"image": ("x.png", png(), "image/png")}, data={"model": "sam3", "prompt": "a"}
    )
    return request.read(), request.headers["content-type"]


def test_overload_gives_429_at_once_and_the_rest_complete():
    """max_queue=2, one worker, a slow model: of 10 concurrent requests 3 fit (1 running + 2
    waiting), the others get 429 with Retry-After; every accepted one answers correctly."""
    slow = SlowSegmenter(delay=0.3)
    app = create_app(make_settings(max_queue=2, workers=1, retry_after=7), slow)

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as c:
                requests = [
                    c.post(PATH, headers=AUTH, files={"image": ("x.png", png(), "image/png")}, data={"model": "sam3"})
                    for _ in range(10)
                ]
                return await asyncio.wait_for(asyncio.gather(*requests), timeout=60)

    responses = asyncio.run(go())
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) == {200, 429}, statuses
    assert statuses.count(200) == 3
    for r in responses:
        if r.status_code == 429:
            err = r.json()["error"]
            assert (err["type"], err["code"]) == ("rate_limit_error", "server_busy")
            assert r.headers["retry-after"] == "7"
        else:
            assert r.json()["segments"][0]["bbox"] == [5, 4, 20, 12]
    assert len(slow.calls) == 3


def test_request_timeout_is_504_and_the_server_recovers():
    slow = SlowSegmenter(delay=1.0)
    with app_client(slow, request_timeout=0.2) as c:
        r = upload(c, png())
        assert r.status_code == 504, r.text
        err = r.json()["error"]
        assert (err["type"], err["code"]) == ("server_error", "timeout")
    fast = BrightSegmenter()
    with app_client(fast, request_timeout=30) as c:
        assert_good_request_works(c)


def test_readyz_is_503_until_the_warm_up_ran():
    gated = GatedSegmenter()
    app = create_app(make_settings(warmup=True), gated)
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "model_not_ready"
        assert c.get("/healthz").status_code == 200  # alive while not ready
        r = upload(c, png())  # a request before readiness: 503, not queued
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "model_not_ready"
        assert "retry-after" in r.headers
        gated.gate.set()
        from api_support import wait_ready

        wait_ready(c)
        assert gated.calls[0][1] == ["object"]  # the warm-up inference
        assert_good_request_works(c)


def test_model_that_fails_to_load_keeps_readyz_503(tmp_path):
    from fastapi.testclient import TestClient

    app = create_app(make_settings(model=str(tmp_path / "no-such-checkpoint")))
    with TestClient(app) as c:
        state = app.state.segserve
        for _ in range(600):
            if state.load_error:
                break
            threading.Event().wait(0.05)
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "failed to load" in r.json()["error"]["message"]
        assert upload(c, png()).status_code == 503


def test_client_that_disconnects_while_queued_is_dropped():
    """Request A occupies the only worker; request B's client is gone before its turn: B's job is
    cancelled and the model never runs for it."""
    slow = SlowSegmenter(delay=0.5)
    app = create_app(make_settings(max_queue=4), slow)
    body, content_type = _multipart()
    sent: list[dict] = []

    def scope() -> dict:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": PATH,
            "raw_path": PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"t"),
                (b"authorization", AUTH["Authorization"].encode()),
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("t", 80),
            "state": {},
        }

    async def call(gone: asyncio.Event) -> None:
        delivered = False

        async def receive():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await app(scope(), receive, send)

    async def go():
        async with app.router.lifespan_context(app):
            stays, leaves = asyncio.Event(), asyncio.Event()
            a = asyncio.create_task(call(stays))
            while not slow.started.is_set():  # A is running
                await asyncio.sleep(0.01)
            b = asyncio.create_task(call(leaves))
            await asyncio.sleep(0.05)
            leaves.set()  # B's client disconnects while B waits behind A
            await asyncio.wait_for(asyncio.gather(a, b), timeout=30)

    asyncio.run(go())
    starts = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert sorted(starts) == [200, 499]
    assert len(slow.calls) == 1  # B never reached the model


# --- the queue on its own ----------------------------------------------------------------------------
def test_worker_refuses_beyond_capacity_and_drops_cancelled_jobs():
    worker = InferenceWorker(workers=1, max_queue=1, retry_after=3)
    worker.start()
    gate, started = threading.Event(), threading.Event()
    ran: list[str] = []
    try:
        first = worker.submit(lambda: (started.set(), gate.wait(10), ran.append("first")))
        assert started.wait(10)
        second = worker.submit(lambda: ran.append("second"))
        with pytest.raises(ServerBusyError) as busy:
            worker.submit(lambda: ran.append("third"))
        assert busy.value.headers == {"Retry-After": "3"}
        assert worker.cancel(second)  # waiting: can be dropped
        assert not worker.cancel(first)  # running: cannot
        third = worker.submit(lambda: ran.append("third"))  # the dropped slot is free again
        gate.set()
        first.result(10)
        third.result(10)
        assert ran == ["first", "third"]
        assert (worker.waiting, worker.running) == (0, 0)
    finally:
        gate.set()
        worker.stop(5)


def test_worker_run_times_out_and_notices_disconnects():
    worker = InferenceWorker(workers=1, max_queue=2)
    worker.start()
    gate = threading.Event()

    async def go():
        blocker = worker.submit(lambda: gate.wait(10))
        with pytest.raises(RequestTimeoutError):
            await worker.run(lambda: "late", timeout=0.2)

        async def gone() -> bool:
            return True

        with pytest.raises(ClientDisconnected):
            await worker.run(lambda: "never", timeout=10, is_disconnected=gone)
        gate.set()
        await asyncio.wrap_future(blocker)
        assert await worker.run(lambda: 42, timeout=10) == 42

    try:
        asyncio.run(asyncio.wait_for(go(), 30))
    finally:
        gate.set()
        worker.stop(5)


def test_worker_passes_exceptions_through():
    worker = InferenceWorker(workers=1, max_queue=1)
    worker.start()

    def boom():
        raise ValueError("model exploded")

    try:
        with pytest.raises(ValueError, match="exploded"):
            asyncio.run(worker.run(boom, timeout=10))
        assert asyncio.run(worker.run(lambda: "fine", timeout=10)) == "fine"
    finally:
        worker.stop(5)


def test_admission_takes_a_place_before_the_work_exists_and_hands_it_back():
    worker = InferenceWorker(workers=1, max_queue=1)
    worker.start()
    try:
        with worker.admit() as a, worker.admit() as b:
            assert worker.waiting == 2  # both places taken before any job was submitted
            with pytest.raises(ServerBusyError), worker.admit():
                pass
            assert asyncio.run(worker.run(lambda: "a", timeout=10, ticket=a)) == "a"
            with pytest.raises(RuntimeError, match="one job"):
                worker.submit(lambda: "again", a)
            del b  # never used: a request that failed before queueing its job
        assert (worker.waiting, worker.running) == (0, 0)  # unused places are handed back
        with worker.admit(), worker.admit():
            pass
    finally:
        worker.stop(5)


def test_a_refused_request_reads_no_body():
    # Full queue: the 429 is decided before the upload is read, so even a body the server would
    # refuse as too large (413) gets the 429.
    seg = SlowSegmenter(delay=2.0)
    with app_client(seg, max_queue=0) as c:
        first = threading.Thread(target=lambda: upload(c, png()))
        first.start()
        assert seg.started.wait(10)
        r = c.post(PATH, headers={**AUTH, "Content-Type": "application/json"}, content=b"x" * (40 * 2**20))
        first.join(30)
    assert r.status_code == 429 and r.json()["error"]["code"] == "server_busy" and r.headers["Retry-After"]


def test_a_queued_request_holds_its_upload_not_its_decoded_image(monkeypatch):
    """While the model is held, 1 request runs and 2 wait: only the running one has decoded its
    pixels (a decoded 50 MP image is 143 MiB; max_queue of them would add up to GBs). A bad image is
    still refused before it waits, from its header."""
    from segserve.api import routes

    decoded: list[int] = []

    def counting_decode(data, **limits):
        decoded.append(len(data))
        return routes.decode_image_unpatched(data, **limits)

    monkeypatch.setattr(routes, "decode_image_unpatched", routes.decode_image, raising=False)
    monkeypatch.setattr(routes, "decode_image", counting_decode)
    gated = GatedSegmenter()
    gated.gate.set()  # let the warm-up through
    app = create_app(make_settings(max_queue=3, workers=1), gated)  # room for one more

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as c:
                while (await c.get("/readyz")).status_code != 200:
                    await asyncio.sleep(0.02)
                gated.gate.clear()
                form = {"model": "sam3"}
                posts = [
                    asyncio.create_task(
                        c.post(PATH, headers=AUTH, files={"image": ("x.png", png(), "image/png")}, data=form)
                    )
                    for _ in range(3)
                ]
                worker = app.state.segserve.worker
                # One running, two jobs in the queue (past every check the route makes before queueing).
                while worker.running < 1 or worker._queue.qsize() < 2:
                    await asyncio.sleep(0.02)
                seen_while_held = list(decoded)
                bad = await c.post(
                    PATH, headers=AUTH, files={"image": ("x.png", b"not an image", "image/png")}, data=form
                )
                gated.gate.set()
                return seen_while_held, bad, await asyncio.gather(*posts)

    seen_while_held, bad, responses = asyncio.run(go())
    assert len(seen_while_held) == 1
    assert bad.status_code == 422, bad.text  # refused on its header while the others still wait
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert len(decoded) == 3
