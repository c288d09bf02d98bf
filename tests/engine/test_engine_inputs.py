"""The in-process engine takes the images the SDK takes (a path, bytes, PIL, an array; not a URL)
and a prompt string, so the README's engine example works as the SDK's does (issue 14.2)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segserve.errors import ImageTooLargeError
from segserve.prompts import parse_prompt
from segserve.types import SegmentOptions

OPTIONS = SegmentOptions(threshold=0.0, max_segments=5)


def _same(a, b) -> None:
    assert a.labels == b.labels and np.array_equal(a.boxes, b.boxes) and np.array_equal(a.masks, b.masks)


def test_a_path_bytes_pil_and_array_give_the_same_answer(tiny_segmenter, rgb_image, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(rgb_image).save(path)
    expected = tiny_segmenter.segment(rgb_image, ["cat"], OPTIONS)
    assert len(expected) == 5
    for given in (path, str(path), path.read_bytes(), Image.open(path)):
        _same(tiny_segmenter.segment(given, ["cat"], OPTIONS), expected)


def test_a_prompt_string_is_parsed_like_the_sdks(tiny_segmenter, rgb_image):
    _same(
        tiny_segmenter.segment(rgb_image, "cat, dog", OPTIONS),
        tiny_segmenter.segment(rgb_image, parse_prompt("cat, dog"), OPTIONS),
    )


def test_a_url_is_refused_with_what_to_do(tiny_segmenter):
    with pytest.raises(TypeError, match="not URLs"):
        tiny_segmenter.segment("https://example.com/photo.jpg", "cat")


def test_a_file_is_held_to_the_settings_limits(tiny_segmenter, tmp_path):
    path = tmp_path / "sliver.png"
    Image.new("RGB", (2000, 10)).save(path)  # 200:1, over the default 100:1
    with pytest.raises(ImageTooLargeError, match="aspect ratio"):
        tiny_segmenter.segment(path, "cat")
