"""Image bytes the decoder must refuse, shared by tests/test_images.py and tests/api/test_image_inputs.py
(importable by name: tests/conftest.py puts this folder on sys.path)."""

from __future__ import annotations

import struct
import zlib


def png_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG whose header says width x height (8-bit RGB) over a tiny IDAT: the size
    check must refuse it from the header alone, without allocating the pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def psd_bytes() -> bytes:
    """A minimal Photoshop file: signature, version 1, 3 channels, 4 x 4, 8 bits, RGB, empty sections."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 4, 4, 8, 3)
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + b"\0" * 48


def fits_bytes() -> bytes:
    """A minimal FITS file (a 4 x 4 8-bit image): a format Pillow reads but segserve does not accept."""
    cards = ["SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    2",
             "NAXIS1  =                    4", "NAXIS2  =                    4", "END"]  # fmt: skip
    return "".join(c.ljust(80) for c in cards).ljust(2880).encode() + b"\0" * 2880
