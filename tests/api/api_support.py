"""Helpers for the API tests: small fake segmenters, an in-process app, and image bytes.

The fakes implement the `Segmenter` protocol so the HTTP layer is tested without model cost; the
tiny random SAM 3 (tests/conftest.py) is used where the real engine matters.
"""

from __future__ import annotations

import contextlib
import io
import socketserver
import threading
import time
from collections.abc import Iterator

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from segserve.api import create_app
from segserve.masks import mask_to_box
from segserve.prompts import as_concepts
from segserve.settings import Settings
from segserve.types import SegmentationResult, SegmentOptions

API_KEY = "test-key-1"
OTHER_KEY = "test-key-2"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
PATH = "/v1/images/segmentation"


class BrightSegmenter:
    """One segment per concept (or "object" for an empty prompt): the pixels brighter than 128.

    Its masks depend only on the pixels, so a test can check that the server decoded the image in
    the right frame (EXIF rotation, first GIF frame, 16-bit scaling). Records every call.
    """

    model_id = "fake-bright"

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], list[str], SegmentOptions]] = []  # shape, labels, options

    def segment(self, image, concepts=(), options=None) -> SegmentationResult:
        options = options or SegmentOptions()
        given = [c.label for c in as_concepts(concepts)]
        self.calls.append((image.shape, given, options))
        h, w = image.shape[:2]
        mask = image.astype(np.int32).mean(axis=2) > 128
        labels = given or ["object"]
        if not mask.any():
            return SegmentationResult.empty((h, w), image=image)
        n = min(len(labels), options.max_segments)
        masks = np.repeat(mask[None], n, axis=0)
        box = mask_to_box(mask)
        return SegmentationResult(
            masks=masks,
            boxes=np.array([box] * n),
            scores=np.linspace(0.9, 0.5, n),
            labels=labels[:n],
            image_size=(h, w),
        )


    def segment_object(self, image, prompt, options=None) -> SegmentationResult:
        """Interactive mode: the bright pixels, as one "object" (or, with multimask, 3 copies)."""
        options = options or SegmentOptions()
        self.object_calls = [*getattr(self, "object_calls", []), (image.shape, prompt, options)]
        result = self.segment(image, [], options)
        n = min(3 if prompt.multimask else 1, options.max_segments) if len(result) else 0
        return result[[0] * n]


class SlowSegmenter(BrightSegmenter):
    """Takes `delay` seconds per call (holding its worker thread), to fill the queue."""

    def __init__(self, delay: float = 0.5) -> None:
        super().__init__()
        self.delay = delay
        self.started = threading.Event()

    def segment(self, image, concepts=(), options=None):
        self.started.set()
        time.sleep(self.delay)
        return super().segment(image, concepts, options)


class GatedSegmenter(BrightSegmenter):
    """Blocks every call until `gate` is set: holds the warm-up to observe /readyz at 503."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def segment(self, image, concepts=(), options=None):
        self.gate.wait(30)
        return super().segment(image, concepts, options)


class BrokenSegmenter(BrightSegmenter):
    """Raises an unexpected exception on request (not during warm-up): the 500 path."""

    def segment(self, image, concepts=(), options=None):
        if [c.label for c in as_concepts(concepts)] == ["explode"]:
            raise RuntimeError("secret internal detail /home/model/weights")
        return super().segment(image, concepts, options)


def make_settings(**overrides) -> Settings:
    base = {"api_keys": f"{API_KEY},{OTHER_KEY}", "warmup": False}
    base.update(overrides)
    # _env_file=None: a developer's .env must not change what the tests see.
    return Settings(_env_file=None, **base)


def wait_ready(client: TestClient, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"/readyz not 200 after {timeout}s: {client.get('/readyz').json()}")


@contextlib.contextmanager
def app_client(segmenter=None, **overrides) -> Iterator[TestClient]:
    """An in-process app (lifespan run), ready to answer."""
    app = create_app(make_settings(**overrides), BrightSegmenter() if segmenter is None else segmenter)
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[socketserver.BaseServer]:
    """`server` answering on a daemon thread for the block, then shut down and closed."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# --- images ------------------------------------------------------------------------------------
def picture(w: int = 40, h: int = 30, box: tuple[int, int, int, int] = (5, 4, 20, 12)) -> np.ndarray:
    """Black RGB image with a white rectangle at box = (x1, y1, x2, y2), x2/y2 exclusive."""
    arr = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    arr[y1:y2, x1:x2] = 255
    return arr


def encode(img: Image.Image | np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png(w: int = 40, h: int = 30, box: tuple[int, int, int, int] = (5, 4, 20, 12)) -> bytes:
    return encode(picture(w, h, box))


def upload(client: TestClient, data: bytes, prompt: str = "thing", headers: dict | None = None, **fields):
    """POST the image as the reference client does: multipart, file part `image`."""
    form = {"model": "sam3", "prompt": prompt, **{k: str(v) for k, v in fields.items()}}
    return client.post(
        PATH, headers=AUTH if headers is None else headers, files={"image": ("x.jpg", data, "image/jpeg")}, data=form
    )


def assert_good_request_works(client: TestClient) -> None:
    """After any bad request, the server still answers a good one correctly."""
    r = upload(client, png(), prompt="thing")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["num_segments"] == 1
    assert body["segments"][0]["bbox"] == [5, 4, 20, 12]
    assert body["segments"][0]["mask"]["size"] == [30, 40]
