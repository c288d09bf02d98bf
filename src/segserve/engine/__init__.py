"""Segmentation engines. `Sam3Segmenter` (transformers) is the real one."""

from segserve.engine.base import Segmenter
from segserve.engine.sam3 import Sam3Segmenter, select_device, select_dtype

__all__ = ["Sam3Segmenter", "Segmenter", "select_device", "select_dtype"]
