"""Image bytes at the API (bad-inputs.md, "Image bytes"): what is refused with which code, and
what decodes to a 200 whose masks, boxes and size are in the right frame.

The BrightSegmenter fake marks pixels brighter than 128, so the expected mask is known from the
picture the test drew; a few cases also go through the tiny SAM 3 to check the real engine copes.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from api_support import app_client, assert_good_request_works, encode, picture, png, upload
from PIL import Image

from image_samples import fits_bytes, png_claiming, psd_bytes
from segserve.masks import rle_decode


def _jpeg() -> bytes:
    return encode(picture(64, 48, (8, 8, 40, 30)), "JPEG", quality=95)


BAD_IMAGES = [
    (b"", 422, "invalid_image"),  # zero bytes
    (b"this is a text file named photo.jpg\n", 422, "invalid_image"),  # text
    (np.random.default_rng(7).bytes(4096), 422, "invalid_image"),  # random bytes
    (_jpeg()[: len(_jpeg()) // 2], 422, "invalid_image"),  # a JPEG cut in half (fails on load())
    (png()[:60], 422, "invalid_image"),  # a PNG cut short
    (png_claiming(100_000, 100_000), 413, "image_too_large"),  # header claims 10 gigapixels
    (png_claiming(8000, 8000), 413, "image_too_large"),  # 64 MP: over the 50 MP default and this test's 20 MP
    (psd_bytes(), 415, "unsupported_image_format"),  # Photoshop
    (fits_bytes(), 415, "unsupported_image_format"),  # FITS
    (b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n", 415, "unsupported_image_format"),  # PDF
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>', 415, "unsupported_image_format"),  # SVG
    (encode(Image.new("RGB", (16, 16)), "ICO"), 415, "unsupported_image_format"),  # Windows icon
]


BAD_IDS = [
    "empty",
    "text",
    "random",
    "jpeg-cut",
    "png-cut",
    "png-100000x100000",
    "png-8000x8000",
    "psd",
    "fits",
    "pdf",
    "svg",
    "ico",
]


@pytest.mark.parametrize("data, status, code", BAD_IMAGES, ids=BAD_IDS)
def test_bad_image_bytes(bright, data, status, code):
    with app_client(bright, max_image_pixels=20_000_000) as c:
        r = upload(c, data)
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert (err["code"], err["param"]) == (code, "image")
        assert bright.calls == []  # nothing bad reached the model
        assert_good_request_works(c)


# --- images that decode ---------------------------------------------------------------------------
BOX = (5, 4, 20, 12)


def _bright_rgb() -> np.ndarray:
    return picture(40, 30, BOX)


def _cmyk_jpeg() -> bytes:
    return encode(Image.fromarray(_bright_rgb()).convert("CMYK"), "JPEG", quality=100)


def _rgba_png() -> bytes:
    rgba = np.dstack([_bright_rgb(), np.full((30, 40), 255, np.uint8)])
    rgba[0:2, 30:40, 3] = 0  # a transparent corner: composited on white, so it is bright too
    return encode(Image.fromarray(rgba, "RGBA"))


def _palette_png() -> bytes:
    img = Image.fromarray(_bright_rgb()).convert("P")
    return encode(img, transparency=int(np.asarray(img)[20, 35]))  # the black index transparent -> white


def _gray16_png() -> bytes:
    # 60000 inside the box (-> 233), 20000 outside (-> 78). A plain convert("RGB") would clip both to white.
    arr = np.full((30, 40), 20000, np.uint16)
    x1, y1, x2, y2 = BOX
    arr[y1:y2, x1:x2] = 60000
    return encode(Image.fromarray(arr))  # uint16 -> mode I;16


def _animated_gif() -> bytes:
    first = Image.fromarray(_bright_rgb()).convert("P")
    second = Image.fromarray(picture(40, 30, (25, 15, 35, 25))).convert("P")
    buf = io.BytesIO()
    first.save(buf, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    return buf.getvalue()


GOOD_IMAGES = [
    (_cmyk_jpeg(), BOX, (30, 40)),  # CMYK JPEG
    (_rgba_png(), None, (30, 40)),  # RGBA: the transparent corner becomes white (bright)
    (_palette_png(), None, (30, 40)),  # palette PNG with transparency
    (encode(Image.fromarray(_bright_rgb()).convert("L")), BOX, (30, 40)),  # grayscale
    (_gray16_png(), BOX, (30, 40)),  # 16-bit grayscale, scaled not clipped
    (_animated_gif(), BOX, (30, 40)),  # animated GIF: the first frame's box
    (encode(np.full((1, 1, 3), 255, np.uint8)), (0, 0, 1, 1), (1, 1)),  # 1 x 1
    (encode(picture(10_000, 200, (9000, 50, 9990, 150))), (9000, 50, 9990, 150), (200, 10_000)),  # panorama
    (encode(_bright_rgb(), "WEBP", lossless=True), BOX, (30, 40)),  # WebP
    (encode(_bright_rgb(), "BMP"), BOX, (30, 40)),  # BMP
    (encode(_bright_rgb(), "TIFF"), BOX, (30, 40)),  # TIFF
]


@pytest.mark.parametrize(
    "data, box, size",
    GOOD_IMAGES,
    ids=[
        "cmyk-jpeg",
        "rgba-png",
        "palette-png",
        "gray",
        "gray16",
        "animated-gif",
        "1x1",
        "panorama",
        "webp",
        "bmp",
        "tiff",
    ],
)
def test_images_that_decode(client, data, box, size):
    r = upload(client, data)
    assert r.status_code == 200, r.text
    seg = r.json()["segments"][0]
    assert seg["mask"]["size"] == list(size)
    if box is not None:
        assert seg["bbox"] == list(box)
        mask = rle_decode(seg["mask"])
        x1, y1, x2, y2 = box
        assert mask[y1:y2, x1:x2].all() and mask.sum() == (x2 - x1) * (y2 - y1)


# PIL transposition that exif_transpose applies for each orientation; the test stores the inverse.
_APPLY = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_INVERSE = {**_APPLY, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("orientation", range(1, 9))  # every EXIF orientation, 1 = upright
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_masks_and_boxes_are_in_the_rotated_frame(client, orientation, fmt):
    # What the viewer should see: 40 wide, 30 high, a bright box at BOX. Stored rotated + tagged.
    upright = Image.fromarray(_bright_rgb())
    stored = upright if orientation == 1 else upright.transpose(_INVERSE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, fmt, exif=exif, **({"quality": 100} if fmt == "JPEG" else {}))
    r = upload(client, data)
    assert r.status_code == 200, r.text
    seg = r.json()["segments"][0]
    assert seg["mask"]["size"] == [30, 40]
    if fmt == "PNG":
        assert seg["bbox"] == list(BOX)
    else:  # JPEG ringing may move an edge by a pixel
        assert np.abs(np.array(seg["bbox"]) - np.array(BOX)).max() <= 1


# --- the same intake with the real engine (tiny random SAM 3) --------------------------------------
@pytest.mark.parametrize(
    "data, size",
    [
        (_cmyk_jpeg(), (30, 40)),  # CMYK
        (_gray16_png(), (30, 40)),  # 16-bit
        (_animated_gif(), (30, 40)),  # animated
        (encode(np.full((1, 1, 3), 200, np.uint8)), (1, 1)),  # 1 x 1
        (encode(picture(2000, 40, (100, 5, 300, 30))), (40, 2000)),  # panorama (kept small: CPU)
    ],
    ids=["cmyk", "gray16", "animated-gif", "1x1", "panorama"],
)
def test_tiny_model_answers_in_the_input_frame(tiny_segmenter, data, size):
    with app_client(tiny_segmenter, threshold=0.0, max_segments=3) as c:
        r = upload(c, data, prompt="thing")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["num_segments"] == len(body["segments"]) <= 3
        h, w = size
        for seg in body["segments"]:
            assert seg["mask"]["size"] == [h, w]
            x1, y1, x2, y2 = seg["bbox"]
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert rle_decode(seg["mask"]).any()
