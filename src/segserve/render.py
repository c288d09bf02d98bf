"""Pictures of masks: transparent cutouts and the coloured overlay (the playground draws the same).

Works on plain arrays, so it needs nothing of the rest of segserve;
`SegmentationResult.cutout` / `.overlay` are the usual way in.

>>> mask = np.zeros((4, 4), bool); mask[1:3, 1:3] = True
>>> cutout(np.zeros((4, 4, 3), np.uint8), mask, (1, 1, 3, 3)).size
(2, 2)
"""

from __future__ import annotations

import colorsys
import functools
import logging
import shutil
import subprocess
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

# Where a font with Chinese glyphs lives when fontconfig's fc-list is not there to ask: Debian and
# Ubuntu's fonts-noto-cjk (scripts/install-dev.sh installs it), then macOS and Windows.
_CJK_FONT_FILES = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),  # face 2: Noto Sans CJK SC
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Medium.ttc", 2),
    ("/System/Library/Fonts/PingFang.ttc", 0),
    ("/System/Library/Fonts/STHeiti Medium.ttc", 0),
    ("C:/Windows/Fonts/msyh.ttc", 0),
)
# A code point no font draws (plane 16 private use): what it renders as is the font's .notdef box.
_NO_GLYPH = "\U0010fffd"
_CHIP_PAD = 3  # pixels between a label's text and its chip's edge
_CHIP_GAP = 2  # pixels kept free between two chips


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
    """`rgb` with each of `masks` (N, H, W) in its own colour, its outline, and `tags[i]` on a chip
    of that colour inside the mask, no two chips overlapping where there is room."""
    out = rgb.astype(np.float32)
    colors = palette(len(masks))
    for i, m in enumerate(masks):
        out[m] = out[m] * (1 - opacity) + np.array(colors[i], np.float32) * opacity
    if outline:
        for i, m in enumerate(masks):
            out[mask_edges(m)] = colors[i]
    img = Image.fromarray(out.clip(0, 255).astype(np.uint8), "RGB")
    if tags:
        height, width = rgb.shape[:2]
        font = label_font(label_size(width, height))
        draw = ImageDraw.Draw(img)
        chips = label_chips(tags, masks, boxes, font)
        for i, (tag, (x, y, x2, y2)) in enumerate(zip(tags, chips, strict=True)):
            left, top, _, _ = draw.textbbox((0, 0), tag, font=font)
            draw.rectangle((x, y, x2 - 1, y2 - 1), fill=colors[i])
            draw.text((x + _CHIP_PAD - left, y + _CHIP_PAD - top), tag, fill=_text_colour(colors[i]), font=font)
    return img


def label_chips(
    tags: Sequence[str], masks: np.ndarray, boxes: np.ndarray, font: ImageFont.FreeTypeFont | ImageFont.ImageFont
) -> list[tuple[int, int, int, int]]:
    """(x1, y1, x2, y2), exclusive, of each tag's chip: its text in `font` plus padding, placed by
    `place_chips` around the mask's `label_anchors`."""
    sizes = []
    for tag in tags:
        left, top, right, bottom = font.getbbox(tag)
        sizes.append((int(right - left) + 2 * _CHIP_PAD, int(bottom - top) + 2 * _CHIP_PAD))
    height, width = masks.shape[1:3]
    return place_chips(sizes, label_anchors(masks, boxes), (width, height))


def _text_colour(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on the palette's light colours (yellow, green, cyan), white on the rest: readable on both."""
    luma = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    return (0, 0, 0) if luma > 160 else (255, 255, 255)


def label_anchors(masks: np.ndarray, boxes: np.ndarray) -> list[tuple[int, int]]:
    """(x, y) per mask where its label goes: the mask's most interior pixel, the maximum of its
    distance transform (inside even for a ring or an L, unlike the centroid); its box's centre
    when the mask is empty. OpenCV's distance transform: exact enough (3x3 L2) and ~1 ms a mask."""
    import cv2

    anchors = []
    for mask, box in zip(masks, boxes, strict=True):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if not len(rows):
            anchors.append((int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)))
            continue
        y0, x0 = int(rows[0]), int(cols[0])
        # Padded with background, so the image's edge counts as the mask's edge.
        crop = np.pad(mask[y0 : rows[-1] + 1, x0 : cols[-1] + 1], 1).astype(np.uint8)
        dist = cv2.distanceTransform(crop, cv2.DIST_L2, 3)
        # The maximum is often a ridge (a rectangle's midline): take its pixel nearest its middle.
        ys, xs = np.nonzero(dist >= dist.max() - 0.5)
        k = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
        anchors.append((x0 + int(xs[k]) - 1, y0 + int(ys[k]) - 1))
    return anchors


def place_chips(
    sizes: Sequence[tuple[int, int]], anchors: Sequence[tuple[int, int]], image_size: tuple[int, int]
) -> list[tuple[int, int, int, int]]:
    """(x1, y1, x2, y2) per label chip, in order (the most confident first): centred on its anchor
    when that place is free, else the nearest free place around it (chip-sized steps, up to 3
    chips away), else the place that overlaps the chips already placed least. Kept in the image."""
    width, height = image_size
    placed = np.zeros((0, 4), np.int64)
    out = []
    for (w, h), (ax, ay) in zip(sizes, anchors, strict=True):
        best, best_overlap = None, None
        for dx, dy in _NUDGES:
            x = min(max(ax - w // 2 + int(dx * (w + _CHIP_GAP)), 0), max(width - w, 0))
            y = min(max(ay - h // 2 + int(dy * (h + _CHIP_GAP)), 0), max(height - h, 0))
            overlap = _overlap(placed, (x - _CHIP_GAP, y - _CHIP_GAP, x + w + _CHIP_GAP, y + h + _CHIP_GAP))
            if best_overlap is None or overlap < best_overlap:
                best, best_overlap = (x, y, x + w, y + h), overlap
            if overlap == 0:
                break
        assert best is not None
        out.append(best)
        placed = np.vstack([placed, best])
    return out


def _overlap(placed: np.ndarray, rect: tuple[int, int, int, int]) -> int:
    """Total area `rect` shares with the rectangles in `placed` (N, 4)."""
    if not len(placed):
        return 0
    w = np.minimum(placed[:, 2], rect[2]) - np.maximum(placed[:, 0], rect[0])
    h = np.minimum(placed[:, 3], rect[3]) - np.maximum(placed[:, 1], rect[1])
    return int((np.clip(w, 0, None) * np.clip(h, 0, None)).sum())


def _nudges(reach: int = 3) -> list[tuple[float, float]]:
    """Offsets in chip sizes (half a width sideways, a height up or down), nearest first."""
    steps = [(dx / 2, float(dy)) for dx in range(-2 * reach, 2 * reach + 1) for dy in range(-reach, reach + 1)]
    return sorted(steps, key=lambda d: (d[0] ** 2 + d[1] ** 2, abs(d[0]), d[1]))


_NUDGES = _nudges()


def label_size(width: int, height: int) -> int:
    """Label text height in pixels for a `width` x `height` image: readable on a photo, not huge."""
    return int(min(max(round(min(width, height) / 36), 12), 48))


@functools.lru_cache(maxsize=8)
def label_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The labels' font at `size` px: one with Chinese glyphs when the system has one (labels are
    the user's concept text, often Chinese), else PIL's default (Latin only)."""
    found = cjk_font_file()
    if found is not None:
        return ImageFont.truetype(found[0], size, index=found[1])
    return ImageFont.load_default(size)


@functools.lru_cache(maxsize=1)
def cjk_font_file() -> tuple[str, int] | None:
    """(file, face index) of an installed font that draws 人 as a glyph, not a box; None (logged
    once) when there is none. Asks fontconfig when it is installed, else looks in the usual places."""
    for path, index in [*_fontconfig_cjk_fonts(), *_CJK_FONT_FILES]:
        try:
            font = ImageFont.truetype(path, 24, index=index)
        except OSError:
            continue
        if draws(font, "人"):
            return path, index
    log.warning(
        "no font with Chinese glyphs found (on Debian/Ubuntu: apt-get install fonts-noto-cjk); overlay "
        "labels use PIL's default font, which draws Chinese, Japanese and Korean text as boxes"
    )
    return None


def _fontconfig_cjk_fonts() -> list[tuple[str, int]]:
    """Fonts fontconfig says cover simplified Chinese, sans-serif regular SC faces first."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    try:
        listing = subprocess.run(
            [fc_list, "-f", "%{file}\t%{index}\t%{family}\t%{style}\n", ":lang=zh-cn"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    fonts = []
    for line in listing.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[1].isdigit():
            path, index, family, style = parts
            rank = ("SC" not in family, "Mono" in family, "Serif" in family, "Regular" not in style, path)
            fonts.append((rank, (path, int(index))))
    return [font for _, font in sorted(fonts)]


def draws(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str) -> bool:
    """Whether `font` has a real glyph for every character of `text`: each renders differently from
    the font's .notdef box (the "tofu" a missing glyph becomes) and from nothing."""
    tofu = glyph_bitmap(font, _NO_GLYPH)
    return all((bits := glyph_bitmap(font, ch)) != tofu and any(bits) for ch in text if not ch.isspace())


def glyph_bitmap(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, ch: str) -> bytes:
    """The pixels `font` draws for `ch`, white on black, on a canvas twice its size."""
    size = int(getattr(font, "size", 16))
    canvas = Image.new("L", (2 * size, 2 * size))
    ImageDraw.Draw(canvas).text((0, 0), ch, fill=255, font=font)
    return canvas.tobytes()


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
