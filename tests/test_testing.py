"""The tiny checkpoint is a real SAM 3 directory: transformers' own loaders read it offline."""

from __future__ import annotations

import json

import torch
from transformers import Sam3Model, Sam3Processor


def test_tiny_checkpoint_has_the_real_layout(tiny_model_path):
    names = {p.name for p in tiny_model_path.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= names
    config = json.loads((tiny_model_path / "config.json").read_text())
    assert config["model_type"] == "sam3_video"  # like facebook/sam3: detector + tracker in one file
    total = sum(p.stat().st_size for p in tiny_model_path.iterdir())
    assert total < 20 * 1024 * 1024


def test_transformers_loads_the_tiny_checkpoint_offline(tiny_model_path, monkeypatch, rgb_image):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    processor = Sam3Processor.from_pretrained(tiny_model_path)
    model = Sam3Model.from_pretrained(tiny_model_path).eval()
    inputs = processor(images=rgb_image, text="cat", return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    assert outputs.pred_masks.shape[:2] == (1, 20)
    assert torch.isfinite(outputs.pred_logits).all()


def test_the_same_seed_writes_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    from segserve.testing import make_tiny_sam3

    a = load_file(make_tiny_sam3(tmp_path / "a", seed=1) / "model.safetensors")
    b = load_file(make_tiny_sam3(tmp_path / "b", seed=1) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
