"""SAM 3 through Hugging Face transformers: vision once per image, all concepts in one batched pass.

>>> seg = Sam3Segmenter.from_pretrained("facebook/sam3")            # doctest: +SKIP
>>> result = seg.segment(Image.open("street.jpg"), ["person", "car"])  # doctest: +SKIP

The reference pipeline (transformers' model card) runs `Sam3Model(pixel_values, input_ids)` once
per concept, so every concept pays for the ViT (~90 % of the time). Here the vision encoder runs
once, its features are expanded (a view, no copy) to one row per concept, and the DETR
encoder/decoder + mask head run once for the whole batch. Post-processing follows
`Sam3ImageProcessor.post_process_instance_segmentation` operation for operation (sigmoid, then
bilinear upsampling, then the mask threshold) so the output is the reference's, but only for the
detections that survive the score threshold.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from segserve.engine import openvino
from segserve.engine.cache import LRUCache, image_key
from segserve.engine.everything import EverythingConfig, EverythingEngine
from segserve.errors import ModelLoadError
from segserve.images import to_rgb_array
from segserve.prompts import MAX_TEXT_TOKENS, tokenize_concepts
from segserve.types import SegmentationResult, SegmentOptions

log = logging.getLogger(__name__)

DEFAULT_MODEL = "facebook/sam3"
# Kept detections are upsampled to full resolution this many at a time, so a 4K image with 100
# detections never holds 100 float masks at once.
UPSAMPLE_CHUNK = 16
# `cache_bytes=0` sizes the vision-feature cache for this many images of the loaded model.
DEFAULT_CACHE_IMAGES = 8

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def select_device(device: str | torch.device | None = None) -> torch.device:
    """`None` picks cuda > mps > cpu."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def select_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """`None` gives bf16 on CUDA and fp32 elsewhere (CPU bf16 matmuls are slow without AMX)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}") from None


@dataclass
class VisionFeatures:
    """What the detector needs of one image: the FPN levels and their position encodings.

    `backbone` is the ViT's last hidden state; the tracker (everything-mode) builds its own FPN
    from it, so one ViT pass serves both heads.
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

    def expand(self, n: int):
        """One row per concept, as views of the same memory (the batch dimension is 1)."""
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        return Sam3VisionEncoderOutput(
            last_hidden_state=self.backbone.expand(n, *self.backbone.shape[1:]),
            fpn_hidden_states=tuple(t.expand(n, *t.shape[1:]) for t in self.fpn_hidden_states),
            fpn_position_encoding=tuple(t.expand(n, *t.shape[1:]) for t in self.fpn_position_encoding),
        )


class Sam3Segmenter:
    """Text-prompted instance segmentation with SAM 3. Build it with `from_pretrained`."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        model_id: str = DEFAULT_MODEL,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        concept_batch: int = 16,
        cache: bool = True,
        cache_bytes: int = 0,
        text_cache_size: int = 256,
        compile_vision: bool = False,
        vision_backend: str = "auto",
        openvino_cache_dir: str | Path = "~/.cache/segserve/openvino",
        everything: EverythingConfig | None = None,
    ):
        if concept_batch < 1:
            raise ValueError(f"concept_batch must be >= 1, got {concept_batch}")
        if cache_bytes < 0 or text_cache_size < 0:
            raise ValueError(
                f"cache_bytes and text_cache_size must be >= 0 (0 bytes = room for {DEFAULT_CACHE_IMAGES} "
                f"images), got {cache_bytes} and {text_cache_size}; pass cache=False to disable caching"
            )
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.device = device or next(model.parameters()).device
        self.dtype = dtype or next(model.parameters()).dtype
        self.concept_batch = concept_batch
        self.image_size = int(processor.image_processor.size["height"])
        # Counts of expensive passes, for tests and metrics: they prove the ViT runs once per image.
        # The cache counters sit here too, so they reach the Prometheus endpoint with the rest.
        self.stats = {
            "vision_passes": 0,
            "detector_passes": 0,
            "text_passes": 0,
            "vision_cache_hits": 0,
            "vision_cache_misses": 0,
        }
        self._lock = threading.Lock()
        # Vision features by image content (see cache.py): a re-prompt on the same image runs no ViT.
        # Budgeted without position encodings, which are stored once per size in `_position_encodings`.
        vision_budget = cache_bytes or DEFAULT_CACHE_IMAGES * _features_nbytes(model, self.dtype)
        self.vision_cache: LRUCache[VisionFeatures] = LRUCache(
            vision_budget if cache else 0, lambda f: f.nbytes(include_position=False)
        )
        # Text features by concept string, counted in concepts (a few hundred KiB each at most).
        self.text_cache: LRUCache[tuple[torch.Tensor, torch.Tensor]] = LRUCache(
            text_cache_size if cache else 0, lambda _: 1
        )
        self._position_encodings: dict[tuple, tuple[torch.Tensor, ...]] = {}
        # Off by default: on the full-size model on CPU it was no faster than eager (bench/README.md).
        self.compile_vision = compile_vision
        if self.compile_vision:
            self._compile_vision()
        # The ViT + neck through OpenVINO where that is exact and faster (full-size fp32 on CPU;
        # see engine/openvino.py); `vision_backend` says which one runs.
        self._openvino = None
        if openvino.should_use(vision_backend, model.vision_encoder, self.device, self.dtype):
            self._openvino = openvino.OpenVINOVisionEncoder(
                model.vision_encoder, self.image_size, Path(openvino_cache_dir), model_id
            )
        self.vision_backend = "openvino" if self._openvino is not None else "torch"
        # Segment-everything (an empty prompt). Its tracker loads on first use: no memory until then.
        # `everything=None` reads the SEGSERVE_* settings when first needed.
        self.everything = EverythingEngine(self, everything)

    # --- loading ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str | Path = DEFAULT_MODEL,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        **kwargs: Any,
    ) -> Sam3Segmenter:
        """Load the detector and processor from the hub or a local directory.

        Raises `ModelLoadError` whose message says how to get the checkpoint when it can't be had.
        """
        from transformers import Sam3Model, Sam3Processor

        source = str(model_id_or_path)
        dev = select_device(device)
        dt = select_dtype(dtype, dev)
        _check_local_path(source)
        try:
            processor = Sam3Processor.from_pretrained(source)
            model = Sam3Model.from_pretrained(source, dtype=dt)
        except Exception as exc:  # hub, network and file errors all arrive as different types
            raise ModelLoadError(_load_error_message(source, exc)) from exc
        model = model.to(dev).eval()
        log.info("loaded %s on %s as %s", source, dev, dt)
        return cls(model, processor, model_id=source, device=dev, dtype=dt, **kwargs)

    @classmethod
    def from_settings(cls, settings: Any, model: str | None = None, device: str | None = None) -> Sam3Segmenter:
        """The engine a `Settings` describes: model, device, dtype, caches, batching, everything-mode.

        What the server and the CLI call, so a `SEGSERVE_*` knob means the same in both.
        """
        return cls.from_pretrained(
            model or settings.model,
            device=device or settings.device,
            dtype=settings.dtype,
            concept_batch=settings.concept_batch,
            cache_bytes=settings.cache_mb * 1024 * 1024,
            text_cache_size=settings.text_cache_size,
            compile_vision=settings.compile_vision,
            vision_backend=settings.vision_backend,
            openvino_cache_dir=settings.openvino_cache_dir,
            everything=EverythingConfig.from_settings(settings),
        )

    # --- inference -------------------------------------------------------------------------
    def segment(
        self,
        image: Image.Image | np.ndarray,
        concepts: list[str],
        options: SegmentOptions | None = None,
        everything_mode: str | None = None,
    ) -> SegmentationResult:
        """Every instance of every concept in `image`, sorted by confidence.

        No concepts: segment everything, by `everything_mode` ("grid" or "vocabulary"; default the
        configured one, see `segserve.engine.everything`).
        """
        options = options or SegmentOptions()
        rgb = to_rgb_array(image)
        if not concepts:
            with self._lock, torch.inference_mode():
                return self.everything.segment(rgb, options, mode=everything_mode)
        with self._lock, torch.inference_mode():
            features = self.encode_image(rgb)
            return self.segment_features(features, rgb, concepts, options)

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """RGB uint8 -> normalised `pixel_values` (1, 3, S, S) exactly as `Sam3Processor` makes them."""
        pixel_values = self.processor.image_processor(images=rgb, return_tensors="pt").pixel_values
        return pixel_values.to(self.device, self.dtype)

    def encode_image(self, rgb: np.ndarray) -> VisionFeatures:
        """The ViT + detector neck: the expensive part, once per image content (cached).

        The returned tensors may be shared with the cache and later requests: treat them as
        read-only.
        """
        key = image_key(rgb, self.model_id, self.image_size, str(self.dtype))
        cached = self.vision_cache.get(key)
        if cached is not None:
            self.stats["vision_cache_hits"] += 1
            return cached
        self.stats["vision_cache_misses"] += 1
        pixel_values = self.preprocess(rgb)
        if self._openvino is not None:
            backbone, fpn, position = self._openvino(pixel_values)
        else:
            out = self.model.get_vision_features(pixel_values=pixel_values)
            backbone, fpn, position = out.last_hidden_state, tuple(out.fpn_hidden_states), out.fpn_position_encoding
        self.stats["vision_passes"] += 1
        # Sam3Model.forward drops the last (0.5x) level itself, so all levels are passed through.
        position = tuple(position)
        # The sine position encodings depend only on the feature sizes: keep one copy per size so
        # eight cached images don't hold eight identical ~110 MB copies.
        position = self._position_encodings.setdefault(tuple(t.shape for t in position), position)
        features = VisionFeatures(fpn_hidden_states=fpn, fpn_position_encoding=position, backbone=backbone)
        self.vision_cache.put(key, features)
        return features

    def encode_text(self, concepts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Concepts -> (text features (N, 32, D), attention mask (N, 32)), each concept cached.

        Tokens are padded to and truncated at the encoder's 32; the features are what
        `Sam3Model.get_text_features(...).pooler_output` gives, the same tensor `Sam3Model.forward`
        computes from `input_ids`. Concepts not in the cache are encoded together in one pass.
        """
        found = {c: self.text_cache.get(c) for c in dict.fromkeys(concepts)}
        missing = [c for c, v in found.items() if v is None]
        if missing:
            tokens = tokenize_concepts(self.processor.tokenizer, missing, MAX_TEXT_TOKENS)
            input_ids = tokens["input_ids"].to(self.device)
            attention_mask = tokens["attention_mask"].to(self.device)
            feats = self.model.get_text_features(
                input_ids=input_ids, attention_mask=attention_mask, return_dict=True
            ).pooler_output
            self.stats["text_passes"] += 1
            for i, concept in enumerate(missing):
                # clone: a row view would keep the whole batch's storage alive in the cache.
                found[concept] = (feats[i].clone(), attention_mask[i].clone())
                self.text_cache.put(concept, found[concept])
        return (
            torch.stack([found[c][0] for c in concepts]),
            torch.stack([found[c][1] for c in concepts]),
        )

    def _compile_vision(self) -> None:
        """`torch.compile` each ViT layer ("regional" compilation), in place.

        The 32 layers come in two shapes (windowed and global attention), so inductor compiles two
        graphs, not 32; it fuses RoPE, GELU, the layer norms and residual adds around the matmuls
        and attention (outputs within ~1e-5 of eager). The compilation itself happens on the
        first image (tens of seconds on CPU; the server's warm-up pays it). Opt-in: on a 2-core
        CPU the full-size ViT already runs at ~90 % of the matmul peak and compiling gained
        nothing there (bench/README.md); it is kept for machines where that is not so.
        """
        for layer in self.model.vision_encoder.backbone.layers:
            layer.compile(dynamic=False)

    def cache_stats(self) -> dict[str, dict[str, int]]:
        """Vision and text cache counters for metrics: hits, misses, evictions, entries, and
        `bytes` (vision: features held, position encodings included) / `capacity`."""
        vision = self.vision_cache.stats()
        shared = sum(t.numel() * t.element_size() for p in self._position_encodings.values() for t in p)
        vision["bytes"] = vision.pop("size") + shared
        return {"vision": vision, "text": self.text_cache.stats()}

    def segment_features(
        self,
        features: VisionFeatures,
        rgb: np.ndarray,
        concepts: list[str],
        options: SegmentOptions,
    ) -> SegmentationResult:
        """Detector + mask head for all concepts on precomputed vision features, then post-processing."""
        height, width = rgb.shape[:2]
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        text_features, attention_mask = self.encode_text(concepts)
        scores_all, masks_all = [], []
        for start in range(0, len(concepts), self.concept_batch):
            stop = min(start + self.concept_batch, len(concepts))
            out = self.model(
                vision_embeds=features.expand(stop - start),
                # Sam3Model.forward reads only `.pooler_output` of precomputed text embeddings.
                text_embeds=BaseModelOutputWithPooling(pooler_output=text_features[start:stop]),
                attention_mask=attention_mask[start:stop],
            )
            self.stats["detector_passes"] += 1
            # The reference's score: sigmoid(class logit) x sigmoid(presence logit).
            scores_all.append(out.pred_logits.sigmoid() * out.presence_logits.sigmoid())
            masks_all.append(out.pred_masks)
        scores = torch.cat(scores_all)  # (N, Q)
        low_res = torch.cat(masks_all)  # (N, Q, h, w) logits
        return self._postprocess(scores, low_res, concepts, (height, width), options, rgb)

    def _postprocess(
        self,
        scores: torch.Tensor,
        low_res: torch.Tensor,
        concepts: list[str],
        size: tuple[int, int],
        options: SegmentOptions,
        rgb: np.ndarray | None,
    ) -> SegmentationResult:
        concept_idx, query_idx = torch.nonzero(scores >= options.threshold, as_tuple=True)
        kept_scores = scores[concept_idx, query_idx].float()
        # Highest confidence first; ties keep concept order then query order (stable sort).
        order = torch.argsort(kept_scores, descending=True, stable=True)
        concept_idx, query_idx, kept_scores = concept_idx[order], query_idx[order], kept_scores[order]

        # Masks are thresholded straight into the result's array (no per-chunk copies, no final
        # np.stack), and boxes come from the row/column occupancy computed once per chunk.
        height, width = size
        cap = min(len(order), options.max_segments)
        masks = np.empty((cap, height, width), dtype=bool)
        boxes = np.zeros((cap, 4), dtype=np.int64)
        keep_rows: list[int] = []
        start = 0
        while start < len(order) and len(keep_rows) < cap:
            filled = len(keep_rows)
            # Never more rows than free slots, so every chunk lands inside `masks`.
            stop = min(start + UPSAMPLE_CHUNK, start + cap - filled, len(order))
            # Operation for operation the reference's post-processing (sigmoid, bilinear, >), in the
            # model's dtype on its device.
            probs = low_res[concept_idx[start:stop], query_idx[start:stop]].sigmoid()
            full = torch.nn.functional.interpolate(
                probs.unsqueeze(0), size=size, mode="bilinear", align_corners=False
            ).squeeze(0)
            dst = masks[filled : filled + (stop - start)]
            if full.device.type == "cpu":
                binary = torch.gt(full, options.mask_threshold, out=torch.from_numpy(dst))
            else:
                binary = full > options.mask_threshold
                dst[...] = binary.cpu().numpy()  # the one device -> host copy
            row_any = binary.any(dim=2).cpu().numpy()  # (n, H)
            col_any = binary.any(dim=1).cpu().numpy()  # (n, W)
            for j in range(stop - start):
                if not row_any[j].any():
                    continue  # a segment whose mask is empty is not returned
                slot = len(keep_rows)
                if slot != filled + j:  # close the gap an empty mask left (rare)
                    masks[slot] = masks[filled + j]
                rows, cols = row_any[j], col_any[j]
                boxes[slot] = (
                    cols.argmax(),
                    rows.argmax(),
                    width - cols[::-1].argmax(),
                    height - rows[::-1].argmax(),
                )
                keep_rows.append(start + j)
            start = stop
        if not keep_rows:
            return SegmentationResult.empty(size, image=rgb)
        n = len(keep_rows)
        rows_t = torch.tensor(keep_rows, dtype=torch.long, device=kept_scores.device)
        return SegmentationResult(
            masks=masks[:n],  # a view: no copy even when empty masks were dropped
            boxes=boxes[:n],
            scores=kept_scores[rows_t].cpu().numpy(),
            labels=[concepts[i] for i in concept_idx[rows_t].tolist()],
            image_size=size,
            image=rgb,
        )


def _check_local_path(source: str) -> None:
    """A path-looking model that does not exist gets a clear message instead of a hub lookup."""
    looks_local = source.startswith(("/", "./", "../", "~")) or Path(source).exists()
    if not looks_local:
        return
    path = Path(source).expanduser()
    if not path.is_dir():
        raise ModelLoadError(
            f"No SAM 3 checkpoint directory at {path}. Point SEGSERVE_MODEL (or --model) at a folder "
            "holding config.json, model.safetensors and the processor files, e.g. one made with "
            "`hf download facebook/sam3 --local-dir ./sam3`."
        )
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{path} is not a SAM 3 checkpoint: it has no config.json. Download one with "
            "`hf download facebook/sam3 --local-dir ./sam3` and set SEGSERVE_MODEL to that folder."
        )


def _load_error_message(source: str, exc: Exception) -> str:
    """Turn hub/network/file errors into a sentence that says what to do."""
    name = type(exc).__name__
    text = str(exc)
    reason = f"({name}: {text.splitlines()[0][:300] if text else 'no detail'})"
    how = (
        f"To use {source}: accept the licence on https://huggingface.co/{source}, log in with "
        "`hf auth login` (or set HF_TOKEN), and make sure this machine can reach the hub — or set "
        "SEGSERVE_MODEL (or --model) to a local copy made with "
        f"`hf download {source} --local-dir ./sam3`."
    )
    if "Gated" in name or "gated" in text or "401" in text or "403" in text:
        return f"The model {source} is gated and this machine is not authorised to download it. {how} {reason}"
    if "RepositoryNotFound" in name or "404" in text:
        return (
            f"No model named {source} on the Hugging Face hub (or it is private). Check the name, or {how[0].lower()}"
            f"{how[1:]} {reason}"
        )
    return f"Could not load the SAM 3 checkpoint {source}. {how} {reason}"


def _features_nbytes(model: Any, dtype: torch.dtype) -> int:
    """Bytes of one image's cached features (FPN levels + ViT output), from the model's config."""
    vision = model.config.vision_config
    vit = vision.backbone_config
    grid = int(vit.image_size) // int(vit.patch_size)
    fpn = sum(int(grid * s) ** 2 for s in vision.scale_factors) * int(vision.fpn_hidden_size)
    backbone = grid * grid * int(vit.hidden_size)
    return (fpn + backbone) * torch.empty((), dtype=dtype).element_size()
