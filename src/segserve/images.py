"""Image bytes or objects -> an RGB uint8 array the engine can use, with the limits enforced.

>>> to_rgb_array(Image.new("LA", (3, 2))).shape
(2, 3, 3)

Decoding rules (bad-inputs.md): an explicit format allow-list, the pixel limit
checked on the header before any pixel is decoded, decompression bombs refused, `load()` right
away so truncated files fail here and not inside the model, EXIF orientation applied, and every
mode (CMYK, palette, alpha, 16-bit, float) turned into 8-bit RGB.

This is also the one place a `data:` URI is recognised and decoded (`is_data_uri`,
`decode_data_uri`), so the server and the SDK, which needs no server dependencies, agree on one.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from os import PathLike
from pathlib import Path
from urllib.parse import unquote

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from segserve.errors import (
    ImageTooLargeError,
    InvalidImageError,
    InvalidImageURLError,
    UnsupportedImageFormatError,
)
from segserve.settings import Settings

# Pillow format ids we decode. HEIF/AVIF join when their plugin is importable.
BASE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")  # JPEG also opens MPO (multi-picture) files

# Signatures of formats Pillow does not open at all but that clients do send; they get 415, not 422.
_FOREIGN_SIGNATURES = (b"%PDF", b"<svg", b"<?xml")


def allowed_formats() -> tuple[str, ...]:
    """The allow-list, plus HEIF and AVIF when pillow-heif (or a Pillow with AVIF) is installed."""
    formats = list(BASE_FORMATS)
    try:  # optional dependency: segserve[heif]
        import pillow_heif

        pillow_heif.register_heif_opener()
        formats.append("HEIF")
    except ImportError:
        pass
    from PIL import features

    if features.check("avif"):
        formats.append("AVIF")
    return tuple(formats)


def decode_image(
    data: bytes,
    *,
    max_pixels: int | None = None,
    max_aspect_ratio: float | None = None,
    formats: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Bytes -> (H, W, 3) uint8 RGB in the EXIF-corrected frame, or a 413/415/422 error.

    The limits default to `Settings`' (`max_image_pixels`, `max_aspect_ratio`).
    """
    max_pixels = Settings.defaults().max_image_pixels if max_pixels is None else max_pixels
    img = open_image(data, max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio, formats=formats)
    w, h = img.size
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            if getattr(img, "is_animated", False):
                img.seek(0)  # animated GIF/WebP/TIFF: the first frame
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels((w, h), max_pixels) from None
        except Exception as exc:
            raise InvalidImageError(
                f"The image data is truncated or corrupt ({_short(exc)}). Send the complete file.", param="image"
            ) from None
    return to_rgb_array(img)


def open_image(
    data: bytes,
    *,
    max_pixels: int | None = None,
    max_aspect_ratio: float | None = None,
    formats: tuple[str, ...] | None = None,
) -> Image.Image:
    """The checks `decode_image` makes on the header alone (format, pixel count, aspect ratio): an
    unloaded image, or the same 413/415/422 error. Cheap; no pixel is decoded.
    """
    defaults = Settings.defaults()
    max_pixels = defaults.max_image_pixels if max_pixels is None else max_pixels
    max_aspect_ratio = defaults.max_aspect_ratio if max_aspect_ratio is None else max_aspect_ratio
    if not data:
        raise InvalidImageError("The image is empty (0 bytes). Send the image file's contents.", param="image")
    formats = formats or allowed_formats()
    # ImageFile.LOAD_TRUNCATED_IMAGES stays off: a cut file is an error, not a grey half-image.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=list(formats))
        except UnidentifiedImageError:
            raise _unidentified(data, formats) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(None, max_pixels) from None
        except Exception as exc:  # a corrupt header can raise anything from a plugin
            raise InvalidImageError(f"The image could not be read: {_short(exc)}.", param="image") from None
        w, h = img.size
        if w * h > max_pixels:
            raise _too_many_pixels((w, h), max_pixels)
        if w < 1 or h < 1:
            raise InvalidImageError("The image has no pixels.", param="image")
        if max(w, h) > max_aspect_ratio * min(w, h):
            # The model squashes every image to a square, and resizing a sliver costs memory in
            # proportion to its long side: 1 x 5,000,000 pixels took over 2 GB to preprocess.
            raise ImageTooLargeError(
                f"The image is {w}x{h} pixels, an aspect ratio over the limit of {max_aspect_ratio:g}:1. "
                "Crop it, or split it into parts.",
                param="image",
            )
    return img


# What the in-process engine takes: what the SDK takes, but URLs (the engine does no network I/O).
LocalImage = str | PathLike[str] | bytes | Image.Image | np.ndarray


def read_image(image: LocalImage, settings: Settings | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of `image`. A path or encoded bytes are decoded within `settings`' limits
    (pixels, aspect ratio), as an upload is; a PIL image or an array is taken as it is."""
    if isinstance(image, (str, PathLike)):
        if str(image).startswith(("http://", "https://", "data:")):
            raise TypeError(
                "the engine reads files, bytes, PIL images and arrays, not URLs: download the image first, "
                "or send the URL to a server (segserve.Client)"
            )
        image = Path(image).expanduser().read_bytes()
    if isinstance(image, (bytes, bytearray, memoryview)):
        cfg = settings or Settings.defaults()
        return decode_image(bytes(image), max_pixels=cfg.max_image_pixels, max_aspect_ratio=cfg.max_aspect_ratio)
    return to_rgb_array(image)


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """PIL image or array -> (H, W, 3) uint8 RGB, EXIF orientation applied.

    Arrays may be (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA, uint8 / uint16 / bool / float in [0, 1].
    """
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    img = ImageOps.exif_transpose(image) or image
    return _array_to_rgb(np.asarray(_pil_to_rgb(img)))


def _pil_to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # A plain convert("RGB") clips 16-bit values to white: scale to 8 bits first.
        arr = np.asarray(img, dtype=np.int64)
        peak = 65535 if mode.startswith("I;16") else max(int(arr.max()), 1)
        gray = (arr * 255 // peak).clip(0, 255).astype(np.uint8) if peak > 255 else arr.clip(0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        # Transparent pixels become white, the usual background for product photos.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"the image has no pixels (shape {arr.shape})")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = (np.clip(arr, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        arr = (arr[:, :, :3] * alpha + 255.0 * (1 - alpha) + 0.5).astype(np.uint8)
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, order="C")  # arrays viewing a PIL image are read-only; torch wants to own them
    return arr


def _unidentified(data: bytes, formats: tuple[str, ...]) -> Exception:
    """Tell a real image in a refused format (415) from bytes that are no image at all (422)."""
    head = data[:512].lstrip()
    if any(head.startswith(sig) for sig in _FOREIGN_SIGNATURES) or b"<svg" in head[:256]:
        return _unsupported("PDF/SVG" if not head.startswith(b"%PDF") else "PDF", formats)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = Image.open(io.BytesIO(data))  # header only: any format Pillow knows
            fmt = other.format or "unknown"
        return _unsupported(fmt, formats)
    except Exception:
        return InvalidImageError(
            "The bytes sent are not a decodable image. Send a JPEG, PNG, WebP, BMP, GIF or TIFF file.",
            param="image",
        )


def _unsupported(fmt: str, formats: tuple[str, ...]) -> UnsupportedImageFormatError:
    names = ", ".join(formats)
    return UnsupportedImageFormatError(
        f"Images in {fmt} format are not accepted. Supported formats: {names}.", param="image"
    )


def _too_many_pixels(size: tuple[int, int] | None, max_pixels: int) -> ImageTooLargeError:
    got = f" ({size[0]}x{size[1]} = {size[0] * size[1]:,} pixels)" if size else ""
    return ImageTooLargeError(
        f"The image is too large{got}; the limit is {max_pixels:,} pixels. Downscale it and retry.",
        param="image",
    )


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


def is_data_uri(value: str) -> bool:
    """True when `value` is a `data:` URI (leading whitespace allowed, scheme in any case)."""
    return value.lstrip()[:5].lower() == "data:"


def decode_data_uri(uri: str, max_bytes: int) -> bytes:
    """`data:image/<format>;base64,<payload>` -> the decoded bytes.

    The size limit is enforced from the payload's length before any decoding, so an oversized
    URI costs no allocation beyond the string the caller already holds.
    """
    head, sep, payload = uri.strip().partition(",")
    if not sep or head[:5].lower() != "data:":
        raise InvalidImageURLError(
            "The image data URI is malformed; send it as data:image/<format>;base64,<data>.", param="image"
        )
    params = [p.strip().lower() for p in head[5:].split(";")]
    if not params[0].startswith("image/") or "base64" not in params[1:]:
        raise InvalidImageURLError(
            "The image data URI must be base64-encoded and of type image/*: data:image/<format>;base64,<data>.",
            param="image",
        )
    # Whitespace (line-wrapped base64) may inflate the raw length; a payload more than twice the
    # largest legal encoding cannot be explained by that and is refused unseen.
    encoded_limit = 4 * -(-max_bytes // 3)
    if len(payload) > 2 * encoded_limit + 1024:
        raise _too_many_bytes(max_bytes)
    if "%" in payload:
        payload = unquote(payload)
    payload = "".join(payload.split())
    if "-" in payload or "_" in payload:
        payload = payload.translate(str.maketrans("-_", "+/"))  # base64url from some clients
    payload = payload.rstrip("=")
    if not payload:
        raise InvalidImageURLError("The image data URI contains no data.", param="image")
    if len(payload) % 4 == 1:
        raise _bad_base64()
    if len(payload) * 3 // 4 > max_bytes:
        raise _too_many_bytes(max_bytes)
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _bad_base64() from None


def _bad_base64() -> InvalidImageURLError:
    return InvalidImageURLError("The image data URI's payload is not valid base64.", param="image")


def _too_many_bytes(max_bytes: int) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"The image is larger than the {max_bytes}-byte limit; send a smaller image.", param="image"
    )
