"""`segserve segment` end to end with the tiny model, and its failures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from segserve.cli import main
from segserve.masks import rle_decode


@pytest.fixture
def photo(tmp_path, rgb_image):
    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb_image).save(path, quality=95)
    return path


def test_segment_writes_json_cutouts_and_overlay(tiny_model_path, photo, tmp_path, capsys):
    out_json, cut_dir, overlay = tmp_path / "out.json", tmp_path / "cutouts", tmp_path / "overlay.png"
    code = main(
        [
            "segment", str(photo), "-p", "cat, dog", "--model", str(tiny_model_path), "--device", "cpu",
            "--threshold", "0.25", "--json", str(out_json), "--cutout", str(cut_dir), "--overlay", str(overlay),
        ]
    )  # fmt: skip
    assert code == 0
    data = json.loads(out_json.read_text())
    assert data["num_segments"] == len(data["segments"]) > 0
    for seg in data["segments"]:
        assert seg["label"] in {"cat", "dog"}
        mask = rle_decode(seg["mask"])
        assert mask.shape == (90, 130) and mask.any()
        x1, y1, x2, y2 = seg["bbox"]
        assert 0 <= x1 < x2 <= 130 and 0 <= y1 < y2 <= 90
    cutouts = sorted(cut_dir.glob("*.png"))
    assert len(cutouts) == data["num_segments"]
    first = Image.open(cutouts[0])
    assert first.mode == "RGBA"
    x1, y1, x2, y2 = data["segments"][0]["bbox"]
    assert first.size == (x2 - x1, y2 - y1)
    alpha = np.asarray(first)[:, :, 3]
    expected = rle_decode(data["segments"][0]["mask"])[y1:y2, x1:x2]
    np.testing.assert_array_equal(alpha == 255, expected)
    assert Image.open(overlay).size == (130, 90)
    printed = capsys.readouterr().out
    assert "segments" in printed and "cat" in printed and "confidence" in printed


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    exe = shutil.which("segserve")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "segserve.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, timeout=120)


@pytest.mark.parametrize(
    ("model", "env", "expected"),
    [
        ("/nonexistent/sam3", {}, "No SAM 3 checkpoint directory"),  # wrong local path
        ("facebook/sam3", {"HF_HUB_OFFLINE": "1"}, "hf auth login"),  # no network / not logged in / gated
    ],
)
def test_unavailable_model_exits_nonzero_with_what_to_do(photo, model, env, expected):
    proc = _run(["segment", str(photo), "-p", "cat", "--model", model], **env)
    assert proc.returncode != 0
    assert expected in proc.stderr and "SEGSERVE_MODEL" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_image_file_is_a_clear_error(tmp_path):
    proc = _run(["segment", str(tmp_path / "nope.jpg"), "-p", "cat"])
    assert proc.returncode != 0 and "no such image file" in proc.stderr


def test_help_lists_the_commands():
    proc = _run(["--help"])
    assert proc.returncode == 0 and "segment" in proc.stdout and "serve" in proc.stdout
