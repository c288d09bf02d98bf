"""Shared fixtures: the tiny random SAM 3 checkpoint, loaded through the production path."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from segserve.testing import make_tiny_sam3

# The suite runs with --import-mode=importlib, which puts no test folder on sys.path; test-side
# helper modules in this folder (image_samples.py) are imported by name.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A tiny random SAM 3 checkpoint directory, written once per test session."""
    return make_tiny_sam3(tmp_path_factory.mktemp("tiny-sam3"))


@pytest.fixture(scope="session")
def tiny_segmenter(tiny_model_path):
    from segserve.engine.sam3 import Sam3Segmenter

    return Sam3Segmenter.from_pretrained(tiny_model_path, device="cpu")


@pytest.fixture
def rgb_image():
    """A 90 x 130 random RGB image (odd size, not square, smaller than the model's input)."""
    return (np.random.default_rng(0).random((90, 130, 3)) * 255).astype(np.uint8)
