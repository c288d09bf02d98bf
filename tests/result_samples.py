"""A small hand-made SegmentationResult shared by the result-type and drawing tests."""

from __future__ import annotations

import numpy as np

from segserve.types import SegmentationResult


def three_segments(with_image: bool = True) -> SegmentationResult:
    """20 x 30: a dog (0.91), a cat (0.8) and a one-pixel dog (0.51) in the top-left corner."""
    h, w = 20, 30
    masks = np.zeros((3, h, w), bool)
    masks[0, 2:10, 3:12] = True
    masks[1, 12:18, 20:29] = True
    masks[2, 0:1, 0:1] = True
    image = np.full((h, w, 3), 100, np.uint8) if with_image else None
    return SegmentationResult(
        masks=masks,
        boxes=[[3, 2, 12, 10], [20, 12, 29, 18], [0, 0, 1, 1]],
        scores=[0.91234, 0.8, 0.51],
        labels=["dog", "cat", "dog"],
        image_size=(h, w),
        image=image,
    )
