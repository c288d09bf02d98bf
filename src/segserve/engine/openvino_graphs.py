"""What OpenVINO traces of `Sam3Model`: each convertible part as a module with flat tensors in and
out (which tracing needs), the weights it owns, and example inputs of the right shapes."""

from __future__ import annotations

from typing import Any

import torch

# Sam3Model's modules the detector part runs (the geometry encoder only for exemplar boxes, which stay on torch).
_DETECTOR_MODULES = ("detr_encoder", "detr_decoder", "mask_decoder", "dot_product_scoring")


class _VisionOutputs(torch.nn.Module):
    """The vision encoder with a flat tuple of tensors as output, which tracing needs."""

    def __init__(self, model: Any):
        super().__init__()
        self.vision_encoder = model.vision_encoder

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.vision_encoder(pixel_values)
        return (out.last_hidden_state, *out.fpn_hidden_states, *out.fpn_position_encoding)


class _DetectorOutputs(torch.nn.Module):
    """`Sam3Model.forward` on precomputed vision and text features, as the engine calls it, with
    flat tensors in and out: (FPN levels..., their position encodings..., ViT output, text
    features (N, T, D), attention mask (N, T)) -> (pred_logits, presence_logits, pred_masks)."""

    def __init__(self, model: Any):
        super().__init__()
        self.model = model
        self.levels = len(model.config.vision_config.scale_factors)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        from segserve.engine.features import VisionFeatures

        n = self.levels
        features = VisionFeatures(
            fpn_hidden_states=tensors[:n], fpn_position_encoding=tensors[n : 2 * n], backbone=tensors[2 * n]
        )
        out = self.model(
            vision_embeds=features.expand(tensors[-2].shape[0]),  # one row per concept
            text_embeds=BaseModelOutputWithPooling(pooler_output=tensors[-2]),
            attention_mask=tensors[-1],
        )
        return out.pred_logits, out.presence_logits, out.pred_masks


def part_module(model: Any, part: str) -> torch.nn.Module:
    """The weights a part runs: what its cache key fingerprints and its memory estimate counts."""
    if part == "vision":
        return model.vision_encoder
    return torch.nn.ModuleDict({name: getattr(model, name) for name in _DETECTOR_MODULES})


def example_inputs(model: Any, part: str, image_size: int) -> tuple[torch.Tensor, ...]:
    if part == "vision":
        return (torch.zeros(1, 3, image_size, image_size),)
    vision = model.config.vision_config
    grid = image_size // int(vision.backbone_config.patch_size)
    g = torch.Generator().manual_seed(0)
    levels = [
        torch.randn(1, vision.fpn_hidden_size, int(grid * s), int(grid * s), generator=g) for s in vision.scale_factors
    ]
    positions = [torch.randn(t.shape, generator=g) for t in levels]
    backbone = torch.randn(1, grid * grid, vision.backbone_config.hidden_size, generator=g)
    # Two concepts with padding, so nothing in the trace is specialised to one row or a full mask.
    text = torch.randn(2, 32, model.text_projection.out_features, generator=g)
    mask = torch.zeros(2, 32, dtype=torch.long)
    mask[0, :5], mask[1, :9] = 1, 1
    return (*levels, *positions, backbone, text, mask)


def traceable(model: Any, part: str) -> torch.nn.Module:
    """`model`'s `part` ("vision" or "detector") as the module `ov.convert_model` traces."""
    return (_VisionOutputs if part == "vision" else _DetectorOutputs)(model).eval()
