"""`VisionFeatures`: what the ViT makes of one image, shared by the detector and the tracker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class VisionFeatures:
    """What the heads need of one image: the detector's FPN levels and their position encodings,
    and `backbone`, the ViT's last hidden state, from which the tracker builds its own FPN - so one
    ViT pass serves both heads.
    """

    fpn_hidden_states: tuple[torch.Tensor, ...]
    fpn_position_encoding: tuple[torch.Tensor, ...]
    backbone: torch.Tensor

    def nbytes(self, include_position: bool = True) -> int:
        """Bytes held. `include_position=False` leaves out the position encodings, which the
        engine shares between all images of one size (they depend on nothing else)."""
        tensors = [*self.fpn_hidden_states, self.backbone]
        if include_position:
            tensors += self.fpn_position_encoding
        return sum(t.numel() * t.element_size() for t in tensors)

    def expand(self, n: int) -> Any:
        """One row per concept, as views of the same memory (the batch dimension is 1)."""
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        return Sam3VisionEncoderOutput(
            last_hidden_state=self.backbone.expand(n, *self.backbone.shape[1:]),
            fpn_hidden_states=tuple(t.expand(n, *t.shape[1:]) for t in self.fpn_hidden_states),
            fpn_position_encoding=tuple(t.expand(n, *t.shape[1:]) for t in self.fpn_position_encoding),
        )


def features_nbytes(model: Any, dtype: torch.dtype) -> int:
    """Bytes of one image's cached features (FPN levels + ViT output), from the model's config."""
    vision = model.config.vision_config
    vit = vision.backbone_config
    grid = int(vit.image_size) // int(vit.patch_size)
    fpn = sum(int(grid * s) ** 2 for s in vision.scale_factors) * int(vision.fpn_hidden_size)
    backbone = grid * grid * int(vit.hidden_size)
    return (fpn + backbone) * torch.empty((), dtype=dtype).element_size()
