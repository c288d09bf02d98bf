"""SAM 3 through Hugging Face transformers: vision once per image, all concepts in one batched pass.

>>> seg = Sam3Segmenter.from_pretrained("facebook/sam3")            # doctest: +SKIP
>>> result = seg.segment(Image.open("street.jpg"), ["person", "car"])  # doctest: +SKIP

The reference pipeline (transformers' model card) runs `Sam3Model(pixel_values, input_ids)` once
per concept, so every concept pays for the ViT (~90 % of the time). Here the vision encoder runs
once per image content (cached), its features are expanded (a view, no copy) to one row per concept,
and the DETR encoder/decoder + mask head run once for the whole batch; `postprocess.py` turns the
logits into the reference's masks, only for the detections that survive the score threshold.
An empty prompt segments everything: grid mode on the tracker (`everything.py`) or this detector
over a vocabulary, both on the same cached features.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segserve.engine import openvino
from segserve.engine.cache import LRUCache, image_key
from segserve.engine.detector import MaskLogits, TextDetector, image_state, splittable
from segserve.engine.everything import GridSegmenter
from segserve.engine.features import VisionFeatures, features_nbytes
from segserve.engine.loading import (
    DEFAULT_MODEL,
    load_error_message,
    release_mapped_pages,
    resolve_checkpoint,
    select_device,
    select_dtype,
)
from segserve.engine.postprocess import dedupe, detections_to_result, with_slack
from segserve.engine.tracker import load_tracker
from segserve.engine.visual import box_inputs, segment_object
from segserve.errors import ModelLoadError
from segserve.images import LocalImage, read_image
from segserve.prompts import (
    MAX_TEXT_TOKENS,
    Concept,
    ObjectPrompt,
    as_concepts,
    chinese,
    parse_prompt,
    tokenize_concepts,
)
from segserve.settings import Settings
from segserve.types import ConceptText, SegmentationResult, SegmentOptions

log = logging.getLogger(__name__)

# `cache_mb=0` sizes the vision-feature cache for this many images of the loaded model: ~1 GB on
# full-size SAM 3, so a CPU server stays under 8 GB (bench/README.md); re-prompts hit the latest four.
DEFAULT_CACHE_IMAGES = 4


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
        settings: Settings | None = None,
        **overrides: Any,
    ):
        """Wrap a loaded `Sam3Model` + `Sam3Processor`. The engine's knobs (batching, caches, vision
        backend, everything-mode) come from `settings` (default: `Settings.defaults()`), with
        `overrides` applied, e.g. `concept_batch=2`."""
        settings = settings or Settings.defaults()
        self.settings = settings.replace(**overrides) if overrides else settings
        cfg = self.settings
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.device = device or next(model.parameters()).device
        self.dtype = dtype or next(model.parameters()).dtype
        self.image_size = int(processor.image_processor.size["height"])
        # Vocabulary mode's concepts, parsed once (no per-request concept limit applies to them).
        self.vocabulary = parse_prompt(cfg.vocabulary, max_concepts=1_000_000, glossary=cfg.glossary)
        self._vocabulary_zh: list[Concept] | None = None  # the same, labelled in Chinese (label_language=zh)
        # Counts of expensive passes, for tests and metrics: they prove the ViT runs once per image.
        # The cache counters sit here too, so they reach the Prometheus endpoint with the rest.
        self.stats = {
            "vision_passes": 0,
            "detector_passes": 0,
            "text_passes": 0,
            "tracker_passes": 0,
            "vision_cache_hits": 0,
            "vision_cache_misses": 0,
        }
        self._lock = threading.Lock()
        # Vision features by image content (see cache.py): a re-prompt on the same image runs no ViT.
        # Budgeted without position encodings, which are stored once per size in `_position_encodings`.
        vision_budget = int(cfg.cache_mb * 2**20) or DEFAULT_CACHE_IMAGES * features_nbytes(model, self.dtype)
        self.vision_cache: LRUCache[VisionFeatures] = LRUCache(
            vision_budget if cfg.cache else 0, lambda f: f.nbytes(include_position=False)
        )
        # Text features by concept text, counted in concepts (a few hundred KiB each at most).
        self.text_cache: LRUCache[tuple[torch.Tensor, torch.Tensor]] = LRUCache(
            cfg.text_cache_size if cfg.cache else 0, lambda _: 1
        )
        self._position_encodings: dict[tuple, tuple[torch.Tensor, ...]] = {}
        # Off by default: on the full-size model on CPU it was no faster than eager (bench/README.md).
        if cfg.compile_vision:
            self._compile_vision()
        # The ViT + neck, and the detector for text concepts, through OpenVINO where that is exact and
        # faster (full-size fp32 on CPU; see engine/openvino.py); `vision_backend` and
        # `detector_backend` say which one runs each.
        self._openvino = self._openvino_part(openvino.OpenVINOVisionEncoder, "vision_backend", model_id)
        self.vision_backend = "openvino" if self._openvino is not None else "torch"
        self._ov_detector = self._openvino_part(openvino.OpenVINODetector, "detector_backend", model_id)
        self.detector_backend = "openvino" if self._ov_detector is not None else "torch"
        self._text_detector = TextDetector(model).eval()
        # Grid-mode everything. Its tracker loads on first use: no memory until then.
        self.grid = GridSegmenter(
            cfg,
            lambda: load_tracker(model_id, model.vision_encoder.backbone, device=self.device, dtype=self.dtype),
            self.stats,
        )

    def _openvino_part(self, kind: type, setting: str, model_id: str) -> Any:
        """The OpenVINO part `setting` asks for, or None: torch runs it."""
        backend = getattr(self.settings, setting)
        what = "vision encoder" if setting == "vision_backend" else "detector"
        if not openvino.should_use(backend, self.model.vision_encoder, self.device, self.dtype, setting):
            return None
        try:
            cache = Path(self.settings.openvino_cache_dir)
            return kind(self.model, self.image_size, cache, model_id, check_memory=backend == "auto")
        except Exception as exc:  # "auto" must never cost the server its start: torch runs it exactly
            if backend == "openvino":
                raise ModelLoadError(f"The OpenVINO {what} could not be built: {exc}") from exc
            log.warning("OpenVINO %s unavailable (%s); the %s runs on torch", what, exc, what)
            return None

    # --- loading ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> Sam3Segmenter:
        """Load the detector and processor from the hub or a local directory.

        Unset arguments come from `settings` (default: `Settings.defaults()`): `settings.model`,
        `.device`, `.dtype`. Raises `ModelLoadError` whose message says how to get the checkpoint
        when it can't be had, and `InvalidParameterError` for a device or dtype that can't be used.
        """
        from transformers import Sam3Model, Sam3Processor

        settings = settings or Settings.defaults()
        source = str(model_id_or_path or settings.model)
        dev = select_device(device if device is not None else settings.device)
        dt = select_dtype(dtype if dtype is not None else settings.dtype, dev)
        path = resolve_checkpoint(source, settings.hub_probe_timeout)
        try:
            processor = Sam3Processor.from_pretrained(path)
            model = Sam3Model.from_pretrained(path, dtype=dt)
        except Exception as exc:  # hub, network and file errors all arrive as different types
            raise ModelLoadError(load_error_message(source, exc)) from exc
        model = model.to(dev).eval()
        log.info("loaded %s on %s as %s", source, dev, dt)
        segmenter = cls(model, processor, model_id=source, device=dev, dtype=dt, settings=settings, **overrides)
        if segmenter.vision_backend == "openvino":
            # One copy of the ViT + neck, OpenVINO's: the torch weights (1.8 GB on SAM 3) would never run
            # again. Only a model loaded here is ours to change. The tracker keeps working: it reads
            # the ViT's output from the cached features, never its weights (see tracker.load_tracker).
            model.vision_encoder.to("meta")
            # Its pages stay mapped with the checkpoint file (and the cache key read around each of
            # its tensors): out of RSS with them. The rest of the model faults back in as it runs.
            for weights in Path(path).glob("*.safetensors"):
                release_mapped_pages(weights)
        return segmenter

    @classmethod
    def from_settings(cls, settings: Settings) -> Sam3Segmenter:
        """The engine `settings` describes: what the server and the CLI call, so a `SEGSERVE_*` knob
        means the same in both."""
        return cls.from_pretrained(settings=settings)

    # --- inference -------------------------------------------------------------------------
    def segment(
        self,
        image: LocalImage,
        concepts: str | Sequence[Concept | str] = (),
        options: SegmentOptions | None = None,
    ) -> SegmentationResult:
        """Every instance of every concept in `image`, sorted by confidence.

        `image`: a path, encoded bytes, a PIL image or an array, as the SDK takes (URLs excepted).
        `concepts`: a prompt string ("dog, cat") or concepts; none (or an empty prompt): segment
        everything, as `options.everything_mode` says ("grid" or "vocabulary").
        """
        options = options or SegmentOptions()
        if isinstance(concepts, str):
            concepts = parse_prompt(concepts, glossary=self.settings.glossary)
        wanted = as_concepts(concepts, self.settings.glossary)
        rgb = read_image(image, self.settings)
        with self._lock, torch.inference_mode():
            features = self.encode_image(rgb)
            if wanted:
                result = self.segment_features(features, rgb, wanted, options)
                result.concepts = tuple(ConceptText(c.label, c.text) for c in wanted)
                return result
            if options.everything_mode == "grid":
                return self.grid.segment(features, rgb, options)
            return self.segment_vocabulary(features, rgb, options)

    def segment_object(
        self, image: LocalImage, prompt: ObjectPrompt, options: SegmentOptions | None = None
    ) -> SegmentationResult:
        """Interactive mode: the one object that `prompt`'s clicks and/or box point at, by the SAM 3
        tracker on this image's (cached) ViT features: a re-click on the same image runs no ViT."""
        options = options or SegmentOptions()
        rgb = read_image(image, self.settings)
        with self._lock, torch.inference_mode():
            return segment_object(self.grid, self.encode_image(rgb), rgb, prompt, options)

    def warm_up(self) -> None:
        """Pay the one-off costs of every kind of request now, on a small image: what the server
        runs before /readyz says ready. Without it the first grid request loaded the tracker, the
        first vocabulary request encoded 80 concepts and the first masks imported OpenCV, each a
        stall for the requests queued behind it. A checkpoint without a tracker only logs it."""
        image = np.full((64, 64, 3), 127, dtype=np.uint8)
        with self._lock, torch.inference_mode():
            # Not cached: no request will ask for this image, and it would hold ~250 MB of the cache.
            features = self.image_features(image)
            self.segment_features(features, image, as_concepts(["object"]), SegmentOptions())
            texts = [c.text for c in self.vocabulary]
            if len(texts) <= self.settings.text_cache_size:  # kept for vocabulary requests (LRU)
                batch = self.settings.concept_batch
                for start in range(0, len(texts), batch):
                    self.encode_text(texts[start : start + batch])
            try:
                self.grid.warm_up(features)
            except ModelLoadError as exc:
                log.warning("segment-everything's grid mode is unavailable: %s", exc.message)
        import cv2  # noqa: F401 - RLE and polygon encoding import it on first use (~0.2-1 s)

        chinese.warm_up(self.settings.glossary)  # jieba's dictionary: ~1 s on the first Chinese prompt

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """RGB uint8 -> normalised `pixel_values` (1, 3, S, S) exactly as `Sam3Processor` makes them."""
        # channels_last said outright: transformers guesses the layout from the shape, and guesses wrong
        # for a 1-pixel-high or 3-pixel-wide image.
        pixel_values = self.processor.image_processor(
            images=rgb, return_tensors="pt", input_data_format="channels_last"
        ).pixel_values
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
        features = self.image_features(rgb)
        self.vision_cache.put(key, features)
        return features

    def image_features(self, rgb: np.ndarray) -> VisionFeatures:
        """What `encode_image` caches, computed without the cache."""
        features = self.run_vision(self.preprocess(rgb))
        self.stats["vision_passes"] += 1
        if splittable(features):
            # The detector's per-image part (~2 % of the ViT's cost), cached with the features so
            # that every concept and re-prompt on this image skips it (engine/detector.py).
            with torch.inference_mode():
                features.detector = image_state(self.model, features)
        return features

    def run_vision(self, pixel_values: torch.Tensor) -> VisionFeatures:
        """The ViT + neck on preprocessed pixels (1, 3, S, S), on whichever backend runs it."""
        if self._openvino is not None:
            backbone, fpn, position = self._openvino(pixel_values)
        else:
            out = self.model.get_vision_features(pixel_values=pixel_values)
            backbone, fpn, position = out.last_hidden_state, tuple(out.fpn_hidden_states), out.fpn_position_encoding
        # Sam3Model.forward drops the last (0.5x) level itself, so all levels are passed through.
        position = tuple(position)
        # The sine position encodings depend only on the feature sizes: keep one copy per size so
        # eight cached images don't hold eight identical ~110 MB copies.
        position = self._position_encodings.setdefault(tuple(t.shape for t in position), position)
        return VisionFeatures(fpn_hidden_states=fpn, fpn_position_encoding=position, backbone=backbone)

    def encode_text(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> (text features (N, 32, D), attention mask (N, 32)), each text cached.

        Tokens are padded to and truncated at the encoder's 32; the features are what
        `Sam3Model.get_text_features(...).pooler_output` gives, the same tensor `Sam3Model.forward`
        computes from `input_ids`. Texts not in the cache are encoded together in one pass.
        """
        found = {t: self.text_cache.get(t) for t in dict.fromkeys(texts)}
        missing = [t for t, v in found.items() if v is None]
        if missing:
            tokens = tokenize_concepts(self.processor.tokenizer, missing, MAX_TEXT_TOKENS)
            input_ids = tokens["input_ids"].to(self.device)
            attention_mask = tokens["attention_mask"].to(self.device)
            feats = self._text_features(input_ids, attention_mask)
            self.stats["text_passes"] += 1
            for i, text in enumerate(missing):
                # clone: a row view would keep the whole batch's storage alive in the cache.
                found[text] = (feats[i].clone(), attention_mask[i].clone())
                self.text_cache.put(text, found[text])
        return (
            torch.stack([found[t][0] for t in texts]),
            torch.stack([found[t][1] for t in texts]),
        )

    def _text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """`get_text_features(...).pooler_output` (N, 32, D), run on the batch's real tokens only.

        SAM 3's text encoder is causal and pads at the end, so a real token's features never depend on
        the padding; every reader of these features (the DETR encoder's and decoder's cross-attention,
        the mask head's prompt attention, the scoring's pooling) weighs padding by exactly 0 through
        the mask. So padding positions get zeros instead of 26 of 32 tokens' work: the encoder is bound
        by reading its 1.2 GB of weights, and a new concept's text costs ~0.20 instead of ~0.33 s on
        2 cores (bench/README.md). Real positions equal the full pass within float rounding.
        """
        length = int(attention_mask.sum(1).max())
        # A mask that is not ones-then-zeros (left padding) runs the full width, as the reference.
        if not bool((attention_mask.cumprod(1) == attention_mask).all()):
            length = attention_mask.shape[1]
        feats = self.model.get_text_features(
            input_ids=input_ids[:, :length], attention_mask=attention_mask[:, :length], return_dict=True
        ).pooler_output
        return torch.nn.functional.pad(feats, (0, 0, 0, input_ids.shape[1] - length))

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
        concepts: Sequence[Concept],
        options: SegmentOptions,
    ) -> SegmentationResult:
        """Detector + mask head for all concepts on precomputed vision features, then post-processing."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        text_features, attention_mask = self.encode_text([c.model_text for c in concepts])
        batch = self.settings.concept_batch
        # Concepts with exemplar boxes go through the geometry encoder, which adds a token even to a
        # row without boxes: text-only concepts are batched apart, so their answer never changes.
        groups = [[i for i, c in enumerate(concepts) if not c.boxes], [i for i, c in enumerate(concepts) if c.boxes]]
        rows: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for group in groups:
            for start in range(0, len(group), batch):
                index = group[start : start + batch]
                chunk = [concepts[i] for i in index]
                geometry = box_inputs(chunk, rgb.shape[:2], self.device, self.dtype) if chunk[0].boxes else {}
                if features.detector is not None and not geometry:  # exemplar boxes take Sam3Model.forward
                    inputs = [*features.detector.tensors(), text_features[index], attention_mask[index]]
                    run = self._ov_detector if self._ov_detector is not None else self._text_detector
                    logits, presence, queries, bias, pixels = run(*inputs)
                    masks = [(queries[k], bias[k], pixels[k]) for k in range(len(index))]
                else:
                    out = self.model(
                        vision_embeds=features.expand(len(index)),
                        # Sam3Model.forward reads only `.pooler_output` of precomputed text embeddings.
                        text_embeds=BaseModelOutputWithPooling(pooler_output=text_features[index]),
                        attention_mask=attention_mask[index],
                        **geometry,
                    )
                    logits, presence, masks = out.pred_logits, out.presence_logits, out.pred_masks
                self.stats["detector_passes"] += 1
                # The reference's score: sigmoid(class logit) x sigmoid(presence logit).
                chunk_scores = logits.sigmoid() * presence.sigmoid()
                rows.update({i: (chunk_scores[k], masks[k]) for k, i in enumerate(index)})
        scores = torch.stack([rows[i][0] for i in range(len(concepts))])  # (N, Q), in concept order
        low_res = MaskLogits([rows[i][1] for i in range(len(concepts))])  # (N, Q, h, w) logits, on demand
        labels = [c.label for c in concepts]
        return detections_to_result(scores, low_res, labels, rgb.shape[:2], options, rgb)

    def segment_vocabulary(
        self, features: VisionFeatures, rgb: np.ndarray, options: SegmentOptions
    ) -> SegmentationResult:
        """Vocabulary-mode everything: the detector over `settings.vocabulary`, overlapping
        detections of different concepts merged by mask IoU (the most confident wins).

        After each `concept_batch` pass, its detections join a pool that is de-duplicated and cut
        to a few more than `max_segments`, so 80 concepts x 200 queries of masks never exist at once.
        """
        nms, batch = self.settings.nms_thresh, self.settings.concept_batch
        keep = with_slack(options.max_segments)
        per_pass = options.model_copy(update={"max_segments": keep})
        pool: SegmentationResult | None = None
        vocabulary = self.vocabulary
        if options.label_language == "zh":
            if self._vocabulary_zh is None:
                self._vocabulary_zh = chinese.chinese_labels(self.vocabulary, self.settings.glossary)
            vocabulary = self._vocabulary_zh
        for start in range(0, len(vocabulary), batch):
            part = self.segment_features(features, rgb, vocabulary[start : start + batch], per_pass)
            pool = part if pool is None else dedupe(SegmentationResult.merge([pool, part]), nms, keep)
        if pool is None:  # Settings refuses an empty vocabulary; an engine built around it answers nothing
            return SegmentationResult.empty(rgb.shape[:2], image=rgb)
        return dedupe(pool, nms, options.max_segments)
