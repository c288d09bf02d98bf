"""Segmentation engines. `Sam3Segmenter` (transformers) is the real one; `Segmenter` the protocol."""
