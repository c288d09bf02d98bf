"""The request and result types: options resolved against settings, SegmentationResult's validation,
selection, merging and the wire format both ways."""

from __future__ import annotations

import numpy as np
import pytest

from result_samples import three_segments
from segserve.errors import InvalidParameterError, InvalidPromptError
from segserve.masks import encode_rles, rle_decode
from segserve.settings import Settings
from segserve.types import SegmentationResult, SegmentOptions, SegmentRequest


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
    base = three_segments()
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
    data = three_segments().to_dict()
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
def test_to_dict_and_from_dict_round_trip(mask_format):
    original = three_segments()
    back = SegmentationResult.from_dict(original.to_dict(mask_format))
    assert back.labels == original.labels
    np.testing.assert_allclose(back.scores, [0.9123, 0.8, 0.51], atol=1e-6)
    np.testing.assert_array_equal(back.boxes, original.boxes)
    if mask_format == "rle":
        np.testing.assert_array_equal(back.masks, original.masks)
    else:  # polygons follow pixel borders, so hole-free masks come back exactly
        np.testing.assert_array_equal(back.masks, original.masks)


def test_boxes_only_and_empty_results_round_trip():
    data = three_segments().to_dict("none")
    assert all("mask" not in s for s in data["segments"])
    back = SegmentationResult.from_dict(data)
    assert back.masks is None and len(back) == 3
    empty = SegmentationResult.empty((4, 5))
    assert len(empty) == 0 and list(empty) == []
    assert empty.to_dict() == {"num_segments": 0, "segments": [], "concepts": []}
    assert len(SegmentationResult.from_dict(empty.to_dict())) == 0
    with pytest.raises(ValueError, match="mask_format"):
        empty.to_dict("png")


def test_segments_carry_ids_boxes_and_areas_and_labels_are_counted():
    result = three_segments()
    segs = list(result)
    assert [s.id for s in segs] == [1, 2, 3]
    assert segs[0].bbox == (3, 2, 12, 10) and segs[0].area == 72
    assert result[-1].label == "dog"
    assert result.counts() == {"dog": 2, "cat": 1}
    np.testing.assert_array_equal(result.areas, [72, 54, 1])
    with pytest.raises(IndexError):
        result[3]


# --- selection and merging ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "labels"),
    [
        (np.array([2, 0]), ["dog", "dog"]),  # indices, in the order given
        (np.array([True, False, True]), ["dog", "dog"]),  # a boolean mask
        (slice(1, None), ["cat", "dog"]),  # a slice
        (np.array([], dtype=np.int64), []),  # nothing: an empty result of the same image
    ],
)
def test_selecting_rows_gives_a_result_of_those_rows(rows, labels):
    result = three_segments()
    picked = result[rows]
    assert isinstance(picked, SegmentationResult) and picked.labels == labels
    want = np.arange(3)[rows]
    np.testing.assert_array_equal(picked.masks, result.masks[want])
    np.testing.assert_array_equal(picked.boxes, result.boxes[want])
    np.testing.assert_array_equal(picked.scores, result.scores[want])
    assert picked.image_size == result.image_size and picked.image is result.image


def test_a_boolean_mask_of_the_wrong_length_is_refused():
    with pytest.raises(IndexError):
        three_segments()[np.array([True, False])]


def test_merge_sorts_by_confidence_and_keeps_ties_in_order():
    result = three_segments()
    a, b = result[np.array([1, 2])], result[np.array([0])]  # cat 0.8, dog 0.51 | dog 0.91
    tie = result[np.array([1])]
    merged = SegmentationResult.merge([a, b, tie])
    assert merged.labels == ["dog", "cat", "cat", "dog"]
    np.testing.assert_array_equal(merged.scores, np.float32([0.91234, 0.8, 0.8, 0.51]))
    np.testing.assert_array_equal(merged.masks[0], result.masks[0])
    assert SegmentationResult.merge([a, SegmentationResult.empty(a.image_size)]).labels == ["cat", "dog"]


def test_merge_refuses_results_of_different_images():
    with pytest.raises(ValueError, match="different images"):
        SegmentationResult.merge([three_segments(), SegmentationResult.empty((5, 5))])


# --- options and requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "value"),
    [
        ({}, "threshold", 0.5),  # nothing given: the setting
        ({"threshold": None}, "threshold", 0.5),  # None means "not given"
        ({"threshold": 0.25}, "threshold", 0.25),  # a number
        ({"threshold": "0.25"}, "threshold", 0.25),  # a form field's string
        ({"max_segments": "7"}, "max_segments", 7),  # an integer from a form
        ({"mask_format": "polygon"}, "mask_format", "polygon"),  # a choice
        ({"everything_mode": "vocabulary"}, "everything_mode", "vocabulary"),  # the everything mode is an option too
    ],
)
def test_resolve_takes_each_given_value_else_the_setting(overrides, field, value):
    assert getattr(SegmentOptions.resolve(None, **overrides), field) == value


def test_resolve_falls_back_to_the_servers_settings():
    settings = Settings.defaults().replace(threshold=0.3, max_segments=7, everything_mode="vocabulary")
    options = SegmentOptions.resolve(settings, max_segments=2)
    assert (options.threshold, options.max_segments, options.everything_mode) == (0.3, 2, "vocabulary")


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"threshold": 1.5}, "threshold"),  # above 1
        ({"threshold": -0.1}, "threshold"),  # below 0
        ({"threshold": "abc"}, "threshold"),  # not a number
        ({"threshold": True}, "threshold"),  # JSON true is not 1.0
        ({"threshold": float("nan")}, "threshold"),  # NaN
        ({"mask_threshold": 2}, "mask_threshold"),  # above 1
        ({"max_segments": 0}, "max_segments"),  # nothing to return
        ({"max_segments": 10_001}, "max_segments"),  # over the limit in Settings
        ({"max_segments": 2.5}, "max_segments"),  # not an integer
        ({"mask_format": "png"}, "mask_format"),  # not a mask format
        ({"everything_mode": "panoptic"}, "everything_mode"),  # not a mode
    ],
)
def test_resolve_refuses_bad_values_naming_the_field(overrides, param):
    with pytest.raises(InvalidParameterError) as info:
        SegmentOptions.resolve(None, **overrides)
    assert info.value.param == param and info.value.status == 400


def test_an_unknown_option_is_a_programming_error():
    with pytest.raises(TypeError, match="unknown option 'treshold'"):
        SegmentOptions.resolve(None, treshold=0.3)


def test_request_resolves_the_prompt_within_the_settings_limits():
    request = SegmentRequest.resolve(None, prompt="dog, cat，dog", mask_format="none")
    assert [c.label for c in request.concepts] == ["dog", "cat"] and request.options.mask_format == "none"
    assert SegmentRequest.resolve(None).concepts == ()  # no prompt: segment everything
    with pytest.raises(InvalidPromptError, match="3 concepts"):
        SegmentRequest.resolve(Settings.defaults().replace(max_concepts=2), prompt="a, b, c")


# --- masks kept as RLE -----------------------------------------------------------------------------


def _compact() -> SegmentationResult:
    dense = three_segments()
    return SegmentationResult(
        None, dense.boxes, dense.scores, dense.labels, dense.image_size, dense.image, rles=encode_rles(dense.masks)
    )


def test_a_result_kept_as_rle_answers_like_the_dense_one():
    dense, compact = three_segments(), _compact()
    for fmt in ("rle", "polygon", "none"):
        assert compact.to_dict(fmt) == dense.to_dict(fmt)
    np.testing.assert_array_equal(compact.areas, dense.areas)
    np.testing.assert_array_equal(compact.mask(1), dense.masks[1])
    np.testing.assert_array_equal(compact[np.array([2, 0])].masks, dense.masks[[2, 0]])  # selection keeps RLEs
    merged = SegmentationResult.merge([compact[np.array([1])], compact[np.array([0, 2])]])
    np.testing.assert_array_equal(merged.masks, dense.masks)
    np.testing.assert_array_equal(compact.masks, dense.masks)  # decoded on first use


def test_rles_must_match_the_rows_and_the_image():
    dense = three_segments()
    with pytest.raises(ValueError, match="rles must have 3 entries"):
        SegmentationResult(None, dense.boxes, dense.scores, dense.labels, dense.image_size, rles=[])
    other = encode_rles(np.zeros((3, 5, 5), bool))
    with pytest.raises(ValueError, match=r"rles must be of size \(20, 30\)"):
        SegmentationResult(None, dense.boxes, dense.scores, dense.labels, dense.image_size, rles=other)


def test_concepts_travel_with_the_result_and_over_the_wire():
    from segserve.prompts import Concept
    from segserve.types import ConceptText

    concepts = [Concept("人", "person"), Concept("visual", None, ((1, 1, 3, 3),))]
    result = SegmentationResult(
        masks=np.ones((2, 4, 5), bool), boxes=[[0, 0, 5, 4]] * 2, scores=[0.9, 0.8], labels=["人", "visual"],
        image_size=(4, 5), concepts=concepts,
    )  # fmt: skip
    wire = result.to_dict()
    assert wire["concepts"] == [{"label": "人", "text": "person"}, {"label": "visual", "text": None}]
    assert SegmentationResult.from_dict(wire).concepts == (ConceptText("人", "person"), ConceptText("visual", None))
    assert result[1:].concepts == result.concepts  # a selection of segments answers the same request
    assert SegmentationResult.merge([result, result[:1]]).concepts == result.concepts
    assert SegmentationResult.from_dict({"num_segments": 0, "segments": []}).concepts == ()  # a reference server
