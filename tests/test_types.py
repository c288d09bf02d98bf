"""SegmentationResult: validation, the wire format both ways, and the pictures users want."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segserve.masks import rle_decode
from segserve.types import SegmentationResult, SegmentOptions


def _result(with_image: bool = True) -> SegmentationResult:
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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"boxes": np.zeros((2, 4))}, r"boxes must have shape \(3, 4\)"),  # one box short
        ({"labels": ["a"]}, "labels must have 3 entries"),  # labels short
        ({"masks": np.zeros((3, 5, 5), bool)}, r"masks must have shape \(3, 20, 30\)"),  # wrong mask size
        ({"image": np.zeros((5, 5, 3), np.uint8)}, "image must be uint8 of shape"),  # wrong image size
    ],
)
def test_validation_says_expected_and_got(kwargs, match):
    base = _result()
    fields = {
        "masks": base.masks,
        "boxes": base.boxes,
        "scores": base.scores,
        "labels": base.labels,
        "image_size": base.image_size,
        "image": base.image,
        **kwargs,
    }
    with pytest.raises(ValueError, match=match):
        SegmentationResult(**fields)


def test_to_dict_is_the_contract_json():
    data = _result().to_dict()
    assert data["num_segments"] == 3 == len(data["segments"])
    first = data["segments"][0]
    assert first == {
        "id": 1,
        "label": "dog",
        "confidence": 0.9123,
        "bbox": [3, 2, 12, 10],
        "mask": {"encoding": "rle", "size": [20, 30], "counts": first["mask"]["counts"]},
    }
    assert [s["id"] for s in data["segments"]] == [1, 2, 3]
    assert rle_decode(first["mask"]).sum() == 8 * 9


@pytest.mark.parametrize("mask_format", ["rle", "polygon"])
def test_dict_round_trip(mask_format):
    original = _result()
    back = SegmentationResult.from_dict(original.to_dict(mask_format))
    assert back.labels == original.labels
    np.testing.assert_allclose(back.scores, [0.9123, 0.8, 0.51], atol=1e-6)
    np.testing.assert_array_equal(back.boxes, original.boxes)
    if mask_format == "rle":
        np.testing.assert_array_equal(back.masks, original.masks)
    else:  # polygons follow pixel borders, so hole-free masks come back exactly
        np.testing.assert_array_equal(back.masks, original.masks)


def test_boxes_only_and_empty():
    data = _result().to_dict("none")
    assert all("mask" not in s for s in data["segments"])
    back = SegmentationResult.from_dict(data)
    assert back.masks is None and len(back) == 3
    empty = SegmentationResult.empty((4, 5))
    assert len(empty) == 0 and list(empty) == [] and empty.to_dict() == {"num_segments": 0, "segments": []}
    assert len(SegmentationResult.from_dict(empty.to_dict())) == 0
    with pytest.raises(ValueError, match="mask_format"):
        empty.to_dict("png")


def test_iteration_counts_and_areas():
    result = _result()
    segs = list(result)
    assert [s.id for s in segs] == [1, 2, 3]
    assert segs[0].bbox == (3, 2, 12, 10) and segs[0].area == 72
    assert result[-1].label == "dog"
    assert result.counts() == {"dog": 2, "cat": 1}
    np.testing.assert_array_equal(result.areas, [72, 54, 1])
    with pytest.raises(IndexError):
        result[3]


def test_cutout_is_rgba_with_transparent_background():
    result = _result()
    cut = result.cutout(0)
    assert cut.mode == "RGBA" and cut.size == (9, 8)
    alpha = np.asarray(cut)[:, :, 3]
    assert (alpha == 255).all()  # a rectangle mask fills its own box
    full = np.asarray(result.cutout(1, crop=False))
    assert full.shape == (20, 30, 4)
    assert (full[:, :, 3][result.masks[1]] == 255).all() and (full[:, :, 3][~result.masks[1]] == 0).all()


def test_overlay_colours_masks_only():
    result = _result()
    img = np.asarray(result.overlay(labels=False, outline=False))
    assert img.shape == (20, 30, 3)
    assert (img[5, 6] != 100).any()  # inside mask 0: tinted
    assert (img[19, 0] == 100).all()  # outside every mask: untouched
    labelled = result.overlay()
    assert isinstance(labelled, Image.Image) and labelled.size == (30, 20)


def test_pictures_need_an_image():
    with pytest.raises(ValueError, match="image="):
        _result(with_image=False).cutout(0)
    ok = _result(with_image=False).overlay(image=np.zeros((20, 30, 3), np.uint8))
    assert ok.size == (30, 20)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 1.5},  # above 1
        {"threshold": -0.1},  # below 0
        {"mask_threshold": 2},  # above 1
        {"max_segments": 0},  # nothing to return
    ],
)
def test_options_are_validated(kwargs):
    with pytest.raises(ValueError):
        SegmentOptions(**kwargs)
