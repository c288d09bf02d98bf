"""segserve: self-hosted SAM 3 segmentation, drop-in compatible with `/v1/images/segmentation`.

>>> import segserve
>>> client = segserve.Client("http://localhost:8000", api_key="...")   # doctest: +SKIP
>>> result = client.segment("photo.jpg", prompt="person")               # doctest: +SKIP

Names are imported on first use, so `import segserve` stays cheap (no torch for the SDK).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Client": "segserve.client",
    "AsyncClient": "segserve.client",
    "Sam3Segmenter": "segserve.engine.sam3",
    "Segmenter": "segserve.engine.base",
    "SegmentationResult": "segserve.types",
    "Segment": "segserve.types",
    "SegmentOptions": "segserve.types",
    "Settings": "segserve.settings",
    "SegserveError": "segserve.errors",
    "parse_prompt": "segserve.prompts",
    "Concept": "segserve.prompts",
    "Box": "segserve.prompts",
    "Point": "segserve.prompts",
    "ObjectPrompt": "segserve.prompts",
    "SegmentRequest": "segserve.types",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'segserve' has no attribute {name!r}")
