"""RLE on the wire, decoded in JavaScript: the playground's `rle.js` and the reference document's own
`rleDecode` (reference_rle_decode.mjs, copied verbatim but for its type annotations) both give back
exactly the masks `segserve.masks.rle_encode` (pycocotools) encoded."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from segserve.masks import mask_to_box, rle_encode

REFERENCE = Path(__file__).parent / "reference_rle_decode.mjs"


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(42)
    one_mid = np.zeros((37, 53), bool)
    one_mid[18, 26] = True
    one_last = np.zeros((480, 640), bool)
    one_last[-1, -1] = True
    blob = np.zeros((301, 207), bool)
    yy, xx = np.mgrid[:301, :207]
    blob[(yy - 150) ** 2 + (xx - 90) ** 2 < 70**2] = True
    first = [
        np.zeros((64, 48), bool),  # empty
        np.ones((64, 48), bool),  # full
        np.ones((1, 1), bool),  # one pixel, set
        np.zeros((1, 1), bool),  # one pixel, clear
        one_mid,  # one pixel in the middle
        one_last,  # ~300k zeros before it: multi-group counts
        np.eye(9, 13, dtype=bool),  # a diagonal
        rng.random((1, 17)) < 0.5,  # one row
        rng.random((19, 1)) < 0.5,  # one column
        rng.random((37, 53)) < 0.5,  # odd sizes, noisy
        rng.random((101, 99)) < 0.03,  # sparse
        rng.random((77, 131)) < 0.97,  # dense
        blob,  # a disc
    ]

    rng = np.random.default_rng(7)
    corner = np.zeros((31, 45), bool)
    corner[30, 0] = True
    one_last_big = np.zeros((513, 769), bool)
    one_last_big[-1, -1] = True
    ring = np.zeros((99, 141), bool)
    yy, xx = np.mgrid[:99, :141]
    d = (yy - 50) ** 2 + (xx - 70) ** 2
    ring[(d < 40**2) & (d > 25**2)] = True
    wrap = np.zeros((20, 30), bool)
    wrap[15:, 3] = True
    wrap[:4, 4] = True
    second = [
        np.zeros((48, 64), bool),  # empty, wider than tall
        np.ones((48, 64), bool),  # full, wider than tall
        np.ones((1, 1), bool),  # one pixel, set
        np.zeros((1, 1), bool),  # one pixel, clear
        corner,  # bottom-left corner: the run ends a column
        one_last_big,  # a 394k run of zeros first
        wrap,  # one run crossing from column 3 into column 4
        ring,  # a hole in the middle
        rng.random((1, 23)) < 0.5,  # one row
        rng.random((29, 1)) < 0.5,  # one column
        rng.random((37, 53)) < 0.5,  # odd sizes, noisy
        rng.random((101, 99)) < 0.02,  # sparse
        rng.random((77, 131)) < 0.98,  # dense
    ]
    return first + second


def _cases(masks: list[np.ndarray]) -> list[dict]:
    return [{"counts": rle_encode(m)["counts"], "h": m.shape[0], "w": m.shape[1]} for m in masks]


def _bits(s: str, shape: tuple[int, ...]) -> np.ndarray:
    return (np.frombuffer(s.encode(), np.uint8) == ord("1")).reshape(shape)


def test_reference_rle_decode_reads_our_rle(node):
    masks = _masks()
    decoded = node(
        {"ref": REFERENCE},
        'return cases.map((c) => m.ref.rleDecode(c.counts, c.h, c.w).map((row) => row.join("")).join(""));',
        _cases(masks),
    )
    for i, (want, got) in enumerate(zip(masks, decoded)):
        got = _bits(got, want.shape)
        assert (got == want).all(), f"case {i} ({want.shape}) differs in {(got != want).sum()} pixels"


RLE_JS = """
const bits = (arr) => Array.from(arr).join("");
return cases.map(({ counts, h, w }) => {
  const crop = m.rle.rleToCrop(counts, h, w);
  return {
    decode: m.rle.rleDecode(counts, h, w).map((row) => row.join("")).join(""),
    mask: bits(m.rle.rleToMask(counts, h, w)),
    crop: { x: crop.x, y: crop.y, width: crop.width, height: crop.height, area: crop.area,
            data: bits(crop.data) },
  };
});
"""


def test_rle_js_decodes_what_pycocotools_encodes(node):
    masks = _masks()
    results = node({"rle": "rle.js"}, RLE_JS, _cases(masks))
    for i, (m, got) in enumerate(zip(masks, results)):
        assert (_bits(got["decode"], m.shape) == m).all(), f"rleDecode, case {i}"
        assert (_bits(got["mask"], m.shape) == m).all(), f"rleToMask, case {i}"
        crop = got["crop"]
        assert crop["area"] == int(m.sum()), i
        if not m.any():
            assert (crop["width"], crop["height"], crop["data"]) == (0, 0, ""), i
            continue
        x1, y1, x2, y2 = mask_to_box(m)
        assert (crop["x"], crop["y"], crop["width"], crop["height"]) == (x1, y1, x2 - x1, y2 - y1), i
        assert (_bits(crop["data"], (y2 - y1, x2 - x1)) == m[y1:y2, x1:x2]).all(), f"rleToCrop, case {i}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"0\xff", "invalid character"),  # a byte outside the 64 characters of the counts alphabet
        (b"a", "middle of a value"),  # the last group says more groups follow
    ],
)
def test_rle_js_refuses_malformed_counts(node, raw, message):
    body = "try { m.rle.rleToMask(cases, 2, 2); return 'ok'; } catch (e) { return e.message; }"
    assert message in node({"rle": "rle.js"}, body, base64.b64encode(raw).decode())
