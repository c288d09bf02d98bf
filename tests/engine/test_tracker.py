"""The SAM 3 tracker: built around the detector's ViT (one copy in memory), fed from its cached
features, and loaded from either checkpoint key layout."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from segserve.engine.sam3 import Sam3Segmenter
from segserve.engine.tracker import load_tracker
from segserve.errors import ModelLoadError


@pytest.fixture(scope="module")
def seg(tiny_model_path):
    return Sam3Segmenter.from_pretrained(tiny_model_path, device="cpu")


def test_tracker_shares_the_detector_vit(seg):
    tracker = seg.grid.tracker
    detector_vit = seg.model.vision_encoder.backbone
    assert tracker.vision_encoder.backbone is detector_vit
    for (name, p), (_, q) in zip(detector_vit.named_parameters(), tracker.vision_encoder.backbone.named_parameters()):
        assert p.data_ptr() == q.data_ptr(), name
    # Counting storages: the two models together hold exactly one copy of the ViT.
    params = {p.data_ptr(): p.numel() for m in (seg.model, tracker) for p in m.parameters()}
    vit = sum(p.numel() for p in detector_vit.parameters())
    tracker_own = sum(p.numel() for p in tracker.parameters()) - vit
    assert sum(params.values()) == sum(p.numel() for p in seg.model.parameters()) + tracker_own


def test_tracker_features_from_the_cached_vit_equal_the_trackers_own_pass(seg, rgb_image):
    tracker = seg.grid.tracker
    with torch.inference_mode():
        features = seg.encode_image(rgb_image)
        ours = seg.grid.embeddings(features)
        # transformers' path: the tracker's own vision encoder on the pixels (flattened HW x B x C).
        theirs = tracker.get_image_features(seg.preprocess(rgb_image)).fpn_hidden_states
    for level in range(3):
        expected = theirs[level].permute(1, 2, 0).reshape(ours[level].shape)
        if level == 2:  # SAM 3's image predictor adds the no-memory embedding to the 1x level
            expected = expected + tracker.no_memory_embedding.reshape(1, -1, 1, 1)
        torch.testing.assert_close(ours[level], expected, rtol=1e-5, atol=1e-5)


def test_tracker_loads_the_facebook_sam3_key_layout(tiny_model_path, tmp_path, seg):
    # facebook/sam3 stores `tracker_model.<module>`; transformers' save wrote `tracker_model.tracker_model.`.
    real = tmp_path / "facebook-layout"
    shutil.copytree(tiny_model_path, real)
    weights = load_file(real / "model.safetensors")
    assert any(k.startswith("tracker_model.tracker_model.") for k in weights)
    renamed = {k.replace("tracker_model.tracker_model.", "tracker_model.", 1): v for k, v in weights.items()}
    save_file(renamed, real / "model.safetensors", metadata={"format": "pt"})
    backbone = seg.model.vision_encoder.backbone
    loaded = load_tracker(str(real), backbone).state_dict()
    reference = seg.grid.tracker.state_dict()
    assert loaded.keys() == reference.keys()
    for key in reference:
        torch.testing.assert_close(loaded[key], reference[key], rtol=0, atol=0, msg=key)


def test_tracker_missing_from_a_detector_only_checkpoint_is_a_clear_error(tiny_model_path, tmp_path, seg):
    from transformers import Sam3Model

    detector_only = tmp_path / "detector-only"
    seg.model.save_pretrained(detector_only)
    assert Sam3Model.from_pretrained(detector_only) is not None
    with pytest.raises(ModelLoadError, match="SEGSERVE_EVERYTHING_MODE=vocabulary"):
        load_tracker(str(detector_only), seg.model.vision_encoder.backbone)
