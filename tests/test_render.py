"""Cutouts and overlays: what `SegmentationResult.cutout` / `.overlay` draw with `segserve.render`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from result_samples import three_segments
from segserve.render import mask_edges, palette
from segserve.types import SegmentationResult


def test_cutout_is_rgba_with_transparent_background():
    result = three_segments()
    cut = result.cutout(0)
    assert cut.mode == "RGBA" and cut.size == (9, 8)
    alpha = np.asarray(cut)[:, :, 3]
    assert (alpha == 255).all()  # a rectangle mask fills its own box
    full = np.asarray(result.cutout(1, crop=False))
    assert full.shape == (20, 30, 4)
    assert (full[:, :, 3][result.masks[1]] == 255).all() and (full[:, :, 3][~result.masks[1]] == 0).all()


def test_overlay_colours_masks_only():
    result = three_segments()
    img = np.asarray(result.overlay(labels=False, outline=False))
    assert img.shape == (20, 30, 3)
    assert (img[5, 6] != 100).any()  # inside mask 0: tinted
    assert (img[19, 0] == 100).all()  # outside every mask: untouched
    labelled = result.overlay()
    assert isinstance(labelled, Image.Image) and labelled.size == (30, 20)


def test_pictures_need_an_image():
    with pytest.raises(ValueError, match="image="):
        three_segments(with_image=False).cutout(0)
    ok = three_segments(with_image=False).overlay(image=np.zeros((20, 30, 3), np.uint8))
    assert ok.size == (30, 20)


def test_palette_colours_are_distinct_and_stable():
    colours = palette(40)
    assert len(set(colours)) == 40 and palette(3) == colours[:3]


def test_mask_edges_are_the_border_pixels_inside_the_mask():
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    edges = mask_edges(mask)
    assert edges.sum() == 8 and not edges[2, 2] and not (edges & ~mask).any()


def test_outlines_are_drawn_in_the_segments_colour():
    result = three_segments()
    img = np.asarray(result.overlay(labels=False, opacity=0.0))
    assert tuple(img[2, 3]) == palette(3)[0]  # a corner of mask 0's border
    assert (img[5, 6] == 100).all()  # its inside, with opacity 0: untouched


def test_a_result_without_masks_cannot_be_drawn():
    image = np.zeros((20, 30, 3), np.uint8)
    boxes_only = SegmentationResult(None, [[0, 0, 1, 1]], [0.9], ["dog"], (20, 30), image=image)
    with pytest.raises(ValueError, match="no masks"):
        boxes_only.overlay()
