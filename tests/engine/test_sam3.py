"""The SAM 3 engine against the reference transformers pipeline, on the tiny random checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Sam3Model, Sam3Processor

from segserve.engine.sam3 import Sam3Segmenter
from segserve.errors import ModelLoadError
from segserve.masks import masks_to_boxes
from segserve.prompts import Box, Concept, as_concepts
from segserve.types import SegmentOptions

# The tiny random model scores every query ~0.25; 0.25 keeps about half of them, so the
# threshold filter itself is exercised.
THRESHOLD = 0.25


@pytest.fixture(scope="module")
def reference(tiny_model_path):
    processor = Sam3Processor.from_pretrained(tiny_model_path)
    model = Sam3Model.from_pretrained(tiny_model_path).eval()
    return processor, model


def reference_segments(reference, image: np.ndarray, concepts: list[str], threshold: float, mask_threshold: float):
    """The transformers model-card pipeline, one full forward per concept, then our filter and order."""
    processor, model = reference
    rows = []
    for concept in concepts:
        inputs = processor(images=image, text=concept, return_tensors="pt")
        with torch.no_grad():
            outputs = model(**inputs)
        (result,) = processor.post_process_instance_segmentation(
            outputs, threshold=threshold, mask_threshold=mask_threshold, target_sizes=[image.shape[:2]]
        )
        for score, mask in zip(result["scores"].tolist(), result["masks"].numpy().astype(bool)):
            if mask.any():
                rows.append((score, concept, mask))
    rows.sort(key=lambda row: -row[0])  # stable: ties keep concept then query order
    return rows


@pytest.mark.parametrize(
    ("concepts", "mask_threshold"),
    [
        (["cat"], 0.5),  # one concept
        (["cat", "a red dog", "人"], 0.5),  # three concepts, one of them Chinese (read as "person")
        (["cat", "a red dog", "人"], 0.4999),  # a different mask cut-off
    ],
)
def test_parity_with_reference_pipeline(tiny_segmenter, reference, rgb_image, concepts, mask_threshold):
    ours = tiny_segmenter.segment(
        rgb_image, concepts, SegmentOptions(threshold=THRESHOLD, mask_threshold=mask_threshold, max_segments=1000)
    )
    # The reference is given what the engine's model reads: a Chinese concept's English (人 -> person).
    read = {c.text: c.label for c in as_concepts(concepts)}
    ref = [(score, read[text], mask) for score, text, mask in reference_segments(
        reference, rgb_image, list(read), THRESHOLD, mask_threshold
    )]  # fmt: skip
    assert len(ref) > 0, "the tiny model should detect something at this threshold"
    assert len(ref) < 20 * len(concepts), "the threshold should drop some queries"
    assert len(ours) == len(ref)
    assert ours.labels == [label for _, label, _ in ref]
    np.testing.assert_allclose(ours.scores, [score for score, _, _ in ref], atol=1e-4, rtol=0)
    for got, (_, _, want) in zip(ours.masks, ref):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ours.boxes, masks_to_boxes(ours.masks))
    assert ours.image_size == rgb_image.shape[:2]


# Exemplar boxes on the 90 x 130 test image (xyxy pixels): two boxes of different shapes.
BOX_A = (10.0, 5.0, 60.0, 50.0)
BOX_B = (70.5, 30.0, 125.0, 85.25)


def reference_exemplar_segments(reference, image, concept: Concept, threshold: float, mask_threshold: float):
    """transformers' exemplar pipeline for one concept: `Sam3Processor(images, text, input_boxes,
    input_boxes_labels)` + `Sam3Model` + `post_process_instance_segmentation` (text None -> "visual")."""
    processor, model = reference
    inputs = processor(
        images=image,
        text=concept.text,
        input_boxes=[[list(b.xyxy) for b in concept.boxes]],
        input_boxes_labels=[[int(b.positive) for b in concept.boxes]],
        return_tensors="pt",
    )
    with torch.no_grad():
        outputs = model(**inputs)
    (result,) = processor.post_process_instance_segmentation(
        outputs, threshold=threshold, mask_threshold=mask_threshold, target_sizes=[image.shape[:2]]
    )
    rows = [
        (score, concept.label, mask)
        for score, mask in zip(result["scores"].tolist(), result["masks"].numpy().astype(bool))
        if mask.any()
    ]
    return sorted(rows, key=lambda row: -row[0])  # stable: ties keep query order


def assert_same_segments(ours, ref):
    assert len(ref) > 0, "the tiny model should detect something at this threshold"
    assert len(ours) == len(ref)
    assert ours.labels == [label for _, label, _ in ref]
    np.testing.assert_allclose(ours.scores, [score for score, _, _ in ref], atol=1e-4, rtol=0)
    for got, (_, _, want) in zip(ours.masks, ref):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "concept",
    [
        Concept("helmet", boxes=(BOX_A,)),  # text + one positive exemplar
        Concept("hard hat", "helmet", boxes=(BOX_A, Box(*BOX_B, positive=False))),  # + a negative one
        Concept("visual", None, boxes=(BOX_A, BOX_B)),  # exemplars only: the model reads "visual"
        Concept("thing", None, boxes=(Box(*BOX_B, positive=False), BOX_A)),  # exemplars only, one negative
    ],
)
def test_exemplar_parity_with_reference_pipeline(tiny_segmenter, reference, rgb_image, concept):
    options = SegmentOptions(threshold=THRESHOLD, max_segments=1000)
    ours = tiny_segmenter.segment(rgb_image, [concept], options)
    assert_same_segments(ours, reference_exemplar_segments(reference, rgb_image, concept, THRESHOLD, 0.5))


def test_mixed_concepts_share_one_vision_pass_and_match_the_reference(tiny_segmenter, reference, rgb_image):
    # Text-only concepts and concepts with different numbers of boxes, in one request: the ViT runs
    # once, the detector once per kind (text-only apart: the geometry encoder would change their
    # answer), and every concept's segments equal the reference's run of that concept alone.
    concepts = [
        Concept("cat"),
        Concept("visual", None, boxes=(BOX_A, Box(*BOX_B, positive=False))),
        Concept("a red dog"),
        Concept("hat", "helmet", boxes=(BOX_B,)),
    ]
    tiny_segmenter.vision_cache.clear()
    before = dict(tiny_segmenter.stats)
    ours = tiny_segmenter.segment(rgb_image, concepts, SegmentOptions(threshold=THRESHOLD, max_segments=1000))
    assert tiny_segmenter.stats["vision_passes"] - before["vision_passes"] == 1
    assert tiny_segmenter.stats["detector_passes"] - before["detector_passes"] == 2
    ref = []
    for concept in concepts:
        if concept.boxes:
            ref += reference_exemplar_segments(reference, rgb_image, concept, THRESHOLD, 0.5)
        else:
            ref += reference_segments(reference, rgb_image, [concept.text], THRESHOLD, 0.5)
    ref.sort(key=lambda row: -row[0])
    assert_same_segments(ours, ref)


def test_vision_encoder_runs_once_for_three_concepts(tiny_segmenter, rgb_image, monkeypatch):
    calls = []
    backbone = tiny_segmenter.model.vision_encoder.backbone
    original = backbone.forward

    def counting_forward(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(backbone, "forward", counting_forward)
    # The session's segmenter may have this image cached from an earlier test: start cold.
    tiny_segmenter.vision_cache.clear()
    detector_before = tiny_segmenter.stats["detector_passes"]
    tiny_segmenter.segment(rgb_image, ["cat", "dog", "bird"], SegmentOptions(threshold=THRESHOLD))
    assert len(calls) == 1
    assert tiny_segmenter.stats["detector_passes"] - detector_before == 1  # all concepts in one batch


def test_many_concepts_are_chunked_with_the_same_result(tiny_model_path, rgb_image, tiny_segmenter):
    chunked = Sam3Segmenter.from_pretrained(tiny_model_path, device="cpu", concept_batch=2)
    concepts = ["cat", "dog", "bird", "car", "tree"]
    options = SegmentOptions(threshold=THRESHOLD, max_segments=1000)
    a = chunked.segment(rgb_image, concepts, options)
    b = tiny_segmenter.segment(rgb_image, concepts, options)
    assert chunked.stats["detector_passes"] == 3
    assert a.labels == b.labels
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    np.testing.assert_array_equal(a.masks, b.masks)


@pytest.mark.parametrize(
    ("options", "check"),
    [
        (SegmentOptions(threshold=THRESHOLD, max_segments=3), lambda r: len(r) == 3),  # the cap
        (SegmentOptions(threshold=0.99), lambda r: len(r) == 0),  # nothing this confident
        (SegmentOptions(threshold=THRESHOLD, mask_threshold=1.0), lambda r: len(r) == 0),  # empty masks dropped
        (SegmentOptions(threshold=0.0, max_segments=100), lambda r: len(r) == 40),  # every query of 2 concepts
    ],
)
def test_thresholds_and_cap(tiny_segmenter, rgb_image, options, check):
    result = tiny_segmenter.segment(rgb_image, ["cat", "dog"], options)
    assert check(result)
    assert list(result.scores) == sorted(result.scores, reverse=True)
    assert all(m.any() for m in result.masks)


def test_inputs_of_every_kind_give_the_same_answer(tiny_segmenter, rgb_image):
    options = SegmentOptions(threshold=THRESHOLD)
    base = tiny_segmenter.segment(rgb_image, ["cat"], options)
    rgba = np.dstack([rgb_image, np.full(rgb_image.shape[:2], 255, np.uint8)])
    for image in (Image.fromarray(rgb_image), Image.fromarray(rgba, "RGBA"), rgba):
        other = tiny_segmenter.segment(image, ["cat"], options)
        np.testing.assert_array_equal(other.masks, base.masks)
    gray = tiny_segmenter.segment(Image.fromarray(rgb_image).convert("L"), ["cat"], options)
    assert gray.image_size == rgb_image.shape[:2]


def test_exif_rotated_input_answers_in_the_rotated_frame(tiny_segmenter):
    img = Image.fromarray((np.random.default_rng(3).random((40, 70, 3)) * 255).astype(np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    import io

    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    result = tiny_segmenter.segment(Image.open(io.BytesIO(buf.getvalue())), ["cat"], SegmentOptions(threshold=0.0))
    assert result.image_size == (70, 40)
    assert result.masks.shape[1:] == (70, 40)


def test_overlong_concept_is_truncated_not_crashing(tiny_segmenter, rgb_image):
    result = tiny_segmenter.segment(rgb_image, ["word " * 100], SegmentOptions(threshold=0.0, max_segments=5))
    assert len(result) == 5


@pytest.mark.parametrize(
    ("mask", "runs"),
    [
        ([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], 5),  # right padding, rows of different lengths
        ([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]], 6),  # one row fills the width
        ([[0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 1, 1]], 6),  # left padding: the full width, as the reference
    ],
)
def test_text_features_skip_only_trailing_padding(tiny_segmenter, mask, runs):
    model = tiny_segmenter.model
    input_ids = torch.randint(1, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor(mask)
    with torch.inference_mode():
        want = model.get_text_features(input_ids=input_ids, attention_mask=mask).pooler_output
        got = tiny_segmenter._text_features(input_ids, mask)
    assert got.shape == want.shape
    # The positions the encoder ran are the full pass's; after them, zeros (the mask weighs them 0).
    assert (got[:, :runs] - want[:, :runs]).abs().max() < 1e-5
    assert not got[:, runs:].any()


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("/nonexistent/sam3", "No SAM 3 checkpoint directory"),  # a path that isn't there
        ("./", "no config.json"),  # a directory that is not a checkpoint
    ],
)
def test_missing_local_model_says_what_to_do(source, match):
    with pytest.raises(ModelLoadError, match=match) as info:
        Sam3Segmenter.from_pretrained(source)
    assert "SEGSERVE_MODEL" in info.value.message


def test_gated_or_unreachable_hub_model_says_what_to_do(monkeypatch):
    # Offline mode makes the hub lookup fail the same way a machine with no network or no login does.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError) as info:
        Sam3Segmenter.from_pretrained("facebook/sam3-not-cached-here")
    message = info.value.message
    assert "hf auth login" in message and "SEGSERVE_MODEL" in message and "licence" in message


def test_gated_error_is_recognised(monkeypatch):
    import httpx
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    def gated(*args, **kwargs):
        request = httpx.Request("HEAD", "https://huggingface.co/facebook/sam3/resolve/main/config.json")
        raise GatedRepoError(
            "401 Client Error. Cannot access gated repo.", response=httpx.Response(401, request=request)
        )

    # The hub's answer to the one probe that loading makes (engine/loading.py; no network here).
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", gated)
    with pytest.raises(ModelLoadError, match="is gated"):
        Sam3Segmenter.from_pretrained("facebook/sam3")


def test_from_settings_honours_every_engine_knob(tiny_model_path):
    from segserve.settings import Settings

    settings = Settings(
        model=str(tiny_model_path),
        device="cpu",
        concept_batch=3,
        cache_mb=7,
        text_cache_size=5,
        everything_mode="vocabulary",
        vocabulary="cat, dog",
    )
    seg = Sam3Segmenter.from_settings(settings)
    assert seg.model_id == str(tiny_model_path) and seg.device.type == "cpu" and seg.dtype == torch.float32
    assert seg.settings.concept_batch == 3
    assert seg.vision_cache.stats()["capacity"] == 7 * 1024 * 1024
    assert seg.text_cache.stats()["capacity"] == 5
    assert [c.label for c in seg.vocabulary] == ["cat", "dog"]
    seg.segment(np.zeros((20, 30, 3), np.uint8), [], SegmentOptions(everything_mode="vocabulary", threshold=0.0))
    assert seg.stats["detector_passes"] == 1 and seg.stats["tracker_passes"] == 0  # 2 concepts <= the batch of 3
