"""What OpenVINO traces of `Sam3Model`: each convertible part as a module with flat tensors in and
out (which tracing needs), the weights it owns, and example inputs of the right shapes."""

from __future__ import annotations

from typing import Any

import torch

from segserve.prompts import MAX_TEXT_TOKENS

# Sam3Model's modules the detector part runs (engine/detector.py's TextDetector; the geometry encoder
# only for exemplar boxes, which stay on torch).
_DETECTOR_MODULES = ("detr_encoder", "detr_decoder", "mask_decoder", "dot_product_scoring")


class _VisionOutputs(torch.nn.Module):
    """The vision encoder with a flat tuple of tensors as output, which tracing needs."""

    def __init__(self, model: Any):
        super().__init__()
        self.vision_encoder = model.vision_encoder

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.vision_encoder(pixel_values)
        return (out.last_hidden_state, *out.fpn_hidden_states, *out.fpn_position_encoding)


def part_module(model: Any, part: str) -> torch.nn.Module:
    """The weights a part runs: what its cache key fingerprints and its memory estimate counts."""
    if part == "vision":
        return model.vision_encoder
    return torch.nn.ModuleDict({name: getattr(model, name) for name in _DETECTOR_MODULES})


def input_shapes(model: Any, part: str, image_size: int, concepts: int = 1) -> list[tuple[int, ...]]:
    """The shapes of `part`'s inputs for one image of `image_size` (and `concepts` text rows)."""
    if part == "vision":
        return [(1, 3, image_size, image_size)]
    vision = model.config.vision_config
    grid = image_size // int(vision.backbone_config.patch_size)
    width = vision.fpn_hidden_size
    # Sam3Model.forward drops the last level; the DETR encoder reads the coarsest of the rest and
    # the pixel decoder the others, coarse to fine (what detector.image_state makes of them).
    *finer, coarsest = [int(grid * s) for s in vision.scale_factors[:-1]]
    tokens = (1, coarsest * coarsest, width)
    skips = [(1, width, side, side) for side in reversed(finer)]
    text = (concepts, MAX_TEXT_TOKENS, model.text_projection.out_features)
    return [tokens, tokens, *skips, text, (concepts, MAX_TEXT_TOKENS)]


def example_inputs(model: Any, part: str, image_size: int) -> tuple[torch.Tensor, ...]:
    if part == "vision":
        return (torch.zeros(input_shapes(model, part, image_size)[0]),)
    # Two concepts with padding, so nothing in the trace is specialised to one row or a full mask.
    *shapes, mask_shape = input_shapes(model, part, image_size, concepts=2)
    g = torch.Generator().manual_seed(0)
    floats = [torch.randn(shape, generator=g) for shape in shapes]
    mask = torch.zeros(mask_shape, dtype=torch.long)
    mask[0, :5], mask[1, :9] = 1, 1
    return (*floats, mask)


def traceable(model: Any, part: str) -> torch.nn.Module:
    """`model`'s `part` ("vision" or "detector") as the module `ov.convert_model` traces."""
    if part == "vision":
        return _VisionOutputs(model).eval()
    from segserve.engine.detector import TextDetector

    return TextDetector(model).eval()
