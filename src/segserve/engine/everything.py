"""Segment everything, grid mode: SAM-style automatic masks from the SAM 3 tracker.

SAM 3's concept detector needs a concept, so an empty prompt runs either this (the default) or the
detector over a vocabulary (`Sam3Segmenter`'s vocabulary mode). Here a regular grid of point
prompts is decoded by the tracker in batches, each point giving 3 candidate masks; candidates are
kept when the tracker's predicted IoU and the mask's stability score are high enough and the region
is not tiny, then duplicates are removed by greedy mask NMS. Label "object", confidence = predicted
IoU.

The tracker reads the detector's cached ViT output (`VisionFeatures.backbone`) through its own
neck, so a grid request on an image the detector has seen runs no ViT. Filtering and NMS run on the
low-resolution logits (288 x 288 for the full model); only survivors are upsampled, and a last exact
mask-NMS pass over the full-resolution masks guarantees that no two returned masks overlap by the
NMS threshold or more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from segserve.engine.features import VisionFeatures
from segserve.engine.postprocess import (
    dedupe,
    detections_to_result,
    greedy_nms,
    logit,
    mask_iou,
    stability_score,
    with_slack,
)
from segserve.engine.tracker import tracker_embeddings
from segserve.settings import Settings
from segserve.types import SegmentationResult, SegmentOptions

GRID_LABEL = "object"  # the label of a grid-mode segment (the API contract's)
STABILITY_OFFSET = 1.0  # logit shift of the mask cut-off used by the stability score (SAM's)


class GridSegmenter:
    """Grid-mode everything for one detector. `load_tracker()` builds the tracker on first use.

    Not thread-safe on its own: `Sam3Segmenter.segment` calls it under the segmenter's lock.
    `stats` is the segmenter's counter dict (this adds `tracker_passes`).
    """

    def __init__(self, settings: Settings, load_tracker: Callable[[], Any], stats: dict[str, int]):
        self.settings = settings
        self.stats = stats
        self._load_tracker = load_tracker
        self._tracker: Any = None
        self._load_lock = threading.Lock()
        # The tracker's image embeddings of the last image, keyed by the identity of the ViT output
        # they came from: a repeat image whose vision features come from the cache reuses them.
        self._embedding_cache: tuple[torch.Tensor, list[torch.Tensor]] | None = None

    @property
    def tracker(self) -> Any:
        """The `Sam3TrackerModel`, sharing the detector's ViT; loaded on first use."""
        if self._tracker is None:
            with self._load_lock:
                if self._tracker is None:
                    self._tracker = self._load_tracker()
        return self._tracker

    @tracker.setter
    def tracker(self, tracker: Any) -> None:
        """Attach a tracker built elsewhere (e.g. shared with another segmenter of the same model)."""
        self._tracker = tracker
        self._embedding_cache = None

    def embeddings(self, features: VisionFeatures) -> list[torch.Tensor]:
        """The tracker's [s0, s1, image embedding] maps of `features`, kept for the last image."""
        cached = self._embedding_cache
        if cached is not None and cached[0] is features.backbone:
            return cached[1]
        embeddings = tracker_embeddings(self.tracker, features.backbone)
        self._embedding_cache = (features.backbone, embeddings)
        return embeddings

    def warm_up(self, features: VisionFeatures) -> None:
        """Load the tracker and decode one point on `features`, so that the first grid request pays
        neither (on a fresh server it did, as a stall of seconds: bench/README.md, Overload)."""
        tracker = self.tracker
        embeddings = self.embeddings(features)
        device = embeddings[-1].device
        centre = float(tracker.prompt_encoder.input_image_size) / 2
        tracker(
            image_embeddings=embeddings,
            input_points=torch.full((1, 1, 1, 2), centre, device=device),
            input_labels=torch.ones(1, 1, 1, dtype=torch.int32, device=device),
            multimask_output=True,
        )
        self.stats["tracker_passes"] += 1
        self._embedding_cache = None  # the warm-up image's maps: no request will want them

    def segment(self, features: VisionFeatures, rgb: np.ndarray, options: SegmentOptions) -> SegmentationResult:
        """SAM-style automatic mask generation over a `grid_points`^2 grid of point prompts."""
        cfg = self.settings
        tracker = self.tracker
        size = (int(rgb.shape[0]), int(rgb.shape[1]))
        embeddings = self.embeddings(features)
        device = embeddings[-1].device
        # The processor squashes the image to a square, so grid fractions map straight onto it.
        points = point_grid(cfg.grid_points) * float(tracker.prompt_encoder.input_image_size)
        cut = logit(options.mask_threshold)
        kept_logits: list[torch.Tensor] = []
        kept_scores: list[torch.Tensor] = []
        for start in range(0, len(points), cfg.grid_batch):
            # float32 points even under bf16: the prompt encoder normalises them before casting.
            batch = points[start : start + cfg.grid_batch].to(device)
            n = len(batch)
            out = tracker(
                image_embeddings=embeddings,
                input_points=batch.reshape(1, n, 1, 2),
                input_labels=torch.ones(1, n, 1, dtype=torch.int32, device=device),
                multimask_output=True,
            )
            self.stats["tracker_passes"] += 1
            logits = out.pred_masks[0].flatten(0, 1).float()  # (n * 3, h, w): 3 candidates per point
            iou = out.iou_scores[0].flatten().float()
            area = (logits > cut).flatten(1).sum(1)
            # The low-resolution mask covers the whole image: its area scales by the pixel ratio.
            scale = size[0] * size[1] / (logits.shape[-2] * logits.shape[-1])
            keep = (iou >= max(cfg.pred_iou_thresh, options.threshold)) & (area > 0)
            keep &= area * scale >= cfg.min_region_area
            keep &= stability_score(logits, cut, STABILITY_OFFSET) >= cfg.stability_thresh
            kept_logits.append(logits[keep])
            kept_scores.append(iou[keep].clamp(0.0, 1.0))
        logits = torch.cat(kept_logits)
        scores = torch.cat(kept_scores)
        if len(scores) == 0:
            return SegmentationResult.empty(size, image=rgb)
        order = torch.argsort(scores, descending=True, stable=True)
        order = order[greedy_nms(mask_iou(logits[order] > cut), cfg.nms_thresh)]
        result = detections_to_result(
            scores[order].unsqueeze(0),
            logits[order].unsqueeze(0),
            [GRID_LABEL],
            size,
            options.model_copy(update={"max_segments": with_slack(options.max_segments)}),
            rgb,
        )
        return dedupe(result, cfg.nms_thresh, options.max_segments, min_area=cfg.min_region_area)


def point_grid(n: int) -> torch.Tensor:
    """(n*n, 2) x, y fractions of the image at the centres of an n x n grid of cells (SAM's grid)."""
    centres = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
