"""`display-mask.js`: a mask at its shown size straight from the RLE runs, its outline, the point a
label goes on, and label boxes nudged apart. Checked against numpy on the decoded mask."""

from __future__ import annotations

import numpy as np
import pytest

from segserve.masks import rle_encode

SHOWN = """
const out = [];
for (const { counts, h, w, dw, dh } of cases) {
  const runs = m.rle.decodeCounts(counts);
  const { area, box, shown } = m.dm.runsToShownMask(runs, h, w, dw, dh);
  out.push({ area, box, shown: { ...shown, data: Array.from(shown.data) },
             edge: Array.from(m.dm.edgePixels(shown, 1)), inner: m.dm.innerPoint(shown) });
}
return out;
"""


def _nearest(mask: np.ndarray, dw: int, dh: int) -> np.ndarray:
    """The canvas's nearest-neighbour rule: shown pixel d samples image pixel floor((d + 0.5) * size / shown)."""
    h, w = mask.shape
    ys = np.floor((np.arange(dh) + 0.5) * h / dh).astype(int)
    xs = np.floor((np.arange(dw) + 0.5) * w / dw).astype(int)
    return mask[np.ix_(ys, xs)]


def _masks() -> list[np.ndarray]:
    h, w = 97, 131
    yy, xx = np.mgrid[:h, :w]
    return [
        (yy - 40) ** 2 + (xx - 60) ** 2 < 30**2,  # a disc
        (yy > 10) & (yy < 90) & (xx > 100),  # touches the right border
        (xx == 0) | (yy == h - 1),  # the left and bottom borders: runs that wrap columns
        np.zeros((h, w), bool),  # empty
        (yy == 50) & (xx == 70),  # one pixel: too small to be sampled when shrunk
        (yy + xx) % 7 == 0,  # thin diagonals: many runs
    ]


@pytest.mark.parametrize(("dw", "dh"), [(131, 97), (64, 48), (100, 31), (13, 9)])
def test_the_shown_mask_is_the_nearest_neighbour_sample_of_the_decoded_mask(node, dw: int, dh: int) -> None:
    masks = _masks()
    cases = [{"counts": rle_encode(m)["counts"], "h": m.shape[0], "w": m.shape[1], "dw": dw, "dh": dh} for m in masks]
    out = node({"rle": "rle.js", "dm": "display-mask.js"}, SHOWN, cases)
    for mask, got in zip(masks, out):
        assert got["area"] == int(mask.sum())
        if mask.any():
            ys, xs = np.nonzero(mask)
            assert got["box"] == {
                "x": xs.min(),
                "y": ys.min(),
                "width": xs.max() - xs.min() + 1,
                "height": ys.max() - ys.min() + 1,
            }
        want = _nearest(mask, dw, dh)
        s = got["shown"]
        full = np.zeros((dh, dw), bool)
        if s["width"]:
            full[s["y"] : s["y"] + s["height"], s["x"] : s["x"] + s["width"]] = np.array(s["data"], bool).reshape(
                s["height"], s["width"]
            )
        if want.any():
            assert (full == want).all()
            ys, xs = np.nonzero(want)
            assert (s["x"], s["y"], s["width"], s["height"]) == (
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            )  # tight
        elif mask.any():
            assert full.sum() == 1, "a mask too small to sample keeps one shown pixel"
        else:
            assert s["width"] == 0 and not full.any()
        if s["width"]:
            data = np.array(s["data"], bool).reshape(s["height"], s["width"])
            edge = np.array(got["edge"], bool).reshape(data.shape)
            padded = np.pad(data, 1)
            inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
            assert (edge == (data & ~inner)).all()
            ix, iy = int(got["inner"][0] - s["x"]), int(got["inner"][1] - s["y"])
            assert data[iy, ix], "the label point is not inside the mask"


def test_the_label_point_is_deep_inside_the_mask(node) -> None:
    h = w = 120
    yy, xx = np.mgrid[:h, :w]
    # An L shape: its box's centre is outside it; its deepest point is in the thick vertical bar.
    mask = ((xx < 40) & (yy < 110)) | ((yy > 90) & (xx < 110))
    out = node(
        {"rle": "rle.js", "dm": "display-mask.js"},
        SHOWN,
        [{"counts": rle_encode(mask)["counts"], "h": h, "w": w, "dw": w, "dh": h}],
    )
    x, y = out[0]["inner"]
    assert mask[int(y), int(x)]
    assert 10 <= x <= 30, (x, y)


PLACE = "return m.dm.placeLabels(cases.items, cases.w, cases.h);"


def test_labels_sharing_a_corner_are_nudged_apart_and_stay_inside(node) -> None:
    items = [{"anchor": [50, 40], "width": 70 + 3 * i, "height": 18} for i in range(12)]  # all on one point
    items += [{"anchor": [395, 5], "width": 60, "height": 18}]  # at the corner: clamped inside
    rects = node({"dm": "display-mask.js"}, PLACE, {"items": items, "w": 400, "h": 300})
    for i, a in enumerate(rects):
        assert a["x"] >= 0 and a["y"] >= 0 and a["x"] + a["width"] <= 400 and a["y"] + a["height"] <= 300, a
        for b in rects[i + 1 :]:
            apart = (
                a["x"] + a["width"] <= b["x"]
                or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"]
                or b["y"] + b["height"] <= a["y"]
            )
            assert apart, (a, b)
    # The first keeps its own place: centred on its point.
    assert rects[0] == {"x": 15, "y": 31, "width": 70, "height": 18}
