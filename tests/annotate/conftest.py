"""Fixtures for `segserve annotate`: a small folder of real photos (scikit-image's samples, shrunk
so the tiny model runs fast), with a sub-folder, a hidden file, a non-image and a broken image, and
one reference run over it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from annotate_support import FORMATS, OPTIONS, PROMPT, make_folder


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("photos"))


@pytest.fixture
def fresh_folder(tmp_path, photo_folder) -> Path:
    """A copy of the photo folder a test may change."""
    return Path(shutil.copytree(photo_folder, tmp_path / "photos"))


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, photo_folder, tiny_segmenter, tiny_model_path):
    """One uninterrupted in-process run over `photo_folder` into all three formats: what every
    other way of running (resumed, killed, on Ray, through a server) must reproduce."""
    from segserve.annotate import annotate

    out = tmp_path_factory.mktemp("reference") / "out"
    summary = annotate(
        photo_folder, out, PROMPT, formats=FORMATS, segmenter=tiny_segmenter, model=str(tiny_model_path), **OPTIONS
    )
    return out, summary
