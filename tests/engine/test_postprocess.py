"""Post-processing: detections -> result against a plain reimplementation (empty masks dropped, the cap,
boxes, order), and everything-mode's mask maths (stability, mask IoU, NMS)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segserve.engine import postprocess
from segserve.engine.postprocess import greedy_nms, mask_iou, rle_nms, stability_score
from segserve.masks import encode_rles, masks_to_boxes
from segserve.types import SegmentOptions


def plain(scores, low_res, concepts, size, options):
    """Upsample everything, then filter: the obvious (slow) way."""
    c_idx, q_idx = torch.nonzero(scores >= options.threshold, as_tuple=True)
    kept = scores[c_idx, q_idx]
    order = torch.argsort(kept, descending=True, stable=True)
    probs = low_res[c_idx[order], q_idx[order]].sigmoid()
    full = torch.nn.functional.interpolate(probs.unsqueeze(0), size=size, mode="bilinear", align_corners=False)[0]
    masks = (full > options.mask_threshold).numpy()
    nonempty = masks.any(axis=(1, 2))
    masks = masks[nonempty][: options.max_segments]
    labels = [concepts[i] for i in c_idx[order][torch.from_numpy(nonempty)].tolist()][: options.max_segments]
    return masks, kept[order][torch.from_numpy(nonempty)][: options.max_segments].numpy(), labels


@pytest.mark.parametrize(
    ("max_segments", "chunk"),
    [
        (100, 16),  # no cap
        (5, 16),  # the cap falls inside the first chunk, after empty masks
        (7, 3),  # several chunks, each cut to the free slots
        (100, 1),  # one mask per chunk
    ],
)
def test_postprocess_matches_the_plain_way(monkeypatch, max_segments, chunk):
    monkeypatch.setattr(postprocess, "UPSAMPLE_CHUNK", chunk)
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(2, 10, generator=gen)
    low_res = torch.randn(2, 10, 8, 8, generator=gen)
    low_res[:, ::3] = -20.0  # every third query: an empty mask at any size
    concepts, size = ["a", "b"], (37, 53)
    options = SegmentOptions(threshold=0.2, mask_threshold=0.5, max_segments=max_segments)
    got = postprocess.detections_to_result(scores, low_res, concepts, size, options, None)
    masks, kept_scores, labels = plain(scores, low_res, concepts, size, options)
    assert 0 < len(got) <= max_segments
    np.testing.assert_array_equal(got.masks, masks)
    np.testing.assert_array_equal(got.scores, kept_scores)
    np.testing.assert_array_equal(got.boxes, masks_to_boxes(masks))
    assert got.labels == labels


def test_stability_score():
    logits = torch.tensor([[[3.0, 0.5], [-0.5, -3.0]], [[-5.0, -5.0], [-5.0, -5.0]]])
    # cut 0, offset 1: mask 0 has 1 pixel above +1 and 3 above -1; mask 1 is empty even when loose.
    assert stability_score(logits, 0.0, 1.0).tolist() == [pytest.approx(1 / 3), 0.0]


def test_mask_nms_keeps_the_first_of_overlapping_masks():
    a = np.zeros((10, 10), bool)
    a[:5, :5] = True
    b = a.copy()
    b[5, 0] = True  # IoU(a, b) = 25/26
    c = np.zeros((10, 10), bool)
    c[6:, 6:] = True
    masks = np.stack([a, b, c])
    iou = mask_iou(torch.from_numpy(masks))
    assert iou[0, 1] == pytest.approx(25 / 26) and iou[0, 2] == 0
    assert greedy_nms(iou, 0.7) == [0, 2]
    assert rle_nms(encode_rles(masks), 0.7, limit=100) == [0, 2]
    assert rle_nms(encode_rles(masks), 0.7, limit=1) == [0]  # stops once `limit` are kept
    assert rle_nms([], 0.7, limit=100) == []


@pytest.mark.parametrize(
    ("threshold", "corner", "side"),
    [
        (0.3, 20, (8, 20)),  # 60 rectangles in a crowd: 9 kept
        (0.5, 20, (8, 20)),  # 29 kept
        (0.7, 20, (8, 20)),  # 54 kept
        (0.9, 6, (15, 20)),  # near-duplicates only: 48 kept
    ],
)
def test_rle_nms_keeps_what_greedy_nms_keeps_on_the_full_iou_matrix(threshold, corner, side):
    rng = np.random.default_rng(int(threshold * 100))
    masks = np.zeros((60, 40, 50), bool)
    for m in masks:
        y, x = rng.integers(0, corner), rng.integers(0, corner)
        m[y : y + rng.integers(*side), x : x + rng.integers(*side)] = True
    expected = greedy_nms(mask_iou(torch.from_numpy(masks)), threshold)
    assert rle_nms(encode_rles(masks), threshold, limit=len(masks)) == expected
    assert rle_nms(encode_rles(masks), threshold, limit=5) == expected[:5]


def test_big_images_are_upsampled_one_mask_at_a_time_with_the_same_answer(monkeypatch):
    gen = torch.Generator().manual_seed(1)
    scores, low_res = torch.rand(1, 6, generator=gen), torch.randn(1, 6, 8, 8, generator=gen)
    options = SegmentOptions(threshold=0.0, mask_threshold=0.5, max_segments=100)
    whole = postprocess.detections_to_result(scores, low_res, ["a"], (37, 53), options, None)
    monkeypatch.setattr(postprocess, "CHUNK_BYTES", 1)  # room for less than one mask: one per chunk
    chunked = postprocess.detections_to_result(scores, low_res, ["a"], (37, 53), options, None)
    np.testing.assert_array_equal(chunked.masks, whole.masks)
    np.testing.assert_array_equal(chunked.boxes, whole.boxes)
    assert chunked.rles is not None and len(chunked.rles) == len(whole) == 6
