"""The compiled vision encoder is exact: the criterion for making it a default (bench/README.md)."""

from __future__ import annotations

import numpy as np
import torch

from segserve.engine.sam3 import Sam3Segmenter
from segserve.types import SegmentOptions


def _compiled_layers(segmenter: Sam3Segmenter) -> list[bool]:
    return [layer._compiled_call_impl is not None for layer in segmenter.model.vision_encoder.backbone.layers]


def test_compile_is_opt_in(tiny_model_path):
    # It costs tens of seconds at warm-up and gained nothing on the CPU measured (bench/README.md).
    assert not any(_compiled_layers(Sam3Segmenter.from_pretrained(tiny_model_path, device="cpu")))


def test_compiled_vision_is_within_1e4_of_eager(tiny_model_path, tiny_segmenter, rgb_image):
    compiled = Sam3Segmenter.from_pretrained(tiny_model_path, device="cpu", compile_vision=True, cache=False)
    assert all(_compiled_layers(compiled))
    with torch.inference_mode():
        want = tiny_segmenter.model.get_vision_features(pixel_values=tiny_segmenter.preprocess(rgb_image))
        got = compiled.encode_image(rgb_image)
    for a, b in zip(got.fpn_hidden_states, want.fpn_hidden_states):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.backbone, want.last_hidden_state, atol=1e-4, rtol=0)

    options = SegmentOptions(threshold=0.25, max_segments=1000)
    ours, ref = (
        compiled.segment(rgb_image, ["cat", "dog"], options),
        tiny_segmenter.segment(rgb_image, ["cat", "dog"], options),
    )
    assert ours.labels == ref.labels
    np.testing.assert_allclose(ours.scores, ref.scores, atol=1e-4, rtol=0)
