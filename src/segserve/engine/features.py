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
    # The detector's per-image part (engine/detector.py), where the engine computed it.
    detector: Any = None

    def nbytes(self, include_position: bool = True) -> int:
        """Bytes held. `include_position=False` leaves out the position encodings, which the
        engine shares between all images of one size (they depend on nothing else)."""
        tensors = [*self.fpn_hidden_states, self.backbone]
        if include_position:
            tensors += self.fpn_position_encoding
        detector = self.detector.nbytes() if self.detector is not None else 0
        return sum(t.numel() * t.element_size() for t in tensors) + detector

    def expand(self, n: int) -> Any:
        """One row per concept, as views of the same memory (the batch dimension is 1)."""
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        return Sam3VisionEncoderOutput(
            last_hidden_state=self.backbone.expand(n, *self.backbone.shape[1:]),
            fpn_hidden_states=tuple(t.expand(n, *t.shape[1:]) for t in self.fpn_hidden_states),
            fpn_position_encoding=tuple(t.expand(n, *t.shape[1:]) for t in self.fpn_position_encoding),
        )


def features_nbytes(model: Any, dtype: torch.dtype) -> int:
    """Bytes of one image's cached features (FPN levels + ViT output + the detector's per-image
    part, see engine/detector.py), from the model's config."""
    vision = model.config.vision_config
    vit = vision.backbone_config
    grid = int(vit.image_size) // int(vit.patch_size)
    width = int(vision.fpn_hidden_size)
    sides = [int(grid * s) for s in vision.scale_factors]
    fpn = sum(side**2 for side in sides) * width
    backbone = grid * grid * int(vit.hidden_size)
    # Detector state: the DETR encoder's tokens + their positions, and the pixel decoder's skips.
    *finer, coarsest = sides[:-1]
    detector = (2 * coarsest**2 + sum(side**2 for side in finer)) * width
    return (fpn + backbone + detector) * torch.empty((), dtype=dtype).element_size()
