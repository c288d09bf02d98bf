"""What a request asks (`SegmentRequest`: concepts + `SegmentOptions`) and what the engine returns
(`SegmentationResult`: columnar, like supervision's `Detections`).

>>> r = SegmentationResult.empty((480, 640))
>>> len(r), r.to_dict()
(0, {'num_segments': 0, 'segments': [], 'concepts': []})
"""

from __future__ import annotations

import reprlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, overload

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask
from pydantic import BaseModel, ConfigDict, ValidationError

from segserve import masks as masks_mod
from segserve import render
from segserve.errors import InvalidParameterError
from segserve.prompts import Concept, ObjectPrompt, VisualRequest, resolve_visual
from segserve.settings import MASK_FORMATS, EverythingMode, LabelLanguage, MaskFormat, Settings

_SETTINGS = Settings.model_fields
# Echoes a client's bad value in the error: bounded in length and depth, whatever was sent.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 2, 60, 60, 60


class SegmentOptions(BaseModel):
    """Every per-request knob. Defaults, ranges and descriptions are the `Settings` fields of the
    same names, so the server's defaults, the OpenAPI schema and the CLI all come from one table.

    >>> SegmentOptions.resolve(None, threshold="0.3", max_segments=None).threshold
    0.3
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = _SETTINGS["threshold"]
    mask_threshold: float = _SETTINGS["mask_threshold"]
    max_segments: int = _SETTINGS["max_segments"]
    mask_format: MaskFormat = _SETTINGS["mask_format"]
    everything_mode: EverythingMode = _SETTINGS["everything_mode"]
    label_language: LabelLanguage = _SETTINGS["label_language"]

    @classmethod
    def resolve(cls, settings: Settings | None = None, **overrides: Any) -> SegmentOptions:
        """The options of one request: each override that is not None, else the setting of that name.

        Overrides may be strings (form fields); booleans are refused for numbers (JSON `true` is not
        1.0). Raises `InvalidParameterError` naming the field.
        """
        base = settings or Settings.defaults()
        values = {name: getattr(base, name) for name in cls.model_fields}
        for name, value in overrides.items():
            if name not in cls.model_fields:
                raise TypeError(f"unknown option {name!r}; options are {', '.join(cls.model_fields)}")
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                # Every option is a scalar: a boolean is not 1.0, and a nested value is never parsed.
                raise InvalidParameterError(
                    f"`{name}` must be a number or a string; got {_SHORT.repr(value)}.", param=name
                )
            values[name] = value
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else None
            raise InvalidParameterError(
                f"Invalid `{name}` ({_SHORT.repr(first['input'])}): {first['msg']}.", param=name
            ) from None


@dataclass(frozen=True)
class SegmentRequest:
    """What one request asks of the engine: the concepts to find and the options.

    >>> r = SegmentRequest.resolve(None, prompt="dog, cat", threshold=0.3)
    >>> [c.label for c in r.concepts], r.options.threshold
    (['dog', 'cat'], 0.3)
    """

    concepts: tuple[Concept, ...] = ()
    options: SegmentOptions = field(default_factory=SegmentOptions)
    # Interactive mode (points and/or a box around one object) instead of concepts; and which field
    # the concepts' exemplar boxes came from, for the error that names it.
    object_prompt: ObjectPrompt | None = None
    exemplar_param: str = "boxes"

    # The visual-prompt fields `resolve` reads besides `prompt` (prompts/visual.py has their rules).
    VISUAL_FIELDS = ("boxes", "box_labels", "concepts", "points", "point_labels", "box", "multimask")

    @classmethod
    def resolve(cls, settings: Settings | None = None, *, prompt: str | None = None, **fields: Any) -> SegmentRequest:
        """The request a client's fields describe (`prompt`, the visual-prompt fields and the options),
        within `settings`' limits and with its defaults."""
        settings = settings or Settings.defaults()
        visual = {name: fields.pop(name) for name in cls.VISUAL_FIELDS if name in fields}
        resolved = resolve_visual(settings, prompt=prompt, **visual)
        return cls(
            resolved.concepts,
            SegmentOptions.resolve(settings, **fields),
            object_prompt=resolved.object_prompt,
            exemplar_param=resolved.exemplar_param,
        )

    def check_inside(self, size: tuple[int, int]) -> None:
        """400 for a box or point past the decoded image of `size` (height, width), naming its field."""
        VisualRequest(self.concepts, self.object_prompt, self.exemplar_param).check_inside(size)


class ConceptText(NamedTuple):
    """A concept as the answer reports it: the client's `label` and the `text` the model read."""

    label: str
    text: str | None


@dataclass(frozen=True)
class Segment:
    """One instance: a row of a `SegmentationResult`. `id` is 1-based, in confidence order."""

    id: int
    label: str
    confidence: float
    bbox: tuple[int, int, int, int]
    mask: np.ndarray | None  # (H, W) bool, None when masks were not requested

    @property
    def area(self) -> int:
        return int(self.mask.sum()) if self.mask is not None else 0


class SegmentationResult:
    """N segments of one image, stored column by column.

    masks  (N, H, W) bool, or None when only boxes are known (mask_format="none")
    boxes  (N, 4) int64 x1, y1, x2, y2 with x2/y2 exclusive
    scores (N,) float32 confidences, sorted high to low by the engine
    labels list of N strings
    image_size (height, width)

    The masks may be given dense (`masks=`) or as pycocotools RLE dicts (`rles=`, what the engine
    makes: a request's memory then does not grow with the number of full-resolution masks). Each
    form is computed from the other on first use; `mask(i)` decodes one mask only.
    """

    def __init__(
        self,
        masks: np.ndarray | None,
        boxes: Any,
        scores: Any,
        labels: Sequence[str],
        image_size: tuple[int, int],
        image: np.ndarray | None = None,
        *,
        rles: list[dict[str, Any]] | None = None,
        concepts: Sequence[Concept | ConceptText] = (),
    ) -> None:
        self.boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
        self.scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        self.labels = [str(lbl) for lbl in labels]
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.image = image  # (H, W, 3) uint8 RGB, for cutout/overlay
        n = len(self.scores)
        if len(self.boxes) != n:
            raise ValueError(f"boxes must have shape ({n}, 4) to match scores, got {self.boxes.shape}")
        if len(self.labels) != n:
            raise ValueError(f"labels must have {n} entries to match scores, got {len(self.labels)}")
        self._masks: np.ndarray | None = None
        self._rles = None if rles is None else list(rles)
        # The request's concepts in prompt order: what each label was read as (`text`, None for exemplars only).
        self.concepts = tuple(ConceptText(c.label, c.text) for c in concepts)
        if masks is not None:
            self._masks = np.asarray(masks, dtype=bool)
            expected = (n, *self.image_size)
            if self._masks.shape != expected:
                raise ValueError(f"masks must have shape {expected}, got {self._masks.shape}")
        if self._rles is not None:
            if len(self._rles) != n:
                raise ValueError(f"rles must have {n} entries to match scores, got {len(self._rles)}")
            sizes = {tuple(int(v) for v in r["size"]) for r in self._rles}
            if sizes - {self.image_size}:
                raise ValueError(f"rles must be of size {self.image_size}, got {sorted(sizes)}")
        if self.image is not None:
            expected_img = (*self.image_size, 3)
            if self.image.shape != expected_img or self.image.dtype != np.uint8:
                raise ValueError(
                    f"image must be uint8 of shape {expected_img}, got {self.image.dtype} {self.image.shape}"
                )

    def __repr__(self) -> str:
        return f"SegmentationResult({len(self)} segments, image_size={self.image_size}, labels={self.labels!r})"

    # --- masks, dense or compact ------------------------------------------------------------
    @property
    def has_masks(self) -> bool:
        return self._masks is not None or self._rles is not None

    @property
    def masks(self) -> np.ndarray | None:
        """(N, H, W) bool, decoded from the RLEs on first use (N full-size masks: mind big images)."""
        if self._masks is None and self._rles is not None:
            self._masks = masks_mod.decode_rles(self._rles, *self.image_size)
        return self._masks

    @property
    def rles(self) -> list[dict[str, Any]] | None:
        """The masks as pycocotools RLE dicts (`counts` raw bytes), encoded on first use."""
        if self._rles is None and self._masks is not None:
            self._rles = masks_mod.encode_rles(self._masks)
        return self._rles

    def mask(self, i: int) -> np.ndarray:
        """Mask `i` (0-based) as (H, W) bool, decoding only that one."""
        if self._masks is not None:
            return self._masks[i]
        if self._rles is None:
            raise ValueError("this result has no masks (mask_format='none')")
        return masks_mod.decode_rles([self._rles[i]], *self.image_size)[0]

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def empty(cls, image_size: tuple[int, int], image: np.ndarray | None = None) -> SegmentationResult:
        h, w = image_size
        return cls(
            masks=np.zeros((0, h, w), dtype=bool),
            boxes=np.zeros((0, 4), dtype=np.int64),
            scores=np.zeros((0,), dtype=np.float32),
            labels=[],
            image_size=(h, w),
            image=image,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], image: np.ndarray | None = None) -> SegmentationResult:
        """The wire JSON of api-contract.md -> result, masks decoded from RLE or polygons.

        The image size comes from `image` when given, else from the masks. An answer without masks
        (`mask_format="none"`) gives `masks=None`.
        """
        segments = data.get("segments", [])
        if int(data.get("num_segments", len(segments))) != len(segments):
            raise ValueError("num_segments does not match the number of segments")
        wire_masks = [seg.get("mask") for seg in segments]
        has_masks = all(wire_masks)  # also true for no segments: an empty (0, H, W) stack
        size = (image.shape[0], image.shape[1]) if image is not None else None
        if size is None and segments and has_masks:
            size = (int(wire_masks[0]["size"][0]), int(wire_masks[0]["size"][1]))
        size = size or (0, 0)
        masks = None
        if has_masks:
            decoded = [
                masks_mod.rle_decode(m) if "counts" in m else masks_mod.polygons_to_mask(m.get("polygons", []), *size)
                for m in wire_masks
            ]
            masks = np.stack(decoded) if decoded else np.zeros((0, *size), bool)
        return cls(
            masks=masks,
            boxes=np.array([seg["bbox"] for seg in segments], dtype=np.int64).reshape(-1, 4),
            scores=np.array([seg["confidence"] for seg in segments], dtype=np.float32),
            labels=[seg["label"] for seg in segments],
            image_size=size,
            image=image,
            concepts=[ConceptText(str(c["label"]), c.get("text")) for c in data.get("concepts") or []],
        )

    # --- access ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self) -> Iterator[Segment]:
        for i in range(len(self)):
            yield self[i]

    @overload
    def __getitem__(self, index: int | np.integer) -> Segment: ...
    @overload
    def __getitem__(self, index: slice | np.ndarray | list[int] | list[bool]) -> SegmentationResult: ...
    def __getitem__(self, index):
        """`result[i]` is one `Segment`; `result[rows]` (a slice, indices or a boolean mask) is a
        `SegmentationResult` of those rows, in that order (supervision's selection)."""
        if isinstance(index, (int, np.integer)):
            return self._segment(int(index))
        rows = np.arange(len(self))[index]  # numpy checks bounds and boolean-mask lengths
        return SegmentationResult(
            masks=None if self._masks is None else self._masks[rows],
            boxes=self.boxes[rows],
            scores=self.scores[rows],
            labels=[self.labels[i] for i in rows.tolist()],
            image_size=self.image_size,
            image=self.image,
            rles=None if self._rles is None else [self._rles[i] for i in rows.tolist()],
            concepts=self.concepts,
        )

    def _segment(self, i: int) -> Segment:
        if not -len(self) <= i < len(self):
            raise IndexError(f"segment index {i} out of range for {len(self)} segments")
        i = i % len(self)
        x1, y1, x2, y2 = (int(v) for v in self.boxes[i])
        return Segment(
            id=i + 1,
            label=self.labels[i],
            confidence=float(self.scores[i]),
            bbox=(x1, y1, x2, y2),
            mask=self.mask(i) if self.has_masks else None,
        )

    @classmethod
    def merge(cls, results: Sequence[SegmentationResult]) -> SegmentationResult:
        """The segments of all `results` (one image), sorted by confidence; ties keep their order."""
        if not results:
            raise ValueError("merge needs at least one result")
        first = results[0]
        if any(r.image_size != first.image_size for r in results):
            raise ValueError(f"results of different images: sizes {[r.image_size for r in results]}")
        dense = all(r._masks is not None for r in results)
        compact = not dense and all(r.has_masks for r in results)
        merged = cls(
            masks=np.concatenate([r._masks for r in results]) if dense else None,
            rles=[rle for r in results for rle in (r.rles or [])] if compact else None,
            boxes=np.concatenate([r.boxes for r in results]),
            scores=np.concatenate([r.scores for r in results]),
            labels=[label for r in results for label in r.labels],
            image_size=first.image_size,
            image=first.image,
            concepts=list(dict.fromkeys(c for r in results for c in r.concepts)),
        )
        return merged[np.argsort(-merged.scores, kind="stable")]

    @property
    def areas(self) -> np.ndarray:
        if self._masks is not None:
            return self._masks.sum(axis=(1, 2)).astype(np.int64)  # reshape(0, -1) fails on zero segments
        if self._rles:
            return np.asarray(coco_mask.area(self._rles), dtype=np.int64)
        return np.zeros(len(self), dtype=np.int64)

    def counts(self) -> dict[str, int]:
        """Objects per label, most frequent first: the counting use case."""
        return dict(Counter(self.labels).most_common())

    # --- wire format -----------------------------------------------------------------------
    def to_dict(self, mask_format: MaskFormat = "rle") -> dict[str, Any]:
        """Exactly the response JSON of api-contract.md."""
        if mask_format not in MASK_FORMATS:
            raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")
        h, w = self.image_size
        if mask_format != "none" and not self.has_masks:
            raise ValueError("this result has no masks; use mask_format='none'")
        rles = self.rles if mask_format == "rle" else None
        segments = []
        for i in range(len(self)):
            seg: dict[str, Any] = {
                "id": i + 1,
                "label": self.labels[i],
                "confidence": round(float(self.scores[i]), 4),
                "bbox": [int(v) for v in self.boxes[i]],
            }
            if rles is not None:
                seg["mask"] = {"encoding": "rle", **masks_mod.to_wire(rles[i])}
            elif mask_format == "polygon":
                seg["mask"] = {
                    "encoding": "polygon",
                    "size": [h, w],
                    "polygons": masks_mod.mask_to_polygons(self.mask(i)),  # one full-size mask at a time
                }
            segments.append(seg)
        # `concepts` is segserve's extension of the wire format: clients that ignore unknown fields are unaffected.
        concepts = [{"label": c.label, "text": c.text} for c in self.concepts]
        return {"num_segments": len(segments), "segments": segments, "concepts": concepts}

    # --- pictures (drawn by segserve.render) ---------------------------------------------------
    def _pixels(self, image: np.ndarray | Image.Image | None) -> np.ndarray:
        """The RGB pixels to draw on: `image` if given, else the result's own; checked against the masks."""
        if image is not None:
            arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
        elif self.image is not None:
            arr = self.image
        else:
            raise ValueError("this result carries no image; pass image=")
        if arr.shape[:2] != self.image_size:
            raise ValueError(f"image is {arr.shape[:2]}, the masks are {self.image_size}")
        if not self.has_masks:
            raise ValueError("this result has no masks (mask_format='none')")
        return arr

    def cutout(self, i: int, image: np.ndarray | Image.Image | None = None, crop: bool = True) -> Image.Image:
        """Segment `i` (0-based) as an RGBA image whose background is transparent: the matting use case.

        Cropped to the segment's box unless `crop=False`.
        """
        arr = self._pixels(image)
        seg = self[i]
        return render.cutout(arr, seg.mask, seg.bbox if crop else None)

    def overlay(
        self,
        image: np.ndarray | Image.Image | None = None,
        opacity: float = 0.5,
        outline: bool = True,
        labels: bool = True,
    ) -> Image.Image:
        """The image with each mask in its own colour, its outline, and a `label 0.93` tag."""
        arr = self._pixels(image)
        tags = [f"{seg.label} {seg.confidence:.2f}" for seg in self] if labels else None
        return render.overlay(arr, self.masks, self.boxes, tags, opacity=opacity, outline=outline)
