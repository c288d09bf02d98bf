"""What the engine returns: `SegmentationResult` (columnar, like supervision's `Detections`).

>>> r = SegmentationResult.empty((480, 640))
>>> len(r), r.to_dict()
(0, {'num_segments': 0, 'segments': []})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

from segserve import masks as masks_mod
from segserve import render

MaskFormat = Literal["rle", "polygon", "none"]
MASK_FORMATS: tuple[str, ...] = ("rle", "polygon", "none")


@dataclass(frozen=True)
class SegmentOptions:
    """Per-request knobs; the defaults reproduce the reference API."""

    threshold: float = 0.5  # minimum confidence kept
    mask_threshold: float = 0.5  # mask probability cut-off
    max_segments: int = 100  # cap after sorting by confidence

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if not 0.0 <= self.mask_threshold <= 1.0:
            raise ValueError(f"mask_threshold must be in [0, 1], got {self.mask_threshold}")
        if self.max_segments < 1:
            raise ValueError(f"max_segments must be >= 1, got {self.max_segments}")


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


@dataclass
class SegmentationResult:
    """N segments of one image, stored column by column.

    masks  (N, H, W) bool, or None when only boxes are known (mask_format="none")
    boxes  (N, 4) int64 x1, y1, x2, y2 with x2/y2 exclusive
    scores (N,) float32 confidences, sorted high to low by the engine
    labels list of N strings
    image_size (height, width)
    """

    masks: np.ndarray | None
    boxes: np.ndarray
    scores: np.ndarray
    labels: list[str]
    image_size: tuple[int, int]
    image: np.ndarray | None = field(default=None, repr=False)  # (H, W, 3) uint8 RGB, for cutout/overlay

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.int64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.labels = [str(lbl) for lbl in self.labels]
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        n = len(self.scores)
        if len(self.boxes) != n:
            raise ValueError(f"boxes must have shape ({n}, 4) to match scores, got {self.boxes.shape}")
        if len(self.labels) != n:
            raise ValueError(f"labels must have {n} entries to match scores, got {len(self.labels)}")
        if self.masks is not None:
            self.masks = np.asarray(self.masks, dtype=bool)
            expected = (n, *self.image_size)
            if self.masks.shape != expected:
                raise ValueError(f"masks must have shape {expected}, got {self.masks.shape}")
        if self.image is not None:
            expected_img = (*self.image_size, 3)
            if self.image.shape != expected_img or self.image.dtype != np.uint8:
                raise ValueError(
                    f"image must be uint8 of shape {expected_img}, got {self.image.dtype} {self.image.shape}"
                )

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
        )

    # --- access ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self) -> Iterator[Segment]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int) -> Segment:
        if not -len(self) <= i < len(self):
            raise IndexError(f"segment index {i} out of range for {len(self)} segments")
        i = i % len(self)
        x1, y1, x2, y2 = (int(v) for v in self.boxes[i])
        return Segment(
            id=i + 1,
            label=self.labels[i],
            confidence=float(self.scores[i]),
            bbox=(x1, y1, x2, y2),
            mask=None if self.masks is None else self.masks[i],
        )

    @property
    def areas(self) -> np.ndarray:
        if self.masks is None:
            return np.zeros(len(self), dtype=np.int64)
        return self.masks.sum(axis=(1, 2)).astype(np.int64)  # reshape(0, -1) fails on zero segments

    def counts(self) -> dict[str, int]:
        """Objects per label, most frequent first: the counting use case."""
        return dict(Counter(self.labels).most_common())

    # --- wire format -----------------------------------------------------------------------
    def to_dict(self, mask_format: MaskFormat = "rle") -> dict[str, Any]:
        """Exactly the response JSON of api-contract.md."""
        if mask_format not in MASK_FORMATS:
            raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")
        h, w = self.image_size
        if mask_format != "none" and self.masks is None:
            raise ValueError("this result has no masks; use mask_format='none'")
        rles = masks_mod.rle_encode_many(self.masks) if mask_format == "rle" else None
        segments = []
        for i in range(len(self)):
            seg: dict[str, Any] = {
                "id": i + 1,
                "label": self.labels[i],
                "confidence": round(float(self.scores[i]), 4),
                "bbox": [int(v) for v in self.boxes[i]],
            }
            if rles is not None:
                seg["mask"] = {"encoding": "rle", "size": [h, w], "counts": rles[i]["counts"]}
            elif mask_format == "polygon":
                seg["mask"] = {
                    "encoding": "polygon",
                    "size": [h, w],
                    "polygons": masks_mod.mask_to_polygons(self.masks[i]),
                }
            segments.append(seg)
        return {"num_segments": len(segments), "segments": segments}

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
        if self.masks is None:
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
