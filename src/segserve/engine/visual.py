"""Visual prompts in the engine: exemplar boxes as the detector's inputs, and interactive mode (clicks
and/or a box around one object) on the SAM 3 tracker.

Exemplars: `Sam3Model`'s geometry encoder reads boxes as normalised cxcywh with labels 1/0; a batch
of concepts with different numbers of boxes is padded as `Sam3Processor` pads it (-10, masked out).
Interactive mode: the tracker of grid mode (`everything.GridSegmenter`, sharing the detector's ViT
and cached features), fed points and a box scaled to its square input as `Sam3TrackerProcessor` does,
its low-resolution logits upsampled and cut as `post_process_masks` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from segserve.engine.everything import GridSegmenter
from segserve.engine.features import VisionFeatures
from segserve.engine.postprocess import logit
from segserve.masks import encode_rles, masks_to_boxes
from segserve.prompts import Concept, ObjectPrompt
from segserve.prompts.exemplars import OBJECT_LABEL
from segserve.types import SegmentationResult, SegmentOptions

# `Sam3Processor`'s and `Sam3TrackerProcessor`'s `point_pad_value`: a padded box or point, ignored.
PAD = -10


def box_inputs(
    concepts: Sequence[Concept], size: tuple[int, int], device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """`input_boxes` (N, B, 4) normalised cxcywh and `input_boxes_labels` (N, B) for `Sam3Model`.

    Operation for operation `Sam3Processor`: xyxy pixels / (width, height) in float32, then
    `box_xyxy_to_cxcywh`; rows with fewer boxes padded with -10 (labels too), which the model masks.
    """
    from transformers.models.sam3.processing_sam3 import box_xyxy_to_cxcywh

    height, width = size
    most = max(len(c.boxes) for c in concepts)
    boxes = torch.full((len(concepts), most, 4), float(PAD), dtype=torch.float32)
    labels = torch.full((len(concepts), most), PAD, dtype=torch.int64)
    for i, concept in enumerate(concepts):
        for j, box in enumerate(concept.boxes):
            boxes[i, j] = torch.tensor(box.xyxy, dtype=torch.float32)
            labels[i, j] = int(box.positive)
    real = labels != PAD
    scaled = boxes.reshape(len(concepts), most, 2, 2).clone()
    scaled[..., 0] = scaled[..., 0] / width
    scaled[..., 1] = scaled[..., 1] / height
    boxes = torch.where(real[..., None], scaled.reshape(len(concepts), most, 4), boxes)
    return {
        "input_boxes": box_xyxy_to_cxcywh(boxes).to(device, dtype),
        "input_boxes_labels": labels.to(device),
    }


def segment_object(
    grid: GridSegmenter,
    features: VisionFeatures,
    rgb: np.ndarray,
    prompt: ObjectPrompt,
    options: SegmentOptions,
) -> SegmentationResult:
    """One object from clicks and/or a box: the tracker's best mask, or its 3 candidates (best first)
    with `prompt.multimask`. Confidence = the tracker's predicted IoU; label "object". The score
    threshold does not apply (the user pointed at the object); an empty mask is not returned."""
    tracker = grid.tracker
    embeddings = grid.embeddings(features)  # cached for the last image: a re-click runs no ViT, no neck
    device = embeddings[-1].device
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    side = float(tracker.prompt_encoder.input_image_size)
    kwargs: dict[str, torch.Tensor] = {}
    if prompt.points:
        # float32 as the processor makes them, even under bf16: the prompt encoder normalises them first.
        points = torch.tensor([[p.x, p.y] for p in prompt.points], dtype=torch.float32)
        points[:, 0] = points[:, 0] * (side / width)
        points[:, 1] = points[:, 1] * (side / height)
        kwargs["input_points"] = points.reshape(1, 1, -1, 2).to(device)
        labels = torch.tensor([int(p.positive) for p in prompt.points], dtype=torch.int64)
        kwargs["input_labels"] = labels.reshape(1, 1, -1).to(device)
    if prompt.box is not None:
        box = torch.tensor(prompt.box.xyxy, dtype=torch.float32).reshape(2, 2)
        box[:, 0] = box[:, 0] * (side / width)
        box[:, 1] = box[:, 1] * (side / height)
        kwargs["input_boxes"] = box.reshape(1, 1, 4).to(device)
    out = tracker(image_embeddings=embeddings, multimask_output=prompt.multimask, **kwargs)
    grid.stats["tracker_passes"] += 1
    logits = out.pred_masks[0, 0]  # (K, h, w): K = 3 candidates, or the one answer
    scores = out.iou_scores[0, 0].float()
    order = torch.argsort(scores, descending=True, stable=True)[: options.max_segments]
    # `post_process_masks`: bilinear upsampling of the logits to the image, then the cut (logit 0 at 0.5).
    full = torch.nn.functional.interpolate(
        logits[order].unsqueeze(0), size=(height, width), mode="bilinear", align_corners=False
    )[0]
    binary = (full > logit(options.mask_threshold)).cpu().numpy()
    keep = binary.reshape(len(binary), -1).any(axis=1)
    binary = binary[keep]
    return SegmentationResult(
        masks=None,
        rles=encode_rles(binary),
        boxes=masks_to_boxes(binary),
        scores=scores[order].clamp(0.0, 1.0).cpu().numpy()[keep],
        labels=[OBJECT_LABEL] * int(keep.sum()),
        image_size=(height, width),
        image=rgb,
    )
