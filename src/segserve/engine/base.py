"""The `Segmenter` protocol: what the API, the CLI and the SDK's users program against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from segserve.prompts import Concept, ObjectPrompt
from segserve.types import SegmentationResult, SegmentOptions


@runtime_checkable
class Segmenter(Protocol):
    """Anything that turns an image, concepts and options into a `SegmentationResult`.

    `concepts` come from `segserve.prompts.parse_prompt` (plain strings are accepted as a
    shorthand); none means "segment everything" as `options.everything_mode` says. Every
    per-request knob is a field of `options`. Implementations must be safe to call from one worker
    thread at a time.
    """

    model_id: str

    def segment(
        self,
        image: Image.Image | np.ndarray,
        concepts: Sequence[Concept | str] = (),
        options: SegmentOptions | None = None,
    ) -> SegmentationResult: ...

    def segment_object(
        self, image: Image.Image | np.ndarray, prompt: ObjectPrompt, options: SegmentOptions | None = None
    ) -> SegmentationResult:
        """Interactive mode: the one object `prompt`'s clicks and/or box point at (the API's `points`/
        `box`), answered by SAM 3's tracker on the same cached image features."""
        ...
