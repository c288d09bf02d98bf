"""Interactive mode (clicks and/or a box around one object) on the SAM 3 tracker, against transformers'
`Sam3TrackerProcessor` + `Sam3TrackerModel` + `post_process_masks` on the tiny checkpoint.

Honest about the reference: `Sam3TrackerModel.from_pretrained` cannot read the tracker out of a SAM 3
(`sam3_video`) checkpoint (it reports every tracker weight missing), so the reference model is the
`Sam3TrackerModel` our loader fills (tests/engine/test_tracker.py checks that loading), run through
transformers' own path: `forward(pixel_values=...)`, which runs the ViT and the tracker neck itself
and adds the no-memory embedding as `Sam3TrackerModel` does. Ours reads the detector's cached ViT
output through `tracker_embeddings` (which follows `Sam3VideoModel`) instead: equal masks mean the
two paths agree.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import Sam3TrackerProcessor

from segserve.engine.sam3 import Sam3Segmenter
from segserve.prompts import Box, ObjectPrompt, Point
from segserve.types import SegmentOptions


@pytest.fixture(scope="module")
def seg(tiny_model_path):
    return Sam3Segmenter.from_pretrained(tiny_model_path, device="cpu")


@pytest.fixture(scope="module")
def tracker_processor(tiny_model_path):
    return Sam3TrackerProcessor.from_pretrained(tiny_model_path)


def reference_object(seg, processor, image: np.ndarray, prompt: ObjectPrompt):
    """transformers' interactive pipeline: (scores (K,), masks (K, H, W)) in the model's order."""
    kwargs = {}
    if prompt.points:
        kwargs["input_points"] = [[[[p.x, p.y] for p in prompt.points]]]
        kwargs["input_labels"] = [[[int(p.positive) for p in prompt.points]]]
    if prompt.box is not None:
        kwargs["input_boxes"] = [[list(prompt.box.xyxy)]]
    inputs = processor(images=image, return_tensors="pt", **kwargs)
    tracker = seg.grid.tracker
    with torch.no_grad():
        out = tracker(
            pixel_values=inputs["pixel_values"],
            input_points=inputs.get("input_points"),
            input_labels=inputs.get("input_labels"),
            input_boxes=inputs.get("input_boxes"),
            multimask_output=prompt.multimask,
        )
    masks = processor.post_process_masks(out.pred_masks, inputs["original_sizes"])[0][0].numpy()
    return out.iou_scores[0, 0].numpy(), masks


@pytest.mark.parametrize(
    "prompt",
    [
        ObjectPrompt(points=(Point(40, 30),)),  # one click: the tracker's one answer
        ObjectPrompt(points=(Point(40, 30),), multimask=True),  # ... or its 3 candidates
        ObjectPrompt(points=(Point(40.5, 30), Point(100, 70, positive=False), Point(20, 80))),  # +/- clicks
        ObjectPrompt(box=Box(10, 5, 60, 50)),  # a box only
        ObjectPrompt(points=(Point(30, 20), Point(55, 45, positive=False)), box=Box(10, 5, 60, 50), multimask=True),
    ],
)
def test_parity_with_the_reference_tracker(seg, tracker_processor, rgb_image, prompt):
    ours = seg.segment_object(rgb_image, prompt, SegmentOptions())
    scores, masks = reference_object(seg, tracker_processor, rgb_image, prompt)
    order = np.argsort(-scores, kind="stable")
    expected = [(float(scores[i]), masks[i]) for i in order if masks[i].any()]
    assert len(expected) == (3 if prompt.multimask else 1), "the tiny model should give non-empty masks here"
    assert len(ours) == len(expected)
    assert ours.labels == ["object"] * len(expected)
    np.testing.assert_allclose(ours.scores, np.clip([s for s, _ in expected], 0, 1), atol=1e-5, rtol=0)
    for got, (_, want) in zip(ours.masks, expected):
        np.testing.assert_array_equal(got, want)


def test_a_reclick_on_the_same_image_runs_no_vit(seg, rgb_image, monkeypatch):
    calls = []
    backbone = seg.model.vision_encoder.backbone
    original = backbone.forward

    def counting_forward(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(backbone, "forward", counting_forward)
    seg.vision_cache.clear()
    seg.segment_object(rgb_image, ObjectPrompt(points=(Point(40, 30),)))
    assert len(calls) == 1
    before = seg.stats["tracker_passes"]
    second = seg.segment_object(rgb_image, ObjectPrompt(points=(Point(40, 30), Point(90, 60, positive=False))))
    seg.segment(rgb_image, ["cat"], SegmentOptions(threshold=0.3))  # a text prompt on it afterwards: no ViT either
    assert len(calls) == 1
    assert seg.stats["tracker_passes"] - before == 1
    assert len(second) == 1


def test_answer_is_the_contract_json_and_honours_the_cap(seg, rgb_image):
    result = seg.segment_object(
        rgb_image, ObjectPrompt(points=(Point(40, 30),), multimask=True), SegmentOptions(max_segments=2)
    )
    body = result.to_dict()
    assert body["num_segments"] == 2
    assert [s["label"] for s in body["segments"]] == ["object", "object"]
    assert body["segments"][0]["confidence"] >= body["segments"][1]["confidence"]
