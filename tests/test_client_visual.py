"""The SDK's visual prompts (exemplar boxes, typed concepts, interactive clicks) against the real app
in-process with the tiny SAM 3: each call's answer equals the engine's own for the same request, over
JSON (data URI) and multipart (an array) alike, sync and async."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import segserve
from segserve.api import create_app
from segserve.client import AsyncClient, Client
from segserve.errors import InvalidParameterError
from segserve.prompts import Box, Concept, ObjectPrompt, Point
from segserve.settings import Settings
from segserve.types import SegmentationResult, SegmentOptions

KEY = "sdk-key"
OPTIONS = {"threshold": 0.25, "max_segments": 50}


@pytest.fixture(scope="module")
def app(tiny_segmenter):
    return create_app(Settings(_env_file=None, api_keys=KEY, warmup=False), tiny_segmenter)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as tc:

        def handle(request: httpx.Request) -> httpx.Response:
            r = tc.request(request.method, str(request.url), headers=dict(request.headers), content=request.read())
            return httpx.Response(r.status_code, headers=r.headers.multi_items(), content=r.content)

        with Client("http://testserver", api_key=KEY, transport=httpx.MockTransport(handle)) as c:
            yield c


def data_uri(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def assert_same(got: SegmentationResult, want: SegmentationResult) -> None:
    assert len(want) > 0
    assert got.labels == want.labels
    np.testing.assert_allclose(got.scores, want.scores, atol=5e-5)  # the wire rounds to 4 decimals
    np.testing.assert_array_equal(got.masks, want.masks)


@pytest.mark.parametrize("as_uri", [False, True], ids=["multipart", "json"])
def test_prompt_with_exemplar_boxes(client, tiny_segmenter, rgb_image, as_uri):
    image = data_uri(rgb_image) if as_uri else rgb_image
    got = client.segment(
        image, prompt="helmet", boxes=[(10, 5, 60, 50), (70, 30, 125, 85)], box_labels=[1, 0], **OPTIONS
    )
    concept = Concept("helmet", boxes=(Box(10, 5, 60, 50), Box(70, 30, 125, 85, positive=False)))
    assert_same(got, tiny_segmenter.segment(rgb_image, [concept], SegmentOptions(**OPTIONS)))
    # The same boxes as `Box` objects carry their own labels.
    again = client.segment(image, prompt="helmet", boxes=list(concept.boxes), **OPTIONS)
    np.testing.assert_array_equal(again.masks, got.masks)


def test_typed_concepts_each_with_exemplars(client, tiny_segmenter, rgb_image):
    concepts = [
        segserve.Concept("hard hat", "helmet", boxes=[(10, 5, 60, 50)]),
        segserve.Concept("visual", None, boxes=[segserve.Box(70, 30, 125, 85), Box(0, 0, 20, 20, positive=False)]),
        "cat",
    ]
    got = client.segment(rgb_image, concepts=concepts, **OPTIONS)
    want = tiny_segmenter.segment(rgb_image, [*concepts[:2], Concept("cat")], SegmentOptions(**OPTIONS))
    assert_same(got, want)
    assert {"hard hat", "visual", "cat"} >= set(got.labels)


@pytest.mark.parametrize("multimask", [False, True])
def test_clicks_and_a_box_segment_one_object(client, tiny_segmenter, rgb_image, multimask):
    got = client.segment(
        rgb_image, points=[(40, 30), Point(100, 70, positive=False)], box=(10, 5, 60, 50), multimask=multimask
    )
    prompt = ObjectPrompt((Point(40, 30), Point(100, 70, positive=False)), Box(10, 5, 60, 50), multimask)
    assert_same(got, tiny_segmenter.segment_object(rgb_image, prompt))
    assert len(got) == (3 if multimask else 1) and set(got.labels) == {"object"}


def test_a_bad_box_raises_the_typed_error_naming_the_field(client, rgb_image):
    with pytest.raises(InvalidParameterError) as info:
        client.segment(rgb_image, prompt="helmet", boxes=[(10, 5, 131, 50)])  # the image is 130 wide
    assert info.value.param == "boxes" and info.value.status == 400
    with pytest.raises(InvalidParameterError) as info:
        client.segment(rgb_image, points=[(1, 1)], point_labels=[1, 1])
    assert info.value.param == "point_labels"


def test_async_client_sends_the_same_fields(app, tiny_segmenter, rgb_image):
    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with AsyncClient("http://t", api_key=KEY, transport=transport) as c:
                exemplars = await c.segment(rgb_image, boxes=[(10, 5, 60, 50)], **OPTIONS)
                clicked = await c.segment(data_uri(rgb_image), points=[(40, 30)], multimask=True)
                return exemplars, clicked

    exemplars, clicked = asyncio.run(go())
    visual = Concept("visual", None, boxes=[(10, 5, 60, 50)])
    assert_same(exemplars, tiny_segmenter.segment(rgb_image, [visual], SegmentOptions(**OPTIONS)))
    prompt = ObjectPrompt((Point(40, 30),), multimask=True)
    assert_same(clicked, tiny_segmenter.segment_object(rgb_image, prompt))


def test_the_new_types_are_exported():
    assert {"Concept", "Box", "Point", "ObjectPrompt"} <= set(segserve.__all__)
