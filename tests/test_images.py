"""Decoding and normalisation: every mode becomes 8-bit RGB in the EXIF-corrected frame."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from image_samples import fits_bytes, png_claiming, psd_bytes
from segserve import images as images_module
from segserve.errors import ImageTooLargeError, InvalidImageError, InvalidImageURLError, UnsupportedImageFormatError
from segserve.images import decode_data_uri, decode_image, is_data_uri, to_rgb_array


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def gradient(w: int = 40, h: int = 30) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return Image.fromarray(np.dstack([x, y, 255 - x]), "RGB")


def sixteen_bit_png() -> bytes:
    arr = np.full((10, 12), 40000, dtype=np.uint16)
    arr[:, :6] = 1000
    return encode(Image.fromarray(arr), "PNG")  # Pillow picks mode I;16 for uint16


def palette_with_transparency() -> bytes:
    img = Image.new("P", (8, 8), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (4, 0, 8, 8))
    return encode(img, "PNG", transparency=0)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 255, 0))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:])


@pytest.mark.parametrize(
    ("data", "shape", "pixel"),
    [
        (encode(gradient(), "JPEG"), (30, 40, 3), None),  # plain JPEG
        (encode(gradient().convert("CMYK"), "JPEG"), (30, 40, 3), None),  # CMYK JPEG
        (encode(Image.new("RGBA", (5, 4), (255, 0, 0, 0)), "PNG"), (4, 5, 3), (255, 255, 255)),  # transparent -> white
        (encode(Image.new("RGBA", (5, 4), (0, 0, 255, 255)), "PNG"), (4, 5, 3), (0, 0, 255)),  # opaque RGBA
        (palette_with_transparency(), (8, 8, 3), (255, 255, 255)),  # palette index 0 transparent
        (encode(Image.new("L", (6, 3), 77), "PNG"), (3, 6, 3), (77, 77, 77)),  # grayscale
        (sixteen_bit_png(), (10, 12, 3), (3, 3, 3)),  # 16-bit: 1000/65535*255 = 3, not clipped to white
        (animated_gif(), (10, 10, 3), (255, 0, 0)),  # animated GIF: first frame
        (encode(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"), (1, 1, 3), (1, 2, 3)),  # 1x1
        (encode(Image.new("RGB", (10000, 200), (9, 9, 9)), "PNG"), (200, 10000, 3), (9, 9, 9)),  # panorama
        (encode(gradient(), "WEBP"), (30, 40, 3), None),  # WebP
        (encode(gradient(), "BMP"), (30, 40, 3), None),  # BMP
        (encode(gradient(), "TIFF"), (30, 40, 3), None),  # TIFF
    ],
)
def test_decodes_to_rgb(data, shape, pixel):
    arr = decode_image(data)
    assert arr.shape == shape and arr.dtype == np.uint8
    if pixel is not None:
        assert tuple(arr[0, 0]) == pixel


def test_sixteen_bit_keeps_its_contrast():
    arr = decode_image(sixteen_bit_png())
    assert tuple(arr[0, 0]) == (3, 3, 3) and tuple(arr[0, -1]) == (155, 155, 155)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_gives_the_displayed_frame(orientation):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 10))  # a white square in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    arr = decode_image(encode(img, "PNG", exif=exif))
    expected = np.asarray(
        {
            1: img,
            2: img.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            3: img.transpose(Image.Transpose.ROTATE_180),
            4: img.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
            5: img.transpose(Image.Transpose.TRANSPOSE),
            6: img.transpose(Image.Transpose.ROTATE_270),
            7: img.transpose(Image.Transpose.TRANSVERSE),
            8: img.transpose(Image.Transpose.ROTATE_90),
        }[orientation]
    )
    assert arr.shape == expected.shape
    np.testing.assert_array_equal(arr, expected)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", InvalidImageError),  # zero bytes
        (b"hello, I am a text file named photo.jpg\n", InvalidImageError),  # text
        (np.random.default_rng(0).bytes(5000), InvalidImageError),  # random bytes
        (encode(gradient(400, 300), "JPEG")[:2000], InvalidImageError),  # JPEG cut short
        (png_claiming(100_000, 100_000), ImageTooLargeError),  # header bomb, never allocated
        (encode(Image.new("RGB", (16, 16)), "ICO"), UnsupportedImageFormatError),  # ICO
        (encode(Image.new("RGB", (16, 16)), "PDF"), UnsupportedImageFormatError),  # PDF
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', UnsupportedImageFormatError),  # SVG
        (b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'></svg>", UnsupportedImageFormatError),  # SVG
        (fits_bytes(), UnsupportedImageFormatError),  # FITS
    ],
)
def test_bad_bytes_get_the_right_error(data, error):
    with pytest.raises(error) as info:
        decode_image(data)
    assert info.value.param == "image"
    assert info.value.status in (413, 415, 422)


def test_psd_is_unsupported():
    with pytest.raises(UnsupportedImageFormatError, match="PSD"):
        decode_image(psd_bytes())


def test_pixel_limit_is_configurable():
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    assert decode_image(data, max_pixels=10_000).shape == (100, 100, 3)
    with pytest.raises(ImageTooLargeError, match="10,001"):
        decode_image(encode(Image.new("RGB", (10001, 1)), "PNG"), max_pixels=10_000)


@pytest.mark.parametrize(
    ("size", "ok"),
    [
        ((10_000, 200), True),  # a 50:1 panorama decodes
        ((200, 10_000), True),  # and so does a 1:50 strip
        ((100, 1), True),  # exactly at the default 100:1
        ((101, 1), False),  # just past it
        ((1, 5_000), False),  # a sliver: preprocessing it would cost memory by its long side
        (png_claiming(1, 50_000_000), False),  # claimed by the header, never allocated
    ],
)
def test_extreme_aspect_ratios_are_refused_from_the_header(size, ok):
    data = size if isinstance(size, bytes) else encode(Image.new("RGB", size), "PNG")
    if ok:
        assert decode_image(data).shape[:2] == (size[1], size[0])
    else:
        with pytest.raises(ImageTooLargeError, match="aspect ratio over the limit of 100:1"):
            decode_image(data)
    assert decode_image(encode(Image.new("RGB", (300, 1)), "PNG"), max_aspect_ratio=300).shape == (1, 300, 3)


@pytest.mark.parametrize(
    ("array", "pixel"),
    [
        (np.full((2, 3), 7, np.uint8), (7, 7, 7)),  # gray uint8
        (np.full((2, 3, 1), 7, np.uint8), (7, 7, 7)),  # gray with a channel axis
        (np.full((2, 3), 65535, np.uint16), (255, 255, 255)),  # 16-bit scaled, not clipped
        (np.full((2, 3, 3), 0.5, np.float32), (128, 128, 128)),  # float in [0, 1]
        (np.ones((2, 3), bool), (255, 255, 255)),  # boolean
        (np.dstack([np.zeros((2, 3, 3), np.uint8), np.zeros((2, 3), np.uint8)]), (255, 255, 255)),  # RGBA, clear
    ],
)
def test_arrays_normalise(array, pixel):
    out = to_rgb_array(array)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8 and tuple(out[0, 0]) == pixel


def test_bad_arrays_and_types_are_refused():
    with pytest.raises(ValueError, match="array"):
        to_rgb_array(np.zeros((2, 3, 5), np.uint8))
    with pytest.raises(TypeError):
        to_rgb_array("photo.jpg")


# ----------------------------------------------------------------------------------------------
# Data URIs: the one detector and decoder the server and the SDK share

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # any bytes: a data URI is decoded, not the image
B64 = base64.b64encode(IMAGE).decode()

DATA_URI_DETECTION = [
    ("data:image/png;base64,AAAA", True),  # the usual form
    ("DATA:image/png;base64,AAAA", True),  # the scheme in any case
    ("  data:image/png;base64,AAAA", True),  # leading whitespace, as the decoder strips it
    ("data:", True),  # a bare scheme is still a data URI (a malformed one, for the decoder)
    ("https://example.com/a.png", False),  # a URL
    ("photo.data:1.png", False),  # "data:" not at the start
    ("iVBORw0KGgoAAAANSUhEUg", False),  # bare base64
    ("", False),  # empty
]


@pytest.mark.parametrize(("value", "expected"), DATA_URI_DETECTION)
def test_is_data_uri(value, expected):
    assert is_data_uri(value) is expected


DATA_URI_ROUND_TRIPS = [
    f"data:image/png;base64,{B64}",  # the usual form
    f"DATA:IMAGE/PNG;BASE64,{B64}",  # schemes and types are case-insensitive
    f"data:image/jpeg;name=a.jpg;base64,{B64}",  # extra parameters
    "data:image/png;base64," + "\n".join(B64[i : i + 76] for i in range(0, len(B64), 76)),  # MIME lines
    f"data:image/png;base64,{B64.rstrip('=')}",  # padding dropped
    "data:image/png;base64," + base64.urlsafe_b64encode(IMAGE).decode(),  # base64url alphabet
    "data:image/png;base64," + B64.replace("+", "%2B").replace("/", "%2F"),  # percent-escaped
    f"  data:image/png;base64,{B64}\n",  # surrounding whitespace
]


@pytest.mark.parametrize("uri", DATA_URI_ROUND_TRIPS)
def test_data_uri_round_trip(uri):
    assert decode_data_uri(uri, max_bytes=len(IMAGE)) == IMAGE


MALFORMED_DATA_URIS = [
    "data:image/png;base64",  # no comma, no payload
    "data:image/png;base64,",  # empty payload
    "data:image/png,rawbytes",  # not base64
    "data:text/plain;base64,aGVsbG8=",  # not an image type
    "data:;base64,aGVsbG8=",  # no type at all
    "data:image/png;base64,!!!!",  # characters outside base64
    "data:image/png;base64,aGVsb",  # a length base64 cannot produce
    "data:image/png;base64,aGVs bG8=x",  # junk after the padding
    "image/png;base64,aGVsbG8=",  # the data: prefix missing
]


@pytest.mark.parametrize("uri", MALFORMED_DATA_URIS)
def test_malformed_data_uris(uri):
    with pytest.raises(InvalidImageURLError) as info:
        decode_data_uri(uri, max_bytes=1000)
    assert info.value.code == "invalid_image_url"


def test_data_uri_limit_is_the_decoded_size():
    uri = "data:image/png;base64," + base64.b64encode(b"x" * 10).decode()
    assert decode_data_uri(uri, max_bytes=10) == b"x" * 10
    with pytest.raises(ImageTooLargeError):
        decode_data_uri(uri, max_bytes=9)


def test_oversized_data_uri_is_refused_without_decoding(monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an oversized payload")

    monkeypatch.setattr(images_module.base64, "b64decode", no_decoding)
    with pytest.raises(ImageTooLargeError) as info:
        decode_data_uri("data:image/png;base64," + "A" * 4_000_000, max_bytes=1000)
    assert info.value.status == 413
