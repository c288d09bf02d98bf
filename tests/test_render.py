"""Cutouts and overlays: what `SegmentationResult.cutout` / `.overlay` draw with `segserve.render`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from result_samples import three_segments
from segserve import render
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


# --- labels: placement and glyphs (issue 14.5, issue 12.6) --------------------------------------
def _nested_squares(sizes=(60, 40, 20), shape=(80, 100)) -> tuple[np.ndarray, np.ndarray]:
    """Squares that all start at the image's top-left corner: boxes sharing a corner."""
    masks = np.zeros((len(sizes), *shape), bool)
    for i, s in enumerate(sizes):
        masks[i, :s, :s] = True
    return masks, np.array([[0, 0, s, s] for s in sizes])


def test_chips_of_boxes_sharing_a_corner_do_not_overlap():
    masks, boxes = _nested_squares()
    tags = ["person 0.91", "helmet 0.85", "head 0.80"]
    chips = render.label_chips(tags, masks, boxes, render.label_font(12))
    height, width = masks.shape[1:]
    for i, (x1, y1, x2, y2) in enumerate(chips):
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, chips[i]
        for a1, b1, a2, b2 in chips[:i]:
            assert x2 <= a1 or a2 <= x1 or y2 <= b1 or b2 <= y1, chips  # disjoint
    assert len({c[:2] for c in chips}) == 3  # not piled on one corner


def test_a_free_chip_sits_at_the_masks_most_interior_point():
    mask = np.zeros((1, 60, 80), bool)
    mask[0, 10:50, 20:70] = True
    ((ax, ay),) = render.label_anchors(mask, np.array([[20, 10, 70, 50]]))
    assert abs(ax - 44.5) <= 1 and abs(ay - 29.5) <= 1  # the rectangle's centre
    ((x1, y1, x2, y2),) = render.place_chips([(20, 10)], [(ax, ay)], (80, 60))
    assert (x1 + x2) // 2 in (ax - 1, ax, ax + 1) and (y1 + y2) // 2 in (ay - 1, ay, ay + 1)


def test_the_anchor_of_a_ring_is_on_the_ring():
    yy, xx = np.mgrid[:81, :81]
    r = np.hypot(yy - 40, xx - 40)
    ring = ((r > 25) & (r < 38))[None]  # its centroid (40, 40) is outside it
    ((ax, ay),) = render.label_anchors(ring, np.array([[2, 2, 79, 79]]))
    assert ring[0, ay, ax]


def test_chinese_labels_are_glyphs_not_tofu():
    font = render.label_font(24)
    tofu = render.glyph_bitmap(font, "\U0010fffd")  # no font has it: the .notdef box
    bitmaps = {ch: render.glyph_bitmap(font, ch) for ch in "人安全帽"}
    assert len(set(bitmaps.values())) == 4  # each character its own shape
    assert all(bits != tofu and any(bits) for bits in bitmaps.values())
    # End to end: two labels that differ in one character give two different overlays (tofu
    # would draw both as the same boxes).
    masks, boxes = _nested_squares((60,), (80, 100))
    image = np.full((80, 100, 3), 100, np.uint8)
    one = np.asarray(render.overlay(image, masks, boxes, ["安全帽"]))
    other = np.asarray(render.overlay(image, masks, boxes, ["安全带"]))
    assert (one != other).any()


def test_without_a_cjk_font_labels_fall_back_to_the_default_font_and_say_so_once(monkeypatch, caplog):
    monkeypatch.setattr(render, "_fontconfig_cjk_fonts", list)
    monkeypatch.setattr(render, "_CJK_FONT_FILES", ())
    render.cjk_font_file.cache_clear()
    render.label_font.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="segserve.render"):
            assert render.cjk_font_file() is None and render.cjk_font_file() is None
            font = render.label_font(14)
            masks, boxes = _nested_squares((60,), (80, 100))
            render.overlay(np.zeros((80, 100, 3), np.uint8), masks, boxes, ["dog 0.9"])
        assert render.draws(font, "dog")  # Latin still drawn
        assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
        assert "fonts-noto-cjk" in caplog.records[0].getMessage() and len(caplog.records) == 1
    finally:
        render.cjk_font_file.cache_clear()
        render.label_font.cache_clear()
