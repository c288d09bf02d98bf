"""Request-shape limits: fields, field sizes, duplicate images, and the upload size cap that must
act while the body streams in (bad-inputs.md, "Request shape" and the upload over max_image_bytes).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from api_support import AUTH, PATH, BrightSegmenter, app_client, assert_good_request_works, make_settings, png

from segserve.api import create_app


def _many_fields(n: int) -> dict[str, str]:
    return {"model": "sam3", "prompt": "thing", **{f"f{i}": "x" for i in range(n)}}


@pytest.mark.parametrize(
    "kwargs",
    [
        # 1,001 multipart fields (plus the file part)
        {"files": {"image": ("x.png", png(), "image/png")}, "data": _many_fields(1001)},
        # 1,001 urlencoded fields
        {"data": {**_many_fields(1001), "image": "https://images.example/x.png"}},
        # a 2 MB text field in multipart
        {"files": {"image": ("x.png", png(), "image/png")}, "data": {"model": "sam3", "prompt": "a" * 2_000_000}},
        # a 2 MB text field urlencoded
        {"data": {"model": "sam3", "image": "https://x.example/" + "a" * 2_000_000}},
        # both a file part and a URL for `image`
        {
            "files": [("image", ("x.png", png(), "image/png"))],
            "data": {"model": "sam3", "image": "https://images.example/x.png"},
        },
        # two file parts
        {"files": [("image", ("x.png", png(), "image/png")), ("image", ("y.png", png(), "image/png"))]},
        # the prompt sent twice
        {"files": {"image": ("x.png", png(), "image/png")}, "data": {"model": "sam3", "prompt": ["a", "b"]}},
        # `model` sent as a file
        {"files": [("image", ("x.png", png(), "image/png")), ("model", ("m.txt", b"sam3", "text/plain"))]},
    ],
)
def test_bad_form_shapes_are_400(client, kwargs):
    r = client.post(PATH, headers=AUTH, **kwargs)
    assert r.status_code == 400, r.text[:500]
    assert r.json()["error"]["code"] == "invalid_parameter"
    assert_good_request_works(client)


def test_1000_fields_are_still_fine(client):
    # the limit counts text fields; 1000 including model and prompt is at the limit, not over it
    r = client.post(PATH, headers=AUTH, files={"image": ("x.png", png(), "image/png")}, data=_many_fields(998))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"files": {"image": ("x.png", b"\0" * 20_001, "image/png")}, "data": {"model": "sam3"}},  # upload > limit
        {"json": {"model": "sam3", "image": "data:image/png;base64," + "A" * 40_000}},  # data URI > limit
    ],
)
def test_image_over_max_image_bytes_is_413(bright, kwargs):
    with app_client(bright, max_image_bytes=20_000, max_json_bytes=30_000) as c:
        r = c.post(PATH, headers=AUTH, **kwargs)
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "image_too_large"
        assert_good_request_works(c)


def test_declared_content_length_over_the_cap_is_refused_before_reading(bright):
    with app_client(bright, max_image_bytes=20_000) as c:
        r = c.post(
            PATH,
            headers={**AUTH, "Content-Type": "multipart/form-data; boundary=x", "Content-Length": "999999999"},
            content=b"",
        )
        assert r.status_code == 413


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=b", "application/json"])
def test_streamed_upload_is_cut_off_at_the_cap(content_type):
    """A chunked body (no Content-Length) of 100 x 64 KiB against a 100 KB limit: the server stops
    reading after a few chunks and answers 413, instead of buffering 6.4 MB."""
    settings = make_settings(max_image_bytes=100_000, max_json_bytes=100_000, max_field_bytes=10_000)
    app = create_app(settings, BrightSegmenter())
    pulled = 0

    async def body():
        nonlocal pulled
        prefix = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n'
        if content_type.startswith("application/json"):
            prefix = b'{"model": "sam3", "image": "data:image/png;base64,'
        yield prefix
        for _ in range(100):
            pulled += 1
            yield b"A" * 65536

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.post(PATH, headers={**AUTH, "Content-Type": content_type}, content=body())

    r = asyncio.run(go())
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "image_too_large"
    assert pulled < 10, f"read {pulled} chunks of 64 KiB past a 100 KB limit"
