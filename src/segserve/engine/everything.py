"""Segment everything: what an empty prompt returns.

SAM 3's concept detector needs a concept, so "everything" is one of two things:

- `grid` (default): SAM-style automatic mask generation with the SAM 3 tracker (`Sam3TrackerModel`,
  the interactive point-prompt head of the same checkpoint). A regular grid of point prompts is
  decoded in batches, each point giving 3 candidate masks; candidates are kept when the tracker's
  predicted IoU and the mask's stability score are high enough and the region is not tiny, then
  duplicates are removed by greedy mask NMS. Label "object", confidence = predicted IoU.
- `vocabulary`: the concept detector over a list of concepts (default the 80 COCO categories) in
  batched passes; detections of different concepts that cover the same pixels are merged by mask
  IoU (the most confident wins). Everything-mode with labels, at ~5 detector passes per image.

One ViT serves all: the checkpoint holds one backbone shared by detector and tracker, so the
tracker is built around the detector's `vision_encoder.backbone` (same parameter storage, no second
450M-parameter copy) and its FPN is computed from `VisionFeatures.backbone` - the ViT output the
text-prompt path already computed, and cached - through the checkpoint's `tracker_neck`.

Filtering and NMS run on the low-resolution logits (288 x 288 for the full model); only survivors
are upsampled, by the engine's own `_postprocess`, and a last exact mask-NMS pass over the
full-resolution masks guarantees that no two returned masks overlap by the NMS threshold or more.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pycocotools import mask as coco_mask

from segserve.errors import InvalidParameterError, ModelLoadError
from segserve.masks import fortran_stack
from segserve.settings import COCO_CATEGORIES
from segserve.types import SegmentationResult, SegmentOptions

if TYPE_CHECKING:
    from segserve.engine.sam3 import Sam3Segmenter, VisionFeatures

log = logging.getLogger(__name__)

EverythingMode = Literal["grid", "vocabulary"]
EVERYTHING_MODES: tuple[str, ...] = ("grid", "vocabulary")
GRID_LABEL = "object"  # api-contract.md: the label of a segment-everything segment
# The tracker's modules that point prompting needs; its memory modules (video) are never loaded.
_TRACKER_MODULES = ("prompt_encoder", "mask_decoder", "shared_image_embedding", "no_memory_embedding")
# `facebook/sam3` stores the tracker as `tracker_model.<module>`; transformers 5.23's save_pretrained
# of a Sam3VideoModel writes `tracker_model.tracker_model.<module>` (its rename applied twice).
_TRACKER_KEY = re.compile(r"^tracker_model\.(?:tracker_model\.)?(.+)$")


@dataclass(frozen=True)
class EverythingConfig:
    """The knobs of segment-everything; `from_settings` reads them from `Settings`."""

    mode: EverythingMode = "grid"  # what an empty prompt runs unless the request says otherwise
    grid_points: int = 32  # points per side of the prompt grid (32 -> 1024 prompts)
    grid_batch: int = 64  # points decoded per tracker pass (bounds memory)
    pred_iou_thresh: float = 0.88  # minimum predicted IoU of a grid mask
    stability_thresh: float = 0.95  # minimum stability score of a grid mask
    stability_offset: float = 1.0  # logit shift of the mask cut-off used by the stability score (SAM's)
    nms_thresh: float = 0.7  # mask IoU at or above which the less confident mask is a duplicate
    min_region_area: int = 100  # grid masks of fewer pixels (of the input image) are dropped
    vocabulary: tuple[str, ...] = COCO_CATEGORIES  # concepts of vocabulary mode

    def __post_init__(self) -> None:
        if self.mode not in EVERYTHING_MODES:
            raise ValueError(f"mode must be one of {EVERYTHING_MODES}, got {self.mode!r}")
        if self.grid_points < 1 or self.grid_batch < 1:
            raise ValueError(f"grid_points and grid_batch must be >= 1, got {self.grid_points}, {self.grid_batch}")
        for name in ("pred_iou_thresh", "stability_thresh"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.nms_thresh <= 1.0:
            raise ValueError(f"nms_thresh must be in (0, 1], got {self.nms_thresh}")
        if self.min_region_area < 0:
            raise ValueError(f"min_region_area must be >= 0, got {self.min_region_area}")
        if not self.vocabulary:
            raise ValueError("vocabulary needs at least one concept, e.g. 'person, car, dog'")

    @classmethod
    def from_settings(cls, settings: Any = None) -> EverythingConfig:
        """The configuration `SEGSERVE_*` variables describe (a fresh `Settings()` when none is given)."""
        from segserve.prompts import parse_prompt
        from segserve.settings import Settings

        s = settings if settings is not None else Settings()
        vocabulary = parse_prompt(s.vocabulary, max_concepts=100_000, max_concept_chars=s.max_concept_chars)
        return cls(
            mode=s.everything_mode,
            grid_points=s.grid_points,
            grid_batch=s.grid_batch,
            pred_iou_thresh=s.pred_iou_thresh,
            stability_thresh=s.stability_thresh,
            nms_thresh=s.nms_thresh,
            min_region_area=s.min_region_area,
            vocabulary=tuple(vocabulary),
        )


class EverythingEngine:
    """Segment-everything for one `Sam3Segmenter`; the tracker is loaded on first grid request.

    Not thread-safe on its own: `Sam3Segmenter.segment` calls it under the segmenter's lock.
    """

    def __init__(self, segmenter: Sam3Segmenter, config: EverythingConfig | None = None):
        self.segmenter = segmenter
        self._config = config
        self._tracker: Any = None
        self._load_lock = threading.Lock()
        # The tracker's image embeddings of the last image, keyed by the identity of the ViT output
        # they came from: a repeat image whose vision features come from the cache reuses them.
        self._embedding_cache: tuple[torch.Tensor, list[torch.Tensor]] | None = None

    # --- configuration and lazy loading ----------------------------------------------------
    @property
    def config(self) -> EverythingConfig:
        if self._config is None:  # read the environment only if someone segments everything
            self._config = EverythingConfig.from_settings()
        return self._config

    @property
    def tracker(self) -> Any:
        """The `Sam3TrackerModel`, sharing the detector's ViT; loaded from the checkpoint on first use."""
        if self._tracker is None:
            with self._load_lock:
                if self._tracker is None:
                    seg = self.segmenter
                    self._tracker = load_tracker(
                        seg.model_id, seg.model.vision_encoder.backbone, device=seg.device, dtype=seg.dtype
                    )
        return self._tracker

    @tracker.setter
    def tracker(self, tracker: Any) -> None:
        """Attach a tracker built elsewhere (e.g. for a segmenter made from in-memory models)."""
        self._tracker = tracker
        self._embedding_cache = None

    # --- entry point -----------------------------------------------------------------------
    def segment(self, rgb: np.ndarray, options: SegmentOptions, mode: str | None = None) -> SegmentationResult:
        """Everything in `rgb` (H, W, 3 uint8) by `mode` (default: the configured one)."""
        mode = mode or self.config.mode
        if mode not in EVERYTHING_MODES:
            raise InvalidParameterError(
                f"everything_mode must be one of {', '.join(EVERYTHING_MODES)}; got {mode!r}.",
                param="everything_mode",
            )
        features = self.segmenter.encode_image(rgb)
        if mode == "grid":
            return self.grid(features, rgb, options)
        return self.vocabulary(features, rgb, options)

    # --- grid mode -------------------------------------------------------------------------
    def tracker_embeddings(self, features: VisionFeatures) -> list[torch.Tensor]:
        """The tracker's [s0, s1, image embedding] maps from the cached ViT output (no second ViT pass).

        Operation for operation `Sam3VideoModel.get_vision_features_for_tracker`: the tracker neck's
        first three FPN levels (4x, 2x, 1x), the two high-resolution ones pre-projected by the mask
        decoder, and the no-memory embedding added to the 1x level as SAM 3's image predictor does.
        """
        cached = self._embedding_cache
        if cached is not None and cached[0] is features.backbone:
            return cached[1]
        tracker = self.tracker
        hidden = features.backbone
        height, width = tracker.prompt_encoder.image_embedding_size
        spatial = hidden.reshape(hidden.shape[0], height, width, -1).permute(0, 3, 1, 2)
        fpn, _ = tracker.vision_encoder.neck(spatial)
        embeddings = [
            tracker.mask_decoder.conv_s0(fpn[0]),
            tracker.mask_decoder.conv_s1(fpn[1]),
            fpn[2] + tracker.no_memory_embedding.reshape(1, -1, 1, 1),
        ]
        self._embedding_cache = (features.backbone, embeddings)
        return embeddings

    def grid(self, features: VisionFeatures, rgb: np.ndarray, options: SegmentOptions) -> SegmentationResult:
        """SAM-style automatic mask generation over a `grid_points`^2 grid of point prompts."""
        cfg, seg = self.config, self.segmenter
        tracker = self.tracker
        size = (int(rgb.shape[0]), int(rgb.shape[1]))
        embeddings = self.tracker_embeddings(features)
        device = embeddings[-1].device
        # The processor squashes the image to a square, so grid fractions map straight onto it.
        points = point_grid(cfg.grid_points) * float(tracker.prompt_encoder.input_image_size)
        cut = _logit(options.mask_threshold)
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
            seg.stats["tracker_passes"] = seg.stats.get("tracker_passes", 0) + 1
            logits = out.pred_masks[0].flatten(0, 1).float()  # (n * 3, h, w): 3 candidates per point
            iou = out.iou_scores[0].flatten().float()
            area = (logits > cut).flatten(1).sum(1)
            # The low-resolution mask covers the whole image: its area scales by the pixel ratio.
            scale = size[0] * size[1] / (logits.shape[-2] * logits.shape[-1])
            keep = (iou >= max(cfg.pred_iou_thresh, options.threshold)) & (area > 0)
            keep &= area * scale >= cfg.min_region_area
            keep &= stability_score(logits, cut, cfg.stability_offset) >= cfg.stability_thresh
            kept_logits.append(logits[keep])
            kept_scores.append(iou[keep].clamp(0.0, 1.0))
        logits = torch.cat(kept_logits)
        scores = torch.cat(kept_scores)
        if len(scores) == 0:
            return SegmentationResult.empty(size, image=rgb)
        order = torch.argsort(scores, descending=True, stable=True)
        order = order[greedy_nms(mask_iou(logits[order] > cut), cfg.nms_thresh)]
        result = seg._postprocess(
            scores[order].unsqueeze(0),
            logits[order].unsqueeze(0),
            [GRID_LABEL],
            size,
            replace(options, max_segments=_with_slack(options.max_segments)),
            rgb,
        )
        return dedupe(result, cfg.nms_thresh, options.max_segments, min_area=cfg.min_region_area)

    # --- vocabulary mode -------------------------------------------------------------------
    def vocabulary(self, features: VisionFeatures, rgb: np.ndarray, options: SegmentOptions) -> SegmentationResult:
        """The concept detector over `config.vocabulary`, overlapping detections merged across concepts.

        The text-prompt path runs one detector pass per `concept_batch` concepts; after each, its
        detections join a pool that is de-duplicated and cut to a few more than `max_segments`, so
        80 concepts x 200 queries of masks never exist at once.
        """
        cfg, seg = self.config, self.segmenter
        concepts = list(cfg.vocabulary)
        keep = _with_slack(options.max_segments)
        per_pass = replace(options, max_segments=keep)
        pool: SegmentationResult | None = None
        for start in range(0, len(concepts), seg.concept_batch):
            part = seg.segment_features(features, rgb, concepts[start : start + seg.concept_batch], per_pass)
            pool = part if pool is None else dedupe(concat(pool, part), cfg.nms_thresh, keep)
        assert pool is not None  # the config guarantees at least one concept
        return dedupe(pool, cfg.nms_thresh, options.max_segments)


# --- pieces ----------------------------------------------------------------------------------


def point_grid(n: int) -> torch.Tensor:
    """(n*n, 2) x, y fractions of the image at the centres of an n x n grid of cells (SAM's grid)."""
    centres = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


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


def rle_mask_iou(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool full-resolution masks -> (N, N) IoU with pycocotools on RLEs.

    Exact, and fast for real masks (a few runs per column; pairs with disjoint boxes are skipped)
    where a matmul would cost N^2 x H x W.
    """
    n = len(masks)
    if n == 0:
        return np.zeros((0, 0))
    rles = coco_mask.encode(fortran_stack(masks))
    return np.asarray(coco_mask.iou(rles, rles, [0] * n)).reshape(n, n)


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
    if result.masks is None or len(result) == 0:
        return result
    small = np.flatnonzero(result.areas >= min_area)
    keep = small[greedy_nms(rle_mask_iou(result.masks[small]), nms_thresh)][:max_segments]
    return take(result, keep)


def concat(a: SegmentationResult, b: SegmentationResult) -> SegmentationResult:
    """The segments of both, sorted by confidence (ties: `a`'s first)."""
    masks = None if a.masks is None or b.masks is None else np.concatenate([a.masks, b.masks])
    merged = SegmentationResult(
        masks=masks,
        boxes=np.concatenate([a.boxes, b.boxes]),
        scores=np.concatenate([a.scores, b.scores]),
        labels=[*a.labels, *b.labels],
        image_size=a.image_size,
        image=a.image,
    )
    return take(merged, np.argsort(-merged.scores, kind="stable"))


def take(result: SegmentationResult, rows: np.ndarray) -> SegmentationResult:
    """The rows `rows` of `result`, in that order."""
    rows = np.asarray(rows, dtype=np.int64)
    return SegmentationResult(
        masks=None if result.masks is None else result.masks[rows],
        boxes=result.boxes[rows],
        scores=result.scores[rows],
        labels=[result.labels[i] for i in rows.tolist()],
        image_size=result.image_size,
        image=result.image,
    )


def _with_slack(max_segments: int) -> int:
    # A few more than asked go through upsampling, so the exact full-resolution NMS pass can drop
    # a borderline duplicate and still return `max_segments` when there are that many.
    return max_segments + max(8, max_segments // 4)


def _logit(p: float) -> float:
    """The logit cut equivalent to `sigmoid(logit) > p`."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return math.log(p) - math.log1p(-p)


# --- loading the tracker -----------------------------------------------------------------------


def load_tracker(
    source: str,
    backbone: torch.nn.Module,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Any:
    """A `Sam3TrackerModel` from the checkpoint `source`, built around `backbone` (the detector's ViT).

    The tracker is created on the meta device (no memory, no init), its vision backbone replaced by
    the detector's module - the same parameters, one copy - and only its own weights are read from
    the safetensors: `tracker_neck.*` as its FPN neck, `tracker_model.*` as prompt encoder and mask
    decoder. Works on `facebook/sam3` (`tracker_model.<module>`) and on checkpoints written by
    transformers' `Sam3VideoModel.save_pretrained` (`tracker_model.tracker_model.<module>`).
    """
    from transformers import AutoConfig, Sam3TrackerModel

    try:
        config = AutoConfig.from_pretrained(source)
    except Exception as exc:  # hub, network and file errors all arrive as different types
        raise ModelLoadError(f"Could not read the config of {source} to load the SAM 3 tracker: {exc}") from exc
    if getattr(config, "tracker_config", None) is None:
        raise ModelLoadError(
            f"{source} has no SAM 3 tracker (its config is {config.model_type!r}, not 'sam3_video'), which "
            "segment-everything's grid mode needs. Use the full facebook/sam3 checkpoint, or set "
            "SEGSERVE_EVERYTHING_MODE=vocabulary."
        )
    with torch.device("meta"):
        tracker = Sam3TrackerModel(tracker_config(config))
    tracker.vision_encoder.backbone = backbone  # the shared ViT: same storage as the detector's

    state = _read_tracker_weights(source, device=device, dtype=dtype)
    if "shared_image_embedding.positional_embedding" not in state and (
        "prompt_encoder.shared_embedding.positional_embedding" in state
    ):
        # Both hold SAM's random Fourier matrix; a checkpoint may store it once.
        state["shared_image_embedding.positional_embedding"] = state[
            "prompt_encoder.shared_embedding.positional_embedding"
        ]
    expected = {k for k in tracker.state_dict() if not k.startswith("vision_encoder.backbone.")}
    missing = sorted(expected - set(state))
    if missing:
        raise ModelLoadError(
            f"The SAM 3 checkpoint {source} lacks {len(missing)} tracker weights (e.g. {missing[:3]}), which "
            "segment-everything's grid mode needs. Re-download it, or set SEGSERVE_EVERYTHING_MODE=vocabulary."
        )
    tracker.load_state_dict({k: state[k] for k in expected}, strict=False, assign=True)
    still_meta = [n for n, t in [*tracker.named_parameters(), *tracker.named_buffers()] if t.is_meta]
    if still_meta:  # a tensor no checkpoint key filled: a layout this loader does not know
        raise ModelLoadError(f"The SAM 3 tracker of {source} did not load completely: {still_meta[:3]} missing.")
    log.info("loaded the SAM 3 tracker of %s (sharing the detector's ViT)", source)
    return tracker.eval()


def tracker_config(config: Any) -> Any:
    """The `Sam3TrackerConfig` of the point-prompt tracker inside a `Sam3VideoConfig` (facebook/sam3's)."""
    from transformers import Sam3TrackerConfig

    tc = config.tracker_config if isinstance(config.tracker_config, dict) else config.tracker_config.to_dict()
    detector_vision = config.detector_config.vision_config
    vision = detector_vision if isinstance(detector_vision, dict) else detector_vision.to_dict()
    return Sam3TrackerConfig(
        # The neck is `tracker_neck`, which Sam3VideoModel builds from the detector's vision config.
        vision_config=vision,
        prompt_encoder_config=tc["prompt_encoder_config"],
        mask_decoder_config=tc["mask_decoder_config"],
    )


def _read_tracker_weights(source: str, device: torch.device | str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The tracker's tensors from the checkpoint's safetensors, renamed to `Sam3TrackerModel`'s keys.

    Reads only those keys (lazily, per tensor), never the 3.4 GB file as a whole.
    """
    from safetensors import safe_open

    state: dict[str, torch.Tensor] = {}
    for path in _checkpoint_files(source):
        with safe_open(path, framework="pt", device="cpu") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a Mapping
                name = _tracker_name(key)
                if name is not None:
                    tensor = f.get_tensor(key)
                    state[name] = tensor.to(device, dtype if tensor.is_floating_point() else tensor.dtype)
    return state


def _tracker_name(key: str) -> str | None:
    """Checkpoint key -> `Sam3TrackerModel` key, or None for weights the tracker does not use."""
    if key.startswith("tracker_neck."):
        return "vision_encoder.neck." + key[len("tracker_neck.") :]
    match = _TRACKER_KEY.match(key)
    if match and match.group(1).split(".", 1)[0] in _TRACKER_MODULES:
        return match.group(1)
    return None


def _checkpoint_files(source: str) -> list[str]:
    """The safetensors file(s) of a local directory or an already-downloaded hub checkpoint."""
    from transformers.utils import cached_file

    kwargs: dict[str, Any] = {
        "_raise_exceptions_for_missing_entries": False,
        "_raise_exceptions_for_connection_errors": False,
    }
    index = cached_file(source, "model.safetensors.index.json", **kwargs)
    if index:
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        files = [cached_file(source, shard, **kwargs) for shard in shards]
        if all(files):
            return [str(p) for p in files]
    single = cached_file(source, "model.safetensors", **kwargs)
    if single:
        return [str(single)]
    raise ModelLoadError(
        f"No model.safetensors found for {source}; the SAM 3 tracker (segment-everything's grid mode) is "
        "loaded from it. Download the checkpoint with `hf download facebook/sam3 --local-dir ./sam3`."
    )
