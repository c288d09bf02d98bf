"""Post-processing against a plain reimplementation: empty masks dropped, the cap, boxes, order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segserve.engine import postprocess
from segserve.masks import masks_to_boxes
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
