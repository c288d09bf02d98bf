"""Pictures of masks: transparent cutouts and the coloured overlay (the playground draws the same).

Works on plain arrays, so it needs nothing of the rest of segserve;
`SegmentationResult.cutout` / `.overlay` are the usual way in.

>>> mask = np.zeros((4, 4), bool); mask[1:3, 1:3] = True
>>> cutout(np.zeros((4, 4, 3), np.uint8), mask, (1, 1, 3, 3)).size
(2, 2)
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def cutout(rgb: np.ndarray, mask: np.ndarray, bbox: tuple[int, int, int, int] | None = None) -> Image.Image:
    """RGBA of `rgb` with everything outside `mask` transparent, cropped to `bbox` when given."""
    rgba = np.dstack([rgb, np.where(mask, 255, 0).astype(np.uint8)])
    if bbox is not None:
        x1, y1, x2, y2 = bbox
        rgba = rgba[y1:y2, x1:x2]
    return Image.fromarray(rgba, "RGBA")


def overlay(
    rgb: np.ndarray,
    masks: np.ndarray,
    boxes: np.ndarray,
    tags: Sequence[str] | None = None,
    opacity: float = 0.5,
    outline: bool = True,
) -> Image.Image:
    """`rgb` with each of `masks` (N, H, W) in its own colour, its outline, and `tags[i]` at its box."""
    out = rgb.astype(np.float32)
    colors = palette(len(masks))
    for i, m in enumerate(masks):
        out[m] = out[m] * (1 - opacity) + np.array(colors[i], np.float32) * opacity
    if outline:
        for i, m in enumerate(masks):
            out[mask_edges(m)] = colors[i]
    img = Image.fromarray(out.clip(0, 255).astype(np.uint8), "RGB")
    if tags:
        draw = ImageDraw.Draw(img)
        font = ImageFont.load_default()
        for i, tag in enumerate(tags):
            x1, y1 = int(boxes[i][0]), int(boxes[i][1])
            left, top, right, bottom = draw.textbbox((x1, y1), tag, font=font)
            ty = max(0, y1 - (bottom - top) - 4)
            draw.rectangle((x1, ty, x1 + (right - left) + 4, ty + (bottom - top) + 4), fill=colors[i])
            draw.text((x1 + 2, ty + 2 - (top - y1)), tag, fill=(255, 255, 255), font=font)
    return img


def palette(n: int) -> list[tuple[int, int, int]]:
    """n well-separated colours (golden-ratio hues), the same ones the playground uses."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.75, 0.95)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def mask_edges(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask that touch a pixel outside it (4-neighbourhood)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior
