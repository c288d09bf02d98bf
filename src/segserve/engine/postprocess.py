"""Post-processing as free functions: detections -> a result, and the mask maths of everything-mode
(stability score, mask IoU, greedy NMS, de-duplication). Nothing here knows which model made the
logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from pycocotools import mask as coco_mask

from segserve.masks import encode_rles
from segserve.types import SegmentationResult, SegmentOptions

# Kept detections are upsampled to full resolution at most this many at a time, and no more than fit
# in CHUNK_BYTES, so a big image with 100 detections never holds 100 float masks at once.
UPSAMPLE_CHUNK = 16
CHUNK_BYTES = 256 * 2**20


def detections_to_result(
    scores: torch.Tensor,
    low_res: torch.Tensor,
    labels: Sequence[str],
    size: tuple[int, int],
    options: SegmentOptions,
    rgb: np.ndarray | None,
) -> SegmentationResult:
    """Scores (C, Q) and low-resolution mask logits (C, Q, h, w) of C label rows -> the result.

    Operation for operation the reference's post-processing (sigmoid, bilinear upsampling to `size`,
    the mask threshold), but only for detections whose score reaches `options.threshold`, highest
    first, at most `options.max_segments`; a detection whose mask comes out empty is dropped.
    """
    concept_idx, query_idx = torch.nonzero(scores >= options.threshold, as_tuple=True)
    kept_scores = scores[concept_idx, query_idx].float()
    # Highest confidence first; ties keep concept order then query order (stable sort).
    order = torch.argsort(kept_scores, descending=True, stable=True)
    concept_idx, query_idx, kept_scores = concept_idx[order], query_idx[order], kept_scores[order]

    # Each chunk is upsampled, thresholded, boxed from its row/column occupancy and compressed to
    # RLE before the next: a request holds its masks as RLE, so its peak memory is one chunk's,
    # whatever the number of detections and the image size (a 50-megapixel mask is 250 MB while
    # upsampled, a few kB as RLE).
    height, width = size
    cap = min(len(order), options.max_segments)
    per_chunk = max(1, min(UPSAMPLE_CHUNK, CHUNK_BYTES // max(1, height * width * 5)))  # float32 + bool
    # The low-resolution logits of the rows the cap will most likely keep, fetched in one go: from
    # `MaskLogits` that is one matmul reading the pixel embeddings once instead of once per chunk
    # (SAM 3, 100 masks: ~0.05 instead of ~0.12 s on 2 cores). Bounded like a chunk's upsampling.
    low_h, low_w = low_res.shape[-2:]
    ahead = min(cap, len(order), max(1, CHUNK_BYTES // max(1, low_h * low_w * 4)))
    logits_ahead = low_res[concept_idx[:ahead], query_idx[:ahead]]
    rles: list[dict] = []
    boxes: list[tuple[int, int, int, int]] = []
    keep_rows: list[int] = []
    start = 0
    while start < len(order) and len(keep_rows) < cap:
        # Never more rows than free slots: the cap is reached without upsampling extra masks.
        stop = min(start + per_chunk, start + cap - len(keep_rows), len(order))
        # Rows past `ahead` (empty masks were dropped, so more are needed) are computed on demand.
        logits = logits_ahead[start:stop] if stop <= ahead else low_res[concept_idx[start:stop], query_idx[start:stop]]
        # Operation for operation the reference's post-processing (sigmoid, bilinear, >), in the
        # model's dtype on its device.
        probs = logits.sigmoid()
        full = torch.nn.functional.interpolate(
            probs.unsqueeze(0), size=size, mode="bilinear", align_corners=False
        ).squeeze(0)
        binary = (full > options.mask_threshold).cpu().numpy()  # the one device -> host copy
        del full
        # numpy, not torch: torch's bool any() over a 4-megapixel mask is ~10x slower (~40 vs ~4 ms).
        row_any = binary.any(axis=2)  # (n, H)
        col_any = binary.any(axis=1)  # (n, W)
        nonempty = row_any.any(axis=1)  # a segment whose mask is empty is not returned
        rles += encode_rles(binary[nonempty])
        for j in np.flatnonzero(nonempty):
            rows, cols = row_any[j], col_any[j]
            boxes.append(
                (
                    int(cols.argmax()),
                    int(rows.argmax()),
                    width - int(cols[::-1].argmax()),
                    height - int(rows[::-1].argmax()),
                )
            )
            keep_rows.append(start + int(j))
        del binary
        start = stop
    if not keep_rows:
        return SegmentationResult.empty(size, image=rgb)
    rows_t = torch.tensor(keep_rows, dtype=torch.long, device=kept_scores.device)
    return SegmentationResult(
        masks=None,
        boxes=np.asarray(boxes, dtype=np.int64),
        scores=kept_scores[rows_t].cpu().numpy(),
        labels=[labels[i] for i in concept_idx[rows_t].tolist()],
        image_size=size,
        image=rgb,
        rles=rles,
    )


def stability_score(logits: torch.Tensor, cut: float, offset: float) -> torch.Tensor:
    """IoU of the mask cut at `cut + offset` with the mask cut at `cut - offset` (SAM's definition).

    A mask whose outline barely moves when the cut-off moves is a confident one; an empty loose mask
    scores 0.
    """
    flat = logits.flatten(1)
    inter = (flat > cut + offset).sum(1).float()
    union = (flat > cut - offset).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))


def mask_iou(masks: torch.Tensor) -> np.ndarray:
    """(N, h, w) bool low-resolution masks -> (N, N) IoU, by one matrix product on their device.

    For the small fixed-size logit masks a matmul beats run-length IoU, whose cost grows with the
    number of runs (random-weight masks have thousands). Counts are float32 (exact to 16 M pixels).
    """
    flat = masks.flatten(1).to(torch.float32)
    area = flat.sum(1)
    inter = flat @ flat.T
    union = area[:, None] + area[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union)).cpu().numpy()


def rle_nms(rles: list[dict], threshold: float, limit: int) -> list[int]:
    """Indices kept by greedy NMS over full-resolution masks given as pycocotools RLEs, sorted best
    first: the same as `greedy_nms` on their IoU matrix, stopping once `limit` are kept.

    Each candidate is compared with the kept masks only, so memory is O(limit), not the N x N matrix
    (12,500 candidates would need 1.2 GB); pycocotools' RLE IoU is exact and skips disjoint boxes.
    """
    keep: list[int] = []
    kept: list[dict] = []
    for i, rle in enumerate(rles):
        if len(keep) >= limit:
            break
        if kept and np.max(coco_mask.iou([rle], kept, [0] * len(kept))) >= threshold:
            continue
        keep.append(i)
        kept.append(rle)
    return keep


def greedy_nms(iou: np.ndarray, threshold: float) -> list[int]:
    """Indices kept by greedy NMS over items sorted best first, given their (N, N) IoU matrix.

    An item is dropped when its IoU with a kept one is `threshold` or more, so kept items overlap
    strictly less.
    """
    suppressed = np.zeros(len(iou), dtype=bool)
    keep: list[int] = []
    for i in range(len(iou)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] >= threshold
    return keep


def dedupe(result: SegmentationResult, nms_thresh: float, max_segments: int, min_area: int = 0) -> SegmentationResult:
    """The exact last pass at full resolution: drop small and duplicate masks, cap the count."""
    if not result.has_masks or len(result) == 0:
        return result
    big_enough = np.flatnonzero(result.areas >= min_area)
    rles = result.rles or []
    keep = big_enough[rle_nms([rles[i] for i in big_enough], nms_thresh, max_segments)]
    return result[keep]


def with_slack(max_segments: int) -> int:
    # A few more than asked go through upsampling, so the exact full-resolution NMS pass can drop
    # a borderline duplicate and still return `max_segments` when there are that many.
    return max_segments + max(8, max_segments // 4)


def logit(p: float) -> float:
    """The logit cut equivalent to `sigmoid(logit) > p`."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return math.log(p) - math.log1p(-p)
