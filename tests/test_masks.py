"""RLE, boxes and polygons: round trips for every encoding."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from segserve.masks import (
    decode_rles,
    mask_to_box,
    mask_to_polygons,
    masks_to_boxes,
    polygons_to_mask,
    rle_decode,
    rle_encode,
    rle_encode_many,
)


def _masks() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    one = np.zeros((5, 7), bool)
    one[2, 3] = True
    corner = np.zeros((4, 4), bool)
    corner[-1, -1] = True
    return [
        ("empty", np.zeros((6, 9), bool)),
        ("full", np.ones((6, 9), bool)),
        ("one pixel", one),
        ("last pixel", corner),
        ("1x1 set", np.ones((1, 1), bool)),
        ("1x1 clear", np.zeros((1, 1), bool)),
        ("odd random", rng.random((37, 53)) > 0.5),
        ("tall thin", rng.random((101, 3)) > 0.3),
        ("wide thin", rng.random((2, 257)) > 0.7),
        ("large blobs", np.kron(rng.random((20, 30)) > 0.5, np.ones((17, 13), bool))),
    ]


@pytest.mark.parametrize(("name", "mask"), _masks(), ids=[n for n, _ in _masks()])
def test_rle_round_trip(name, mask):
    rle = rle_encode(mask)
    assert rle["size"] == list(mask.shape)
    assert isinstance(rle["counts"], str)
    np.testing.assert_array_equal(rle_decode(rle), mask)


@pytest.mark.parametrize(("name", "mask"), _masks(), ids=[n for n, _ in _masks()])
def test_rle_is_base64_of_pycocotools_counts(name, mask):
    raw = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]
    assert base64.b64decode(rle_encode(mask)["counts"]) == raw
    # decode accepts the raw counts too (what pycocotools writes into COCO JSON files)
    np.testing.assert_array_equal(rle_decode({"size": list(mask.shape), "counts": raw.decode()}), mask)
    np.testing.assert_array_equal(rle_decode({"size": list(mask.shape), "counts": raw}), mask)


def test_rle_encode_many_matches_one_by_one():
    stack = np.random.default_rng(1).random((5, 19, 23)) > 0.5
    assert rle_encode_many(stack) == [rle_encode(m) for m in stack]
    assert rle_encode_many(np.zeros((0, 4, 4), bool)) == []


@pytest.mark.parametrize(
    ("bad", "fn"),
    [
        (np.zeros((2, 2, 2), bool), rle_encode),  # 3-D into the single-mask encoder
        (np.zeros((2, 2), bool), rle_encode_many),  # 2-D into the batch encoder
    ],
)
def test_rle_rejects_wrong_rank(bad, fn):
    with pytest.raises(ValueError, match="mask"):
        fn(bad)


@pytest.mark.parametrize(
    ("cells", "shape", "box"),
    [
        ([(0, 0)], (3, 4), (0, 0, 1, 1)),  # top-left pixel: x2/y2 exclusive
        ([(2, 3)], (3, 4), (3, 2, 4, 3)),  # bottom-right pixel touches the edges
        ([(1, 1), (2, 3)], (5, 5), (1, 1, 4, 3)),  # two pixels span a box
    ],
)
def test_mask_to_box(cells, shape, box):
    mask = np.zeros(shape, bool)
    for y, x in cells:
        mask[y, x] = True
    assert mask_to_box(mask) == box
    np.testing.assert_array_equal(masks_to_boxes(mask[None])[0], box)


def test_mask_to_box_rejects_empty_and_batch_gives_zeros():
    with pytest.raises(ValueError):
        mask_to_box(np.zeros((3, 3), bool))
    np.testing.assert_array_equal(masks_to_boxes(np.zeros((1, 3, 3), bool)), [[0, 0, 0, 0]])


def test_polygons_round_trip_a_rectangle_and_a_disc():
    rect = np.zeros((40, 60), bool)
    rect[5:20, 10:50] = True
    yy, xx = np.mgrid[:40, :60]
    disc = (yy - 25) ** 2 + (xx - 30) ** 2 <= 100
    for mask in (rect, disc):
        polys = mask_to_polygons(mask)
        assert polys and all(len(p) % 2 == 0 and len(p) >= 6 for p in polys)
        # polygons run along pixel borders, so they rasterise back to the very same pixels
        np.testing.assert_array_equal(polygons_to_mask(polys, *mask.shape), mask)
        simplified = mask_to_polygons(mask, tolerance=1.0)
        assert sum(map(len, simplified)) <= sum(map(len, polys))


def test_polygon_of_one_pixel_is_its_square():
    mask = np.zeros((5, 5), bool)
    mask[2, 3] = True
    assert mask_to_polygons(mask) == [[3, 2, 3, 3, 4, 3, 4, 2]]
    np.testing.assert_array_equal(polygons_to_mask(mask_to_polygons(mask), 5, 5), mask)


def test_polygons_of_two_regions_and_of_nothing():
    mask = np.zeros((30, 30), bool)
    mask[2:8, 2:8] = True
    mask[20:28, 15:25] = True
    assert len(mask_to_polygons(mask)) == 2
    assert mask_to_polygons(np.zeros((5, 5), bool)) == []
    assert not polygons_to_mask([], 5, 5).any()


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m,  # C-ordered bool, as the engine returns
        lambda m: m[:, ::2, 1:],  # a strided view
        lambda m: m.astype(np.uint8),  # uint8 0/1
        lambda m: np.ascontiguousarray(m.transpose(0, 2, 1)).transpose(0, 2, 1),  # already column-major
    ],
)
def test_rle_encode_many_equals_one_by_one(make):
    masks = make(np.random.default_rng(0).random((3, 37, 53)) > 0.5)
    assert rle_encode_many(masks) == [rle_encode(m.astype(bool)) for m in masks]


def _shapes_for_fast_paths() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(11)
    blob = np.zeros((40, 60), bool)
    blob[5:30, 10:50] = True
    blob[12:20, 20:30] = False  # a hole
    return [
        *_masks(),
        ("blob with a hole", blob),
        ("one row", rng.random((1, 300)) > 0.5),  # 1 x N, the aspect-ratio limit's shape
        ("one column", rng.random((300, 1)) > 0.5),  # N x 1
        ("one pixel", np.ones((1, 1), bool)),
        ("noise", rng.random((97, 131)) > 0.5),  # thousands of runs and contours
        ("uint8 0/255", (rng.random((20, 30)) > 0.5).astype(np.uint8) * 255),  # not bool
        ("strided view", (rng.random((50, 80)) > 0.3)[::2, 1::3]),  # not contiguous
    ]


@pytest.mark.parametrize(("name", "mask"), _shapes_for_fast_paths())
def test_polygons_are_those_of_the_kron_upscale_they_replaced(name, mask):
    # The reference: the original construction, np.pad(np.kron(...)), traced the same way. The
    # strided upscale must give the very same array, hence the very same polygons, vertex for vertex.
    import cv2

    up = np.pad(np.kron(np.asarray(mask, dtype=np.uint8), np.ones((2, 2), np.uint8)), 1)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    expected = []
    for contour in contours:
        points = contour.reshape(-1, 2).astype(np.int64) - 1
        points = np.where(points % 2 == 0, points // 2, (points + 1) // 2)
        if len(points) >= 3:
            expected.append([int(v) for v in points.reshape(-1)])
    assert mask_to_polygons(mask) == expected, name


@pytest.mark.parametrize(("name", "mask"), _shapes_for_fast_paths())
def test_decode_rles_is_pycocotools_decode_c_ordered(name, mask):
    binary = np.asarray(mask).astype(bool)
    rles = [
        coco_mask.encode(np.asfortranarray(binary, dtype=np.uint8)),
        coco_mask.encode(np.asfortranarray(~binary, dtype=np.uint8)),
    ]
    out = decode_rles(rles, *binary.shape)
    assert out.dtype == bool and out.flags.c_contiguous, name
    np.testing.assert_array_equal(out, np.stack([binary, ~binary]), err_msg=name)


def test_decode_rles_refuses_a_mask_of_another_size():
    rle = coco_mask.encode(np.asfortranarray(np.ones((4, 5), np.uint8)))
    with pytest.raises(ValueError, match=r"mask 0 is \(4, 5\), expected \(5, 4\)"):
        decode_rles([rle], 5, 4)
    assert decode_rles([], 3, 2).shape == (0, 3, 2)
