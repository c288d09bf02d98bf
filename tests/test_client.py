"""The SDK against the real app in-process (no sockets): round trips return the engine's masks
exactly, every image input type works, and error answers become the typed exceptions."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from segserve.api import create_app
from segserve.client import AsyncClient, Client, ServerUnreachableError
from segserve.errors import (
    AuthenticationError,
    InvalidImageError,
    InvalidParameterError,
    InvalidRequestError,
    SegserveError,
    ServerBusyError,
    UnknownModelError,
)
from segserve.settings import Settings
from segserve.types import SegmentationResult, SegmentOptions

KEY = "sdk-key"


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def app(tiny_segmenter):
    return create_app(Settings(_env_file=None, api_keys=KEY, warmup=False), tiny_segmenter)


@pytest.fixture(scope="module")
def test_client(app):
    with TestClient(app) as tc:
        yield tc


def in_process(test_client: TestClient) -> httpx.MockTransport:
    """A sync httpx transport into the app: each request is replayed through Starlette's TestClient
    (which runs the ASGI app in-process, lifespan included)."""

    def handle(request: httpx.Request) -> httpx.Response:
        r = test_client.request(request.method, str(request.url), headers=dict(request.headers), content=request.read())
        return httpx.Response(r.status_code, headers=r.headers.multi_items(), content=r.content)

    return httpx.MockTransport(handle)


@pytest.fixture
def client(test_client):
    transport = in_process(test_client)
    with Client("http://testserver", api_key=KEY, transport=transport) as c:
        yield c


def test_round_trip_returns_the_engines_masks_exactly(client, tiny_segmenter, rgb_image):
    result = client.segment(rgb_image, prompt="cat, dog", threshold=0.0, max_segments=7)
    expected = tiny_segmenter.segment(rgb_image, ["cat", "dog"], SegmentOptions(threshold=0.0, max_segments=7))
    assert len(result) == len(expected) > 0
    np.testing.assert_array_equal(result.masks, expected.masks)
    np.testing.assert_array_equal(result.boxes, expected.boxes)
    assert result.labels == expected.labels
    np.testing.assert_allclose(result.scores, expected.scores, atol=5e-5)  # the wire rounds to 4 decimals
    np.testing.assert_array_equal(result.image, rgb_image)
    assert result.cutout(0).mode == "RGBA"
    assert result.overlay().size == (130, 90)


@pytest.mark.parametrize("mode", ["vocabulary", "grid"])
def test_empty_prompt_reaches_everything_mode_through_the_api(client, tiny_segmenter, rgb_image, mode):
    options = SegmentOptions(threshold=0.0, max_segments=5, everything_mode=mode)
    result = client.segment(rgb_image, prompt="", threshold=0.0, max_segments=5, everything_mode=mode)
    expected = tiny_segmenter.segment(rgb_image, [], options)
    assert result.labels == expected.labels
    np.testing.assert_array_equal(result.masks, expected.masks)
    if mode == "vocabulary":
        assert len(result) == 5 and set(result.labels) <= {c.label for c in tiny_segmenter.vocabulary}
    else:
        assert set(result.labels) <= {"object"}


@pytest.mark.parametrize(
    "make",
    [
        lambda arr, tmp: tmp / "img.png",  # a Path
        lambda arr, tmp: str(tmp / "img.png"),  # a str path
        lambda arr, tmp: (tmp / "img.png").read_bytes(),  # bytes
        lambda arr, tmp: Image.fromarray(arr),  # a PIL image
        lambda arr, tmp: arr,  # a numpy array
        lambda arr, tmp: "data:image/png;base64," + base64.b64encode(_png(arr)).decode(),  # a data URI (JSON)
    ],
)
def test_every_image_input_gives_the_same_answer_with_the_image_attached(client, rgb_image, tmp_path, make):
    (tmp_path / "img.png").write_bytes(_png(rgb_image))
    reference = client.segment(rgb_image, prompt="cat", threshold=0.0, max_segments=3)
    result = client.segment(make(rgb_image, tmp_path), prompt="cat", threshold=0.0, max_segments=3)
    np.testing.assert_array_equal(result.masks, reference.masks)
    np.testing.assert_array_equal(result.image, rgb_image)


def test_exif_rotated_file_attaches_the_rotated_image(client, rgb_image, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers turn the stored 130-high picture back into the upright 90 x 130 one
    stored = Image.fromarray(rgb_image).transpose(Image.Transpose.ROTATE_90)
    path = tmp_path / "rotated.png"
    stored.save(path, exif=exif)
    result = client.segment(path, prompt="cat", threshold=0.0, max_segments=2)
    assert result.image is not None and result.image.shape[:2] == result.image_size == (90, 130)
    np.testing.assert_array_equal(result.image, rgb_image)


@pytest.mark.parametrize("mask_format", ["polygon", "none"])
def test_other_mask_formats_decode(client, rgb_image, mask_format):
    result = client.segment(rgb_image, prompt="cat", threshold=0.0, max_segments=2, mask_format=mask_format)
    assert isinstance(result, SegmentationResult) and len(result) == 2
    if mask_format == "none":
        assert result.masks is None
    else:
        assert result.masks.shape == (2, 90, 130)


def test_models(client):
    assert [m["id"] for m in client.models()] == ["sam3"]


@pytest.mark.parametrize(
    "call, exc_type, status, code",
    [
        (lambda c, img: Client.segment(c, b"not an image"), InvalidImageError, 422, "invalid_image"),  # bad bytes
        (lambda c, img: c.segment(img, threshold=3), InvalidParameterError, 400, "invalid_parameter"),  # range
        (lambda c, img: c.segment("http://169.254.169.254/x"), InvalidRequestError, 400, "image_url_forbidden"),  # SSRF
    ],
)
def test_api_errors_raise_typed_exceptions(client, rgb_image, call, exc_type, status, code):
    with pytest.raises(exc_type) as info:
        call(client, rgb_image)
    assert (info.value.status, info.value.code) == (status, code)
    assert info.value.message


def test_wrong_key_and_unknown_model(test_client, rgb_image):
    transport = in_process(test_client)
    with Client("http://testserver", api_key="wrong", transport=transport) as c, pytest.raises(AuthenticationError):
        c.segment(rgb_image)
    with Client("http://testserver", api_key=KEY, model="sam2", transport=transport) as c:
        with pytest.raises(UnknownModelError) as info:
            c.segment(rgb_image)
        assert info.value.param == "model"


@pytest.mark.parametrize(
    "status, body, exc_type, code",
    [
        (
            429,
            {"error": {"message": "busy", "type": "rate_limit_error", "code": "server_busy"}},
            ServerBusyError,
            "server_busy",
        ),  # a known code
        (
            404,
            {"error": {"message": "nope", "type": "invalid_request_error", "code": "not_found"}},
            InvalidRequestError,
            "not_found",
        ),  # an unknown 4xx code keeps its status and code
        (502, "<html>Bad Gateway</html>", SegserveError, "internal_error"),  # a proxy's HTML page
    ],
)
def test_error_bodies_map_to_exceptions(status, body, exc_type, code, rgb_image):
    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, dict):
            return httpx.Response(status, json=body, headers={"Retry-After": "5"})
        return httpx.Response(status, text=body)

    transport = httpx.MockTransport(answer)
    with Client("http://x", api_key=KEY, transport=transport) as c, pytest.raises(exc_type) as info:
        c.segment(rgb_image)
    assert (info.value.status, info.value.code) == (status, code)
    if status == 429:
        assert info.value.headers["retry-after"] == "5"


def test_unreachable_server_raises_a_segserve_error(rgb_image):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with Client("http://x", transport=httpx.MockTransport(refuse)) as c, pytest.raises(ServerUnreachableError):
        c.segment(rgb_image)


def test_bad_image_argument_type():
    with Client("http://x") as c, pytest.raises(TypeError, match="image must be"):
        c.segment(12345)  # type: ignore[arg-type]


def test_async_client_round_trip(app, tiny_segmenter, rgb_image):
    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with AsyncClient("http://t", api_key=KEY, transport=transport) as c:
                models = await c.models()
                result = await c.segment(rgb_image, prompt="cat", threshold=0.0, max_segments=4)
                with pytest.raises(InvalidImageError):
                    await c.segment(b"")
                return models, result

    models, result = asyncio.run(go())
    expected = tiny_segmenter.segment(rgb_image, ["cat"], SegmentOptions(threshold=0.0, max_segments=4))
    assert [m["id"] for m in models] == ["sam3"]
    np.testing.assert_array_equal(result.masks, expected.masks)
    np.testing.assert_array_equal(result.image, rgb_image)
