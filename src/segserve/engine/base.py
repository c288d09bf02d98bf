"""The `Segmenter` protocol: what the API, the CLI and the SDK's users program against."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from segserve.types import SegmentationResult, SegmentOptions


@runtime_checkable
class Segmenter(Protocol):
    """Anything that turns an image and a list of concepts into a `SegmentationResult`.

    `concepts` is already parsed (see `segserve.prompts.parse_prompt`); an empty list means
    "segment everything". Implementations must be safe to call from one worker thread at a time.
    """

    model_id: str

    def segment(
        self,
        image: Image.Image | np.ndarray,
        concepts: list[str],
        options: SegmentOptions | None = None,
    ) -> SegmentationResult: ...
