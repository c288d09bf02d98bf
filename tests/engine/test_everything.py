"""Segment-everything (an empty prompt) on the tiny random SAM 3: grid and vocabulary modes.

Random weights predict IoUs near 0.5 and unstable masks, so the fixture's grid filters are open
(thresholds 0) to leave something to check; each filter is then checked on its own.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from segserve.cli import main
from segserve.engine.everything import point_grid
from segserve.engine.sam3 import Sam3Segmenter
from segserve.masks import masks_to_boxes, rle_decode
from segserve.prompts import Concept
from segserve.settings import COCO_CATEGORIES, Settings
from segserve.types import SegmentOptions

GRID = SegmentOptions(threshold=0.0, everything_mode="grid")
VOCABULARY = SegmentOptions(threshold=0.0, everything_mode="vocabulary")
NMS = 0.7


@pytest.fixture(scope="module")
def seg(tiny_model_path):
    return Sam3Segmenter.from_pretrained(
        tiny_model_path,
        device="cpu",
        grid_points=8,  # 64 points, 192 candidate masks
        grid_batch=16,  # 4 tracker passes: batching is exercised
        pred_iou_thresh=0.0,
        stability_thresh=0.0,
        nms_thresh=NMS,
        min_region_area=0,
        vocabulary="cat, dog, car",
        concept_batch=2,  # the 3-concept vocabulary takes 2 detector passes, so the pool merge runs
    )


def with_config(seg: Sam3Segmenter, vocabulary: list[str] | None = None, **changes) -> Sam3Segmenter:
    """`seg` with other settings (and `vocabulary` as given, repeats kept), sharing its models and tracker."""
    other = Sam3Segmenter(seg.model, seg.processor, model_id=seg.model_id, settings=seg.settings, **changes)
    other.grid.tracker = seg.grid.tracker
    if vocabulary is not None:
        other.vocabulary = [Concept(c) for c in vocabulary]
    return other


def pairwise_iou(masks: np.ndarray) -> np.ndarray:
    flat = masks.reshape(len(masks), -1).astype(np.float64)
    inter = flat @ flat.T
    area = flat.sum(1)
    return inter / (area[:, None] + area[None, :] - inter)


def max_overlap(result) -> float:
    """The largest IoU between two different masks of `result` (0 for fewer than two)."""
    if len(result) < 2:
        return 0.0
    return float(pairwise_iou(result.masks)[~np.eye(len(result), dtype=bool)].max())


def assert_valid(result, labels: set[str]) -> None:
    """Sorted by confidence, no duplicate masks, tight boxes, labels from `labels`, scores in [0, 1]."""
    assert np.all(np.diff(result.scores) <= 0)
    assert np.all((result.scores >= 0) & (result.scores <= 1))
    assert set(result.labels) <= labels
    assert result.masks.reshape(len(result), -1).any(axis=1).all()
    assert (result.boxes == masks_to_boxes(result.masks)).all()
    assert max_overlap(result) < NMS


# --- grid mode -----------------------------------------------------------------------------------


def test_grid_returns_sorted_masks_without_duplicates(seg, rgb_image):
    passes = seg.stats["tracker_passes"]
    result = seg.segment(rgb_image, [], GRID)
    assert len(result) > 1
    assert result.labels == ["object"] * len(result)
    assert_valid(result, {"object"})
    assert seg.stats["tracker_passes"] - passes == 4  # 64 points in batches of 16


def test_grid_runs_the_vit_once_and_reuses_it_for_a_text_prompt(seg, rgb_image):
    image = rgb_image[::-1].copy()  # content no other test has cached
    before = seg.stats["vision_passes"]
    seg.segment(image, [], GRID)
    seg.segment(image, ["cat"], GRID)
    seg.segment(image, [], VOCABULARY)
    assert seg.stats["vision_passes"] - before == 1


@pytest.mark.parametrize(
    "changes, check",
    [
        ({"pred_iou_thresh": 0.5}, lambda r, _: np.all(r.scores >= 0.5)),  # confidence is the predicted IoU
        ({"min_region_area": 4000}, lambda r, _: np.all(r.areas >= 4000)),  # small regions dropped
        ({"nms_thresh": 0.3}, lambda r, _: max_overlap(r) < 0.3),  # stricter NMS
        ({"stability_thresh": 1.0}, lambda r, n: len(r) <= n),  # only perfectly stable masks survive
    ],
)  # fmt: skip
def test_grid_filters(seg, rgb_image, changes, check):
    everything = seg.segment(rgb_image, [], GRID)
    result = with_config(seg, **changes).segment(rgb_image, [], GRID)
    assert len(result) <= len(everything)
    assert check(result, len(everything))


def test_grid_honours_threshold_and_max_segments(seg, rgb_image):
    everything = seg.segment(rgb_image, [], GRID)
    cut = float(np.median(everything.scores))
    assert np.all(seg.segment(rgb_image, [], SegmentOptions(threshold=cut, everything_mode="grid")).scores >= cut)
    capped = seg.segment(rgb_image, [], SegmentOptions(threshold=0.0, max_segments=3, everything_mode="grid"))
    assert len(capped) == 3
    assert np.allclose(capped.scores, everything.scores[:3])


def test_grid_with_default_filters_is_a_valid_answer(seg, rgb_image):
    # SAM's 0.88 / 0.95 filters: random weights may leave nothing, which must still be a valid answer.
    result = with_config(seg, pred_iou_thresh=0.88, stability_thresh=0.95, min_region_area=100).segment(
        rgb_image, [], SegmentOptions(everything_mode="grid")
    )
    assert np.all(result.scores >= 0.88)
    assert result.to_dict()["num_segments"] == len(result)


def test_point_grid_is_cell_centres():
    grid = point_grid(2)
    assert grid.tolist() == [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]


# --- vocabulary mode -----------------------------------------------------------------------------


def test_vocabulary_labels_come_from_the_list(seg, rgb_image):
    passes = seg.stats["detector_passes"]
    result = seg.segment(rgb_image, [], VOCABULARY)
    assert seg.stats["detector_passes"] - passes == 2  # 3 concepts, 2 per pass
    assert len(result) > 1
    assert_valid(result, {"cat", "dog", "car"})
    assert len(set(result.labels)) > 1


def test_vocabulary_merges_overlapping_detections(seg, rgb_image):
    once = with_config(seg, vocabulary=["thing"]).segment(rgb_image, [], VOCABULARY)
    # The same concept three times over two passes: every detection appears thrice, one copy is kept.
    thrice = with_config(seg, vocabulary=["thing"] * 3).segment(rgb_image, [], VOCABULARY)
    assert len(once) > 0
    assert_valid(thrice, {"thing"})
    assert len(thrice) == len(once)
    for a, b in zip(once.masks, thrice.masks):
        assert (a & b).sum() / (a | b).sum() > 0.95


def test_vocabulary_honours_threshold_and_max_segments(seg, rgb_image):
    everything = seg.segment(rgb_image, [], VOCABULARY)
    cut = float(np.median(everything.scores))
    kept = seg.segment(rgb_image, [], SegmentOptions(threshold=cut, everything_mode="vocabulary"))
    assert len(kept) > 0 and np.all(kept.scores >= cut)
    assert (
        len(seg.segment(rgb_image, [], SegmentOptions(threshold=0.0, max_segments=2, everything_mode="vocabulary")))
        == 2
    )


# --- choosing the mode, the wire format, settings, CLI ------------------------------------------


def test_the_options_choose_the_mode_and_grid_is_the_default(seg, rgb_image):
    assert set(seg.segment(rgb_image, [], SegmentOptions(threshold=0.0)).labels) == {"object"}
    assert set(seg.segment(rgb_image, [], VOCABULARY).labels) <= {"cat", "dog", "car"}


@pytest.mark.parametrize("mode", ["grid", "vocabulary"])
@pytest.mark.parametrize("mask_format", ["rle", "polygon", "none"])
def test_answers_the_contract_json(seg, rgb_image, mode, mask_format):
    result = seg.segment(rgb_image, [], SegmentOptions(threshold=0.0, max_segments=5, everything_mode=mode))
    body = json.loads(json.dumps(result.to_dict(mask_format)))
    assert body["num_segments"] == len(body["segments"]) == len(result)
    assert [s["id"] for s in body["segments"]] == list(range(1, len(result) + 1))
    for s in body["segments"]:
        assert ("mask" in s) == (mask_format != "none")
        if mask_format == "rle":
            assert s["mask"]["size"] == [90, 130] and rle_decode(s["mask"]).any()


def test_vocabulary_comes_from_settings_parsed_like_a_prompt(seg):
    other = Sam3Segmenter(
        seg.model, seg.processor, settings=Settings.defaults(), vocabulary="cat， dog,cat;  traffic  light"
    )
    assert [c.label for c in other.vocabulary] == ["cat", "dog", "traffic light"]
    assert [c.label for c in Sam3Segmenter(seg.model, seg.processor).vocabulary] == list(COCO_CATEGORIES)
    assert len(COCO_CATEGORIES) == len(set(COCO_CATEGORIES)) == 80


@pytest.mark.parametrize(
    "bad",
    [
        {"everything_mode": "panoptic"},  # unknown mode
        {"grid_points": 0},  # no grid
        {"pred_iou_thresh": 1.5},  # IoU above 1
        {"nms_thresh": 0.0},  # everything is a duplicate
        {"min_region_area": -1},  # negative area
        {"vocabulary": " , ;"},  # nothing to look for
    ],
)
def test_settings_refuse_bad_everything_knobs(bad):
    with pytest.raises(ValueError):
        Settings.defaults().replace(**bad)


@pytest.mark.parametrize("mode, labels", [("grid", {"object"}), ("vocabulary", {"cat", "dog"})])
def test_cli_segments_everything_with_an_empty_prompt(tiny_model_path, tmp_path, rgb_image, monkeypatch, mode, labels):
    from PIL import Image

    photo, out = tmp_path / "photo.png", tmp_path / "out.json"
    Image.fromarray(rgb_image).save(photo)
    for name, value in {
        "GRID_POINTS": "4",
        "PRED_IOU_THRESH": "0",
        "STABILITY_THRESH": "0",
        "VOCABULARY": "cat, dog",
    }.items():
        monkeypatch.setenv(f"SEGSERVE_{name}", value)
    argv = ["segment", str(photo), "--model", str(tiny_model_path), "--device", "cpu", "--threshold", "0"]
    assert main([*argv, "--everything-mode", mode, "--json", str(out)]) == 0
    body = json.loads(out.read_text())
    assert body["num_segments"] > 0
    assert {s["label"] for s in body["segments"]} <= labels
