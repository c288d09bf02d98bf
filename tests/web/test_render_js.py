"""The playground's `render.js` paints the colours, opacity and outlines of the CLI's overlay
(`segserve.render`), so a mask looks the same in the browser and in a saved picture."""

from __future__ import annotations

import numpy as np
import pytest

from segserve.masks import rle_encode
from segserve.render import mask_edges, palette

MASK_LAYER = """
const { h, w, counts, opacity } = cases;
const segments = counts.map((c, index) => ({ index, crop: m.rle.rleToCrop(c, h, w) }));
const layer = m.render.composeMaskLayer(segments, w, h, { opacity, lineWidth: 1 });
return { palette: m.render.palette(40), layer: Array.from(layer) };
"""


@pytest.mark.parametrize("opacity", [0.5, 0.8])
def test_mask_layer_and_palette_match_the_cli_overlay(node, opacity: float) -> None:
    h, w = 41, 57
    yy, xx = np.mgrid[:h, :w]
    masks = np.stack(
        [
            (yy - 20) ** 2 + (xx - 20) ** 2 < 12**2,  # id 1, on top where it overlaps id 2
            (yy > 5) & (yy < 35) & (xx > 25) & (xx < 56),
            (yy == 0) | (xx == w - 1),  # touches the image border: all of it is outline
        ]
    )
    case = {"h": h, "w": w, "counts": [rle_encode(m)["counts"] for m in masks], "opacity": opacity}
    out = node({"rle": "rle.js", "render": "render.js"}, MASK_LAYER, case)
    assert [tuple(c) for c in out["palette"]] == palette(40)

    layer = np.array(out["layer"], np.uint8).reshape(h, w, 4)
    colors = np.array(palette(len(masks)), np.uint8)
    want = np.zeros((h, w, 4), np.uint8)
    for i in reversed(range(len(masks))):  # the highest confidence is drawn last, on top
        m = masks[i]
        want[m, :3] = colors[i]
        want[m, 3] = round(opacity * 255)
        want[mask_edges(m), 3] = 255
    assert (layer == want).all(), np.argwhere((layer != want).any(-1))[:5]
